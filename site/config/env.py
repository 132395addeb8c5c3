"""The one place that reads the environment (django-environ)."""

from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent.parent  # project root
SITE_DIR = BASE_DIR / "site"

env = environ.Env()


def require(*names: str) -> None:
    """Stop start-up naming every required variable that is unset or empty."""
    missing = [name for name in names if not env.str(name, default="").strip()]
    if missing:
        raise ImproperlyConfigured(
            "Missing required environment variable(s): "
            + ", ".join(missing)
            + ". Production settings have no defaults for secrets, hosts or the database."
        )
