"""Settings that fail early (site/config/settings/production.py, q.py): each check runs in a fresh
interpreter with a clean environment, because settings are read once per process."""

import os
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
    # `check --deploy` refuses the sandbox gateway, and the project ships no real one (it belongs to
    # the deployment): this importable test-only class stands in for it and refuses every call.
    "MARKETPLACE_PAYMENT_GATEWAY": "tests.site.gateways.UnreachableGateway",
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


def _check_deploy(settings_module: str = "config.settings.production", **variables: str):
    """`manage.py check --deploy` at its default fail level: only errors fail it."""
    return _run(["manage.py", "check", "--deploy"], DJANGO_SETTINGS_MODULE=settings_module, **variables)


def test_manage_check_deploy_fails_when_emails_would_go_to_the_console():
    # given production settings without EMAIL_URL (the console backend stays the default)
    variables = {k: v for k, v in PRODUCTION.items() if k != "EMAIL_URL"}
    # when the deployment checklist runs
    result = _check_deploy(**variables)
    # then it fails with an error naming the undelivered outbox and the variable to set
    output = result.stderr + result.stdout
    assert result.returncode != 0
    assert "marketplace.E001" in output and "ERRORS" in output
    assert "EMAIL_URL" in output


def test_manage_check_deploy_fails_with_the_sandbox_gateway():
    # given production settings that leave the default, the sandbox gateway
    variables = {k: v for k, v in PRODUCTION.items() if k != "MARKETPLACE_PAYMENT_GATEWAY"}
    # when
    result = _check_deploy(**variables)
    # then it fails with an error naming the gateway and the variable to set
    output = result.stderr + result.stdout
    assert result.returncode != 0
    assert "marketplace.E002" in output and "SandboxGateway" in output
    assert "MARKETPLACE_PAYMENT_GATEWAY" in output


def test_manage_check_deploy_fails_with_debug_on():
    # given settings with DEBUG on (the development settings)
    result = _check_deploy("config.settings.dev", **PRODUCTION)
    # then an error, not only Django's security.W018 warning
    output = result.stderr + result.stdout
    assert result.returncode != 0
    assert "marketplace.E003" in output and "DEBUG is on" in output


def test_load_demo_data_refuses_production_settings():
    # given production settings (no database is touched before the refusal)
    # when the demo loader runs without the explicit flag
    result = _run(["manage.py", "load_demo_data"], **PRODUCTION)
    # then it stops with a CommandError naming the public password and the flag
    assert result.returncode != 0
    assert "CommandError: Refusing to load demo data into production" in result.stderr
    assert "--i-know-this-is-production" in result.stderr
    assert "Loading the curated demo" not in result.stdout


POSTGRES_URL = os.environ.get("DATABASE_URL", "")
needs_postgres = pytest.mark.skipif(not POSTGRES_URL.startswith("postgres"), reason="needs PostgreSQL")
SHOW = (
    "from django.db import connection; c = connection.cursor(); "
    "c.execute('SHOW statement_timeout'); print(c.fetchone()[0])"
)


STATEMENT_TIMEOUT = (
    "import django; django.setup(); from django.db import connection, utils\n"
    "with connection.cursor() as cursor:\n"
    "    cursor.execute('SHOW statement_timeout'); print(cursor.fetchone()[0])\n"
    "    try:\n"
    "        cursor.execute('SELECT pg_sleep(1.5)'); print('finished')\n"
    "    except utils.OperationalError as exc:\n"
    "        print(type(exc.__cause__).__name__)\n"
)


@needs_postgres
def test_web_process_statements_stop_at_the_statement_timeout():
    # given a web process (not a management command) with production settings and a 1 s limit
    variables = {**PRODUCTION, "DATABASE_URL": POSTGRES_URL, "DATABASE_STATEMENT_TIMEOUT_MS": "1000"}
    # when it runs a statement longer than the limit
    result = _run(["-c", STATEMENT_TIMEOUT], **variables)
    # then PostgreSQL cancels it
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["1s", "QueryCanceled"]


@needs_postgres
def test_web_process_statement_timeout_defaults_to_five_seconds():
    result = _run(["-c", "import django; django.setup(); " + SHOW], **{**PRODUCTION, "DATABASE_URL": POSTGRES_URL})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "5s"


@needs_postgres
@pytest.mark.parametrize(("variables", "shown"), [({}, "10min"), ({"Q_STATEMENT_TIMEOUT_MS": "90000"}, "90s")])
def test_management_commands_and_the_task_cluster_get_the_background_statement_timeout(variables, shown):
    # given a management command (qcluster's workers are chosen the same way: by the command)
    env = {**PRODUCTION, "DATABASE_URL": POSTGRES_URL, **variables}
    # when it asks PostgreSQL for its limit
    result = _run(["manage.py", "shell", "-c", SHOW], **env)
    # then it has the long background one, not the web's
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == shown


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
