from django.apps import AppConfig


class MessagingConfig(AppConfig):
    name = "marketplace.messaging"
    label = "messaging"
