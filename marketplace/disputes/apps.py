from django.apps import AppConfig


class DisputesConfig(AppConfig):
    name = "marketplace.disputes"
    label = "disputes"
