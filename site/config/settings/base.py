"""Settings shared by every environment. Per-environment modules import this and override."""

import re
import sys
from pathlib import Path

from config.env import BASE_DIR, SITE_DIR, env
from config.settings.csp import CSP_MIDDLEWARE
from config.settings.second_factor import SECOND_FACTOR_APPS, SECOND_FACTOR_MIDDLEWARE
from config.settings.signin import SIGNIN_APPS, SIGNIN_BACKENDS, SIGNIN_MIDDLEWARE

SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="")
DEBUG = env.bool("DJANGO_DEBUG", default=False)
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=[])
ENVIRONMENT_NAME = env.str("DJANGO_ENVIRONMENT", default="development")

INSTALLED_APPS = [
    # django-unfold must come before django.contrib.admin
    "unfold",
    "unfold.contrib.filters",
    "unfold.contrib.forms",
    "unfold.contrib.import_export",
    "unfold.contrib.guardian",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    # Wagtail
    "wagtail.contrib.forms",
    "wagtail.contrib.redirects",
    "wagtail.embeds",
    "wagtail.sites",
    "wagtail.users",
    "wagtail.snippets",
    "wagtail.documents",
    "wagtail.images",
    "wagtail.search",
    "wagtail.admin",
    "wagtail",
    "modelcluster",
    "taggit",
    "treebeard",  # the category tree admin's templates (admin/tree_change_list.html)
    # Third party
    "django_filters",
    "import_export",
    "rest_framework",
    "django_q",
    "guardian",
    *SIGNIN_APPS,
    *SECOND_FACTOR_APPS,
    # The domain, in import order (lower layers first)
    "marketplace.core",
    "marketplace.audit",
    "marketplace.notifications",
    "marketplace.accounts",
    "marketplace.partners",
    "marketplace.catalog",
    "marketplace.jobs",
    "marketplace.bookings",
    "marketplace.messaging",
    "marketplace.reviews",
    "marketplace.ledger",
    "marketplace.payments",
    "marketplace.payouts",
    "marketplace.disputes",
    "marketplace.transfers",
    "marketplace.demo",
    # The doors
    "dashboards",
    "cms",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    *CSP_MIDDLEWARE,
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "marketplace.accounts.middleware.StaffSessionIdleTimeoutMiddleware",
    *SECOND_FACTOR_MIDDLEWARE,
    "django.contrib.messages.middleware.MessageMiddleware",
    "marketplace.core.middleware.AdminNulQueryMiddleware",
    "marketplace.core.middleware.AdminBadInputMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "wagtail.contrib.redirects.middleware.RedirectMiddleware",
    *SIGNIN_MIDDLEWARE,
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [SITE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.debug",
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------
# DATABASE_URL selects PostgreSQL (production, tests). Without it, an embedded SQLite file
# is used, tuned so the web server and the django-q2 cluster can write at the same time:
# WAL journal, BEGIN IMMEDIATE transactions and a busy timeout (else task results get lost).
SQLITE_PATH = env.str("SQLITE_PATH", default=str(BASE_DIR / "var" / "db.sqlite3"))
SQLITE_OPTIONS = {
    "timeout": 30,
    "transaction_mode": "IMMEDIATE",
    "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=30000;",
}
# Every statement on PostgreSQL runs under a `statement_timeout`, so one runaway query cannot hold
# a web worker (and its locks) for minutes. The limit is chosen once per process, here, from the
# command that started it: `manage.py qcluster` (its forked or spawned workers keep the same
# argv) and other management commands (migrate, load_demo_data --scale, schedules) get the long
# background limit; everything else (gunicorn, runserver, the test client) the short web one.
# It travels in the connection's startup `options`, so every new connection has it before its
# first query. 0 switches the limit off.
DATABASE_STATEMENT_TIMEOUT_MS = env.int("DATABASE_STATEMENT_TIMEOUT_MS", default=5000)
Q_STATEMENT_TIMEOUT_MS = env.int("Q_STATEMENT_TIMEOUT_MS", default=600_000)
_COMMAND = sys.argv[1] if len(sys.argv) > 1 and Path(sys.argv[0]).name == "manage.py" else ""
BACKGROUND_PROCESS = bool(_COMMAND) and _COMMAND != "runserver"
STATEMENT_TIMEOUT_MS = Q_STATEMENT_TIMEOUT_MS if BACKGROUND_PROCESS else DATABASE_STATEMENT_TIMEOUT_MS


def postgres_statement_timeout(database: dict, milliseconds: int) -> None:
    """Set `statement_timeout` through the connection's startup options (PostgreSQL only)."""
    if "postgresql" not in database.get("ENGINE", ""):
        return
    options = database.setdefault("OPTIONS", {})
    kept = re.sub(r"-c\s*statement_timeout=\S+", "", options.get("options", "")).strip()
    options["options"] = f"{kept} -c statement_timeout={int(milliseconds)}".strip()


if env.str("DATABASE_URL", default=""):
    DATABASES = {"default": env.db_url("DATABASE_URL")}
    DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("DATABASE_CONN_MAX_AGE", default=60))
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    postgres_statement_timeout(DATABASES["default"], STATEMENT_TIMEOUT_MS)
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": SQLITE_PATH,
            "OPTIONS": SQLITE_OPTIONS,
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Auth and object permissions ------------------------------------------------------
AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = [
    *SIGNIN_BACKENDS,
    "django.contrib.auth.backends.ModelBackend",
    "guardian.backends.ObjectPermissionBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
GUARDIAN_RAISE_403 = False
# guardian's anonymous user is not used: the public reads through the API, not object grants.
ANONYMOUS_USER_NAME = None
LOGIN_URL = "admin:login"
# Unfold's login form posts no `next`: without this, signing in at /admin/login/ lands on a 404.
LOGIN_REDIRECT_URL = "admin:index"
# Sessions: an absolute limit from sign-in, and staff are signed out after this long idle
# (marketplace.accounts.middleware). A password change ends the person's other sessions
# (Django's session auth hash); the session it was changed in is kept.
SESSION_COOKIE_AGE = env.int("DJANGO_SESSION_MAX_AGE_SECONDS", default=12 * 60 * 60)
SESSION_IDLE_SECONDS = env.int("DJANGO_SESSION_IDLE_SECONDS", default=30 * 60)

# --- I18N, static, media --------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = env.str("DJANGO_STATIC_ROOT", default=str(BASE_DIR / "var" / "static"))
STATICFILES_DIRS = [SITE_DIR / "static"]
# Django's two finders, refusing paths that climb out of their folders (a 404, not a 500).
STATICFILES_FINDERS = ["config.static_finders.FileSystemFinder", "config.static_finders.AppDirectoriesFinder"]
MEDIA_URL = "/media/"
MEDIA_ROOT = env.str("DJANGO_MEDIA_ROOT", default=str(BASE_DIR / "var" / "media"))
# Import, export and import-preview files: a root of their own that no web server serves (never under
# MEDIA_ROOT), read only through the admin's scoped, audited download view. On object storage, point
# "private" (and "import_export") at a private bucket instead.
PRIVATE_ROOT = env.str("DJANGO_PRIVATE_ROOT", default=str(BASE_DIR / "var" / "private"))
_PRIVATE_STORAGE = {
    "BACKEND": "marketplace.core.storage.PrivateFileSystemStorage",  # no .url(): files have no public address
    "OPTIONS": {"location": PRIVATE_ROOT},
}
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
    "private": _PRIVATE_STORAGE,
    # django-import-export's MediaStorage keeps an upload awaiting confirmation in this alias.
    "import_export": _PRIVATE_STORAGE,
}

# --- Email ----------------------------------------------------------------------------
EMAIL_BACKEND = env.str("DJANGO_EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend")
if env.str("EMAIL_URL", default=""):
    vars().update(env.email_url("EMAIL_URL"))
DEFAULT_FROM_EMAIL = env.str("DJANGO_DEFAULT_FROM_EMAIL", default="Marketplace <noreply@marketplace.local>")

# --- Wagtail --------------------------------------------------------------------------
WAGTAIL_SITE_NAME = "Marketplace"
WAGTAILADMIN_BASE_URL = env.str("WAGTAILADMIN_BASE_URL", default="http://127.0.0.1:8000")
WAGTAILSEARCH_BACKENDS = {"default": {"BACKEND": "wagtail.search.backends.database"}}
# A person's email and password are changed in the operations admin, audited, not on the CMS's
# account page (password reset by email stays open, rate-limited: settings/signin.py).
WAGTAIL_EMAIL_MANAGEMENT_ENABLED = False
WAGTAIL_PASSWORD_MANAGEMENT_ENABLED = False
WAGTAIL_PASSWORD_RESET_ENABLED = True

# --- REST framework -------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "EXCEPTION_HANDLER": "rest_framework.views.exception_handler",
}

# --- The rest, by concern: Content-Security-Policy, marketplace rules, background work
# (django-q2), the second factor, sign-in throttling -----------------------------------
from config.settings.csp import *  # noqa: E402,F403
from config.settings.marketplace import *  # noqa: E402,F403
from config.settings.q import *  # noqa: E402,F403
from config.settings.second_factor import *  # noqa: E402,F403
from config.settings.signin import *  # noqa: E402,F403

# --- Operations admin (django-unfold) -------------------------------------------------
from config.settings.unfold import *  # noqa: E402,F403

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env.str("DJANGO_LOG_LEVEL", default="INFO")},
    # django-axes logs every successful sign-in at INFO; failures and lockouts are WARNING.
    "loggers": {"axes": {"level": env.str("DJANGO_AXES_LOG_LEVEL", default="WARNING")}},
}
