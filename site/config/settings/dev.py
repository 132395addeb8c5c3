"""Local development and the demo: `make run`. Embedded SQLite unless DATABASE_URL is set."""

from config.env import env
from config.settings.base import *  # noqa: F403

DEBUG = env.bool("DJANGO_DEBUG", default=True)
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="dev-only-insecure-key-never-use-in-production")
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost"])
STORAGES["staticfiles"] = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}  # noqa: F405
# Whitenoise serves collected files in production; here runserver and the test client need none.
MIDDLEWARE = [m for m in MIDDLEWARE if not m.startswith("whitenoise.")]  # noqa: F405
# The demo's shared authenticator secret (base32), for load_demo_data's superuser, leads and Finance:
# development only, public, and refused by `check --deploy` (marketplace.E005).
MARKETPLACE_DEMO_TOTP_SECRET = env.str("MARKETPLACE_DEMO_TOTP_SECRET", default="DEMOTOTPDEMOTOTPDEMOTOTPDEMOTOTP")
