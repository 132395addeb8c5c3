"""Settings that fail early (site/config/settings/production.py, q.py): each check runs in a fresh
interpreter with a clean environment, because settings are read once per process."""

import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
REQUIRED = ("DJANGO_SECRET_KEY", "DJANGO_ALLOWED_HOSTS", "DATABASE_URL")
PRODUCTION = {
    "DJANGO_SECRET_KEY": secrets.token_urlsafe(60),
    "DJANGO_ALLOWED_HOSTS": "marketplace.example.com",
    "DATABASE_URL": "sqlite:////tmp/x.db",
    "EMAIL_URL": "smtp+tls://mailer:secret@smtp.example.com:587",
}
# Reading a setting imports the settings module, which is where every early check runs; the app
# registry (django.setup) is not needed for that, and `check --deploy` below loads it anyway.
LOAD = (
    "import django; from django.conf import settings; "
    "print(settings.DEBUG, settings.ALLOWED_HOSTS, settings.DATABASES['default']['ENGINE'])"
)
MISSING = re.compile(r"ImproperlyConfigured: Missing required environment variable\(s\): ([A-Z_, ]+)\.")


def _run(args: list[str], **variables: str) -> subprocess.CompletedProcess:
    """Run Python in the project root with only these variables (and what Python itself needs)."""
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": "/tmp",
        "LANG": "C.UTF-8",
        "PYTHONPATH": "site",
        "PYTHONDONTWRITEBYTECODE": "1",
        "DJANGO_SETTINGS_MODULE": "config.settings.production",
        **variables,
    }
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False
    )


def _missing_named(stderr: str) -> set[str]:
    found = MISSING.search(stderr)
    assert found, f"no 'Missing required environment variable(s)' message in:\n{stderr}"
    return {name.strip() for name in found.group(1).split(",")}


@pytest.mark.parametrize("missing", REQUIRED)
def test_production_settings_without_a_required_variable_stop_and_name_it(missing):
    # given every required variable but one
    variables = {k: v for k, v in PRODUCTION.items() if k != missing}
    # when Django loads the production settings
    result = _run(["-c", LOAD], **variables)
    # then start-up stops and names exactly that variable
    assert result.returncode != 0
    assert _missing_named(result.stderr) == {missing}


@pytest.mark.parametrize("missing", REQUIRED)
def test_production_settings_with_a_blank_required_variable_stop_and_name_it(missing):
    # given a variable that is set but blank
    result = _run(["-c", LOAD], **{**PRODUCTION, missing: "  "})
    # then
    assert result.returncode != 0
    assert _missing_named(result.stderr) == {missing}


def test_production_settings_without_any_required_variable_name_all_of_them():
    # given none  # when
    result = _run(["-c", LOAD])
    # then
    assert result.returncode != 0
    assert _missing_named(result.stderr) == set(REQUIRED)


def test_production_settings_with_every_required_variable_load():
    # given / when
    result = _run(["-c", LOAD], **PRODUCTION)
    # then
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False ['marketplace.example.com'] django.db.backends.sqlite3"


@pytest.mark.parametrize(("timeout", "retry"), [("300", "180"), ("180", "180")], ids=["retry-below", "retry-equal"])
def test_q_retry_not_above_q_timeout_stops_start_up_naming_both(timeout, retry):
    # given a task retry that would hand a still-running task to a second worker
    result = _run(["-c", LOAD], **PRODUCTION, Q_TIMEOUT=timeout, Q_RETRY=retry)
    # then
    assert result.returncode != 0
    message = next(line for line in result.stderr.splitlines() if line.startswith("django.core.exceptions."))
    assert message.startswith("django.core.exceptions.ImproperlyConfigured: ")
    assert f"Q_RETRY ({retry}s)" in message and f"Q_TIMEOUT ({timeout}s)" in message


def test_manage_check_deploy_passes_with_production_settings():
    # given production settings with every required variable
    # when Django's deployment checklist runs, failing on warnings too
    result = _run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], **PRODUCTION)
    # then no issue at all
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_manage_check_deploy_warns_when_emails_would_go_to_the_console():
    # given production settings without EMAIL_URL (the console backend stays the default)
    variables = {k: v for k, v in PRODUCTION.items() if k != "EMAIL_URL"}
    # when the deployment checklist runs
    result = _run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], **variables)
    # then it fails naming the undelivered outbox and the variable to set
    assert result.returncode != 0
    assert "marketplace.W001" in result.stderr + result.stdout
    assert "EMAIL_URL" in result.stderr + result.stdout


def _improperly_configured(result) -> str:
    assert result.returncode != 0
    return next(line for line in result.stderr.splitlines() if line.startswith("django.core.exceptions."))


def test_a_currency_without_a_threshold_stops_start_up_naming_it():
    # given GBP allowed but the payout approval threshold set for EUR and USD only
    result = _run(
        ["-c", LOAD],
        **PRODUCTION,
        MARKETPLACE_CURRENCIES="EUR,USD,GBP",
        MARKETPLACE_PAYOUT_APPROVAL_ABOVE="EUR=1000.00,USD=1000.00",
    )
    # then start-up stops, naming the setting and the currency
    message = _improperly_configured(result)
    assert "MARKETPLACE_PAYOUT_APPROVAL_ABOVE has no threshold for GBP" in message


def test_a_currency_that_is_not_an_iso_code_stops_start_up():
    message = _improperly_configured(_run(["-c", LOAD], **PRODUCTION, MARKETPLACE_CURRENCIES="EUR,euro"))
    assert "MARKETPLACE_CURRENCIES must list ISO 4217 codes" in message


def test_thresholds_per_currency_load_when_every_currency_has_one():
    result = _run(
        ["-c", "from django.conf import settings; print(settings.MARKETPLACE_REFUND_SECOND_APPROVAL_ABOVE)"],
        **PRODUCTION,
        MARKETPLACE_CURRENCIES="EUR,CHF",
        MARKETPLACE_REFUND_SECOND_APPROVAL_ABOVE="EUR=500.00,CHF=480.00",
        MARKETPLACE_PAYOUT_APPROVAL_ABOVE="EUR=1000,CHF=950",
        MARKETPLACE_PAYOUT_FINANCE_ABOVE="EUR=10000,CHF=9500",
        MARKETPLACE_ADJUSTMENT_SECOND_APPROVAL_ABOVE="EUR=250,CHF=240",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "{'EUR': Decimal('500.00'), 'CHF': Decimal('480.00')}"
