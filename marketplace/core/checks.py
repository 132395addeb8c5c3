"""Deployment checks of our own, run by `manage.py check --deploy` beside Django's."""

from django.conf import settings
from django.core.checks import Tags, Warning, register

UNDELIVERED = (
    "django.core.mail.backends.console.EmailBackend",
    "django.core.mail.backends.locmem.EmailBackend",
    "django.core.mail.backends.dummy.EmailBackend",
    "django.core.mail.backends.filebased.EmailBackend",
)


@register(Tags.compatibility, deploy=True)
def email_is_delivered(app_configs, **kwargs):
    """In production the outbox must reach people: SMTP (EMAIL_URL) or another real backend."""
    if settings.EMAIL_BACKEND in UNDELIVERED:
        return [
            Warning(
                f"EMAIL_BACKEND is {settings.EMAIL_BACKEND}: the outbox's emails are not delivered to anyone.",
                hint="Set EMAIL_URL, e.g. smtp+tls://user:password@smtp.example.com:587.",
                id="marketplace.W001",
            )
        ]
    return []
