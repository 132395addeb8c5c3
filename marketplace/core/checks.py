"""Deployment checks of our own, run by `manage.py check --deploy` beside Django's.

Each is an Error, not a Warning: `check --deploy` in the release pipeline must stop a production
start-up that would move no real money, send no email, show tracebacks or publish private files.
"""

from pathlib import Path

from django.conf import settings
from django.core.checks import Error, Tags, register
from django.core.files.storage import FileSystemStorage
from django.utils.module_loading import import_string

UNDELIVERED = (
    "django.core.mail.backends.console.EmailBackend",
    "django.core.mail.backends.locmem.EmailBackend",
    "django.core.mail.backends.dummy.EmailBackend",
    "django.core.mail.backends.filebased.EmailBackend",
)
SANDBOX_GATEWAY = "marketplace.payments.gateway.SandboxGateway"
# Storage aliases whose files must never be reachable at MEDIA_URL (marketplace/core/storage.py).
PRIVATE_ALIASES = ("private", "import_export")


@register(Tags.compatibility, deploy=True)
def email_is_delivered(app_configs, **kwargs):
    """In production the outbox must reach people: SMTP (EMAIL_URL) or another real backend."""
    if settings.EMAIL_BACKEND in UNDELIVERED:
        return [
            Error(
                f"EMAIL_BACKEND is {settings.EMAIL_BACKEND}: the outbox's emails are not delivered to anyone.",
                hint="Set EMAIL_URL, e.g. smtp+tls://user:password@smtp.example.com:587.",
                id="marketplace.E001",
            )
        ]
    return []


@register(Tags.security, deploy=True)
def payment_gateway_is_real(app_configs, **kwargs):
    """In production MARKETPLACE_PAYMENT_GATEWAY must name a real gateway, never the sandbox."""
    path = settings.MARKETPLACE_PAYMENT_GATEWAY
    hint = "Set MARKETPLACE_PAYMENT_GATEWAY to the dotted path of the real payment gateway's class."
    try:
        gateway = import_string(path)
    except ImportError as exc:
        return [
            Error(f"MARKETPLACE_PAYMENT_GATEWAY {path!r} cannot be imported: {exc}", hint=hint, id="marketplace.E002")
        ]
    sandbox = import_string(SANDBOX_GATEWAY)
    if isinstance(gateway, type) and issubclass(gateway, sandbox):
        return [
            Error(
                f"MARKETPLACE_PAYMENT_GATEWAY is {path}, the sandbox: no payment or payout would move real money.",
                hint=hint,
                id="marketplace.E002",
            )
        ]
    return []


@register(Tags.security, deploy=True)
def debug_is_off(app_configs, **kwargs):
    """DEBUG shows settings and tracebacks to anyone: Django only warns (security.W018); we stop."""
    if settings.DEBUG:
        return [
            Error(
                "DEBUG is on: error pages would show settings, SQL and tracebacks to the public.",
                hint="Unset DJANGO_DEBUG (production settings force it off).",
                id="marketplace.E003",
            )
        ]
    return []


@register(Tags.security, deploy=True)
def private_files_are_not_public(app_configs, **kwargs):
    """The private storages must not live in, or contain, MEDIA_ROOT: media is served to anyone."""
    errors = []
    media_root = Path(settings.MEDIA_ROOT).resolve()
    for alias in PRIVATE_ALIASES:
        storage = settings.STORAGES.get(alias)
        if not storage:
            continue  # not configured (yet)
        backend = import_string(storage["BACKEND"])
        if not (isinstance(backend, type) and issubclass(backend, FileSystemStorage)):
            continue  # e.g. a private object-storage bucket: nothing on the local disk to overlap
        # A FileSystemStorage without a location stores in MEDIA_ROOT.
        private_root = Path(storage.get("OPTIONS", {}).get("location") or settings.MEDIA_ROOT).resolve()
        if private_root == media_root or media_root in private_root.parents or private_root in media_root.parents:
            errors.append(
                Error(
                    f'STORAGES["{alias}"] keeps its files in {private_root}, which overlaps MEDIA_ROOT {media_root}: '
                    f"private files would be served at {settings.MEDIA_URL}.",
                    hint="Set DJANGO_PRIVATE_ROOT to a folder outside DJANGO_MEDIA_ROOT.",
                    id="marketplace.E004",
                )
            )
    return errors


@register(Tags.security, deploy=True)
def demo_totp_secret_is_unset(app_configs, **kwargs):
    """The demo's authenticator secret is public (README): set, anyone could pass the second factor
    of an account holding it, and load_demo_data would hand it to every superuser, lead and Finance."""
    if getattr(settings, "MARKETPLACE_DEMO_TOTP_SECRET", ""):
        return [
            Error(
                "MARKETPLACE_DEMO_TOTP_SECRET is set: the demo's public authenticator secret would pass "
                "the second factor of any account holding it.",
                hint="Unset MARKETPLACE_DEMO_TOTP_SECRET (only the development settings set it).",
                id="marketplace.E005",
            )
        ]
    return []
