from django.apps import AppConfig


class PartnersConfig(AppConfig):
    name = "marketplace.partners"
    label = "partners"
