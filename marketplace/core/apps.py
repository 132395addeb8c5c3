from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "marketplace.core"
    label = "core"
    verbose_name = "Core"

    def ready(self):
        from marketplace.core import checks  # noqa: F401 - registers the deployment checks
