from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "marketplace.accounts"
    label = "accounts"

    def ready(self):
        from django.contrib.auth.signals import user_logged_in

        from marketplace.accounts.middleware import staff_session_start

        user_logged_in.connect(staff_session_start, dispatch_uid="marketplace.accounts.staff_session_start")
