"""The test suite: PostgreSQL from DATABASE_URL (make test starts a throwaway cluster)."""

import tempfile

from config.env import env
from config.settings.base import *  # noqa: F403

SECRET_KEY = "test-only-key"
DEBUG = False
ALLOWED_HOSTS = ["*"]
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
STORAGES["staticfiles"] = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}  # noqa: F405
# Tests run tasks inline unless a test starts a real cluster itself.
Q_CLUSTER = {**Q_CLUSTER, "sync": env.bool("Q_SYNC", default=True)}  # noqa: F405
# Whitenoise serves collected files in production; here runserver and the test client need none.
MIDDLEWARE = [m for m in MIDDLEWARE if not m.startswith("whitenoise.")]  # noqa: F405
# Uploads, import files and export files of a test run go to a throwaway folder.
MEDIA_ROOT = env.str("DJANGO_MEDIA_ROOT", default=tempfile.mkdtemp(prefix="marketplace-test-media-"))
PRIVATE_ROOT = env.str("DJANGO_PRIVATE_ROOT", default=tempfile.mkdtemp(prefix="marketplace-test-private-"))
STORAGES["private"] = {**STORAGES["private"], "OPTIONS": {**STORAGES["private"]["OPTIONS"], "location": PRIVATE_ROOT}}  # noqa: F405
STORAGES["import_export"] = STORAGES["private"]  # noqa: F405
# The suite's benchmarks and crash tests run large set-based statements in the pytest process on
# shared cores: it gets a minute, not the web's 5 s (clusters it starts keep the background limit).
# tests/site/test_settings.py proves the web limit with the production settings in a fresh process.
if not BACKGROUND_PROCESS:  # noqa: F405
    postgres_statement_timeout(DATABASES["default"], env.int("DATABASE_STATEMENT_TIMEOUT_MS", default=60_000))  # noqa: F405
