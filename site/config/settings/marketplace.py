"""Business parameters of the marketplace, overridable from the environment."""

import re
from decimal import Decimal, InvalidOperation

from django.core.exceptions import ImproperlyConfigured

from config.env import env

# The ISO 4217 codes the marketplace trades in. Every door (services, imports, admin) refuses any
# other code, and no sum, balance, threshold or chart ever adds two currencies.
MARKETPLACE_CURRENCIES = tuple(env.list("MARKETPLACE_CURRENCIES", default=["EUR", "USD", "GBP"]))
if not MARKETPLACE_CURRENCIES or any(not re.fullmatch(r"[A-Z]{3}", c) for c in MARKETPLACE_CURRENCIES):
    raise ImproperlyConfigured(
        f"MARKETPLACE_CURRENCIES must list ISO 4217 codes such as EUR,USD,GBP; got {MARKETPLACE_CURRENCIES!r}."
    )


def _per_currency(name: str, default: str) -> dict[str, Decimal]:
    """Read "EUR=500.00,USD=500.00" into {currency: Decimal}; every allowed currency must have one."""
    raw = env.str(name, default=default)
    values: dict[str, Decimal] = {}
    for part in filter(None, (p.strip() for p in raw.split(","))):
        code, _, amount = part.partition("=")
        try:
            values[code.strip().upper()] = Decimal(amount.strip())
        except InvalidOperation:
            raise ImproperlyConfigured(f"{name}: {part!r} is not CURRENCY=AMOUNT (e.g. EUR=500.00).") from None
    missing = [c for c in MARKETPLACE_CURRENCIES if c not in values]
    if missing:
        raise ImproperlyConfigured(
            f"{name} has no threshold for {', '.join(missing)}: set it as e.g. "
            f"{name}={','.join(f'{c}=500.00' for c in MARKETPLACE_CURRENCIES)}."
        )
    return values


MARKETPLACE_DEFAULT_CURRENCY = env.str("MARKETPLACE_DEFAULT_CURRENCY", default=MARKETPLACE_CURRENCIES[0])
if MARKETPLACE_DEFAULT_CURRENCY not in MARKETPLACE_CURRENCIES:
    raise ImproperlyConfigured(
        f"MARKETPLACE_DEFAULT_CURRENCY {MARKETPLACE_DEFAULT_CURRENCY} is not in MARKETPLACE_CURRENCIES."
    )
MARKETPLACE_PAYMENT_GATEWAY = env.str(
    "MARKETPLACE_PAYMENT_GATEWAY", default="marketplace.payments.gateway.SandboxGateway"
)
# Timers (hours unless named otherwise)
MARKETPLACE_PAYMENT_EXPIRY_MINUTES = env.int("MARKETPLACE_PAYMENT_EXPIRY_MINUTES", default=30)
MARKETPLACE_ACCEPT_EXPIRY_HOURS = env.int("MARKETPLACE_ACCEPT_EXPIRY_HOURS", default=48)
MARKETPLACE_COMPLETION_GRACE_HOURS = env.int("MARKETPLACE_COMPLETION_GRACE_HOURS", default=24)
MARKETPLACE_REVIEW_WINDOW_DAYS = env.int("MARKETPLACE_REVIEW_WINDOW_DAYS", default=14)
MARKETPLACE_DISPUTE_WINDOW_DAYS = env.int("MARKETPLACE_DISPUTE_WINDOW_DAYS", default=14)
MARKETPLACE_DISPUTE_RESPONSE_HOURS = env.int("MARKETPLACE_DISPUTE_RESPONSE_HOURS", default=72)
MARKETPLACE_DISPUTE_SLA_HOURS = env.int("MARKETPLACE_DISPUTE_SLA_HOURS", default=48)
# Reminders go out this long before a deadline (acceptance, review window, dispute response), and
# to a dispute's assignee this long before its SLA runs out.
MARKETPLACE_REMINDER_HOURS = env.int("MARKETPLACE_REMINDER_HOURS", default=24)
MARKETPLACE_DISPUTE_SLA_REMINDER_HOURS = env.int("MARKETPLACE_DISPUTE_SLA_REMINDER_HOURS", default=4)
MARKETPLACE_PAYOUT_HOLD_DAYS = env.int("MARKETPLACE_PAYOUT_HOLD_DAYS", default=7)
# Payout runs: partners claimed per batch (one transaction each); automatic retries of a failed
# payout (backoff doubles from the base); an attempt unfinished this long is handed to a task again.
MARKETPLACE_PAYOUT_RUN_BATCH_PARTNERS = env.int("MARKETPLACE_PAYOUT_RUN_BATCH_PARTNERS", default=100)
MARKETPLACE_PAYOUT_AUTO_RETRIES = env.int("MARKETPLACE_PAYOUT_AUTO_RETRIES", default=3)
MARKETPLACE_PAYOUT_RETRY_BACKOFF_MINUTES = env.int("MARKETPLACE_PAYOUT_RETRY_BACKOFF_MINUTES", default=15)
MARKETPLACE_PAYOUT_ATTEMPT_STALE_SECONDS = env.int("MARKETPLACE_PAYOUT_ATTEMPT_STALE_SECONDS", default=600)
# Payment gateway calls (payments.services.calls): a call still pending this long after it was
# opened (its process died, or the gateway did not answer) is asked again by a task, with the same
# key; a second money operation on a booking waits this long for the one in flight, then is refused.
MARKETPLACE_GATEWAY_CALL_STALE_SECONDS = env.int("MARKETPLACE_GATEWAY_CALL_STALE_SECONDS", default=120)
MARKETPLACE_GATEWAY_CALL_WAIT_SECONDS = env.int("MARKETPLACE_GATEWAY_CALL_WAIT_SECONDS", default=10)
# Schedules (manage.py schedules): minutes between payout runs and between ledger reconciliation checks.
MARKETPLACE_PAYOUT_RUN_MINUTES = env.int("MARKETPLACE_PAYOUT_RUN_MINUTES", default=60)
MARKETPLACE_RECONCILE_MINUTES = env.int("MARKETPLACE_RECONCILE_MINUTES", default=60)
# Money thresholds, one per currency of the allow-list: "EUR=500.00,USD=500.00,GBP=450.00".
# A currency with no threshold stops start-up (below); no threshold is ever compared across currencies.
MARKETPLACE_REFUND_SECOND_APPROVAL_ABOVE = _per_currency(
    "MARKETPLACE_REFUND_SECOND_APPROVAL_ABOVE", "EUR=500.00,USD=500.00,GBP=450.00"
)
MARKETPLACE_PAYOUT_APPROVAL_ABOVE = _per_currency(
    "MARKETPLACE_PAYOUT_APPROVAL_ABOVE", "EUR=1000.00,USD=1000.00,GBP=900.00"
)
MARKETPLACE_PAYOUT_FINANCE_ABOVE = _per_currency(
    "MARKETPLACE_PAYOUT_FINANCE_ABOVE", "EUR=10000.00,USD=10000.00,GBP=9000.00"
)
# A manual balance adjustment above this needs a second person (four-eyes).
MARKETPLACE_ADJUSTMENT_SECOND_APPROVAL_ABOVE = _per_currency(
    "MARKETPLACE_ADJUSTMENT_SECOND_APPROVAL_ABOVE", "EUR=250.00,USD=250.00,GBP=225.00"
)
# Reconciliation flags a partner balance that has been negative for longer than this.
MARKETPLACE_NEGATIVE_BALANCE_ALERT_DAYS = env.int("MARKETPLACE_NEGATIVE_BALANCE_ALERT_DAYS", default=30)
# Cancellation policy: full refund up to this many hours before start, then a partial one.
MARKETPLACE_CANCEL_FULL_REFUND_HOURS = env.int("MARKETPLACE_CANCEL_FULL_REFUND_HOURS", default=48)
MARKETPLACE_CANCEL_LATE_REFUND_RATE = Decimal(env.str("MARKETPLACE_CANCEL_LATE_REFUND_RATE", default="0.50"))
# The email outbox: attempts per email, the first retry wait (doubling), rows per flush, how long a
# flush may keep claiming, and after how long a row left `sending` is reported as stuck.
MARKETPLACE_EMAIL_MAX_ATTEMPTS = env.int("MARKETPLACE_EMAIL_MAX_ATTEMPTS", default=5)
MARKETPLACE_EMAIL_RETRY_BACKOFF_SECONDS = env.int("MARKETPLACE_EMAIL_RETRY_BACKOFF_SECONDS", default=60)
MARKETPLACE_EMAIL_FLUSH_BATCH = env.int("MARKETPLACE_EMAIL_FLUSH_BATCH", default=100)
MARKETPLACE_EMAIL_FLUSH_SECONDS = env.int("MARKETPLACE_EMAIL_FLUSH_SECONDS", default=50)
MARKETPLACE_EMAIL_STUCK_MINUTES = env.int("MARKETPLACE_EMAIL_STUCK_MINUTES", default=15)
# The base of links in emails (defaults to WAGTAILADMIN_BASE_URL).
MARKETPLACE_SITE_URL = env.str("MARKETPLACE_SITE_URL", default="")

# Imports and exports (django-import-export). A larger upload, or an export of more rows, runs as
# a django-q2 task with its progress in the admin instead of inside the request.
MARKETPLACE_IMPORT_INLINE_MAX_BYTES = env.int("MARKETPLACE_IMPORT_INLINE_MAX_BYTES", default=512 * 1024)
# No import file may be larger than this (a 100,000-listing CSV is about 14 MB).
MARKETPLACE_IMPORT_MAX_BYTES = env.int("MARKETPLACE_IMPORT_MAX_BYTES", default=50 * 1024 * 1024)
# An XLSX import is bounded before it is parsed (its unpacked size, the rows, columns and cells its
# sheet declares) and again while it is read: a larger workbook is refused with a message.
MARKETPLACE_IMPORT_MAX_ROWS = env.int("MARKETPLACE_IMPORT_MAX_ROWS", default=200_000)
MARKETPLACE_IMPORT_MAX_COLUMNS = env.int("MARKETPLACE_IMPORT_MAX_COLUMNS", default=50)
MARKETPLACE_IMPORT_MAX_CELLS = env.int("MARKETPLACE_IMPORT_MAX_CELLS", default=2_000_000)
MARKETPLACE_IMPORT_MAX_UNZIPPED_BYTES = env.int("MARKETPLACE_IMPORT_MAX_UNZIPPED_BYTES", default=100 * 1024 * 1024)
MARKETPLACE_EXPORT_INLINE_MAX_ROWS = env.int("MARKETPLACE_EXPORT_INLINE_MAX_ROWS", default=5_000)
# Export files and import files of finished jobs are deleted after this many days (the rows stay).
MARKETPLACE_TRANSFER_FILES_DAYS = env.int("MARKETPLACE_TRANSFER_FILES_DAYS", default=7)
# Our imports write their own audit events (one per object and one per file), not LogEntry rows.
IMPORT_EXPORT_SKIP_ADMIN_LOG = True
# The upload waits for its confirmation in the "import_export" storage (the private one, see
# STORAGES), which every web process shares (the default, a temp folder, would break behind a load
# balancer) and no web server serves. Its names are random (uuid4).
IMPORT_EXPORT_TMP_STORAGE_CLASS = "import_export.tmp_storages.MediaStorage"
# /api/health/: the task cluster is "stale" when no cluster stat or finished task is younger than this.
MARKETPLACE_HEALTH_TASK_HEARTBEAT_SECONDS = env.int("MARKETPLACE_HEALTH_TASK_HEARTBEAT_SECONDS", default=120)
