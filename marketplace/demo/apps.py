from django.apps import AppConfig


class DemoConfig(AppConfig):
    """Demo data: `manage.py load_demo_data` (fixtures/) and the `--scale N` bulk generator.

    A tool above the domain: it calls the services of every app, and nothing imports it.
    """

    name = "marketplace.demo"
    label = "demo"
    verbose_name = "Demo data"
