"""The curated demo: the numbered TOML fixtures of `fixtures/`, loaded through the real services.

Every object is created and moved to its state by the service functions of the domain, so the audit
log, the ledger, the notifications and the email outbox are exactly what production would hold.
Only the clock is helped: where a transition needs a deadline to have passed (the payment deadline,
the payout hold period, the review window, the dispute SLA), that deadline is first moved into the
past with a queryset update, the precondition the timer would otherwise wait for; each place says so.

The load is one transaction: it ends with the ledger reconciliation and rolls back entirely if the
books do not balance or an object did not reach the state its fixture declares. It runs once: the
demo admin account is the marker, and a second run changes nothing.
"""

import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from django.conf import settings
from django.db import connection, transaction

from marketplace.accounts.models import User
from marketplace.accounts.second_factor import second_factor_demo_devices_ensure
from marketplace.core.money import quantize
from marketplace.demo.curated import MARKER_EMAIL, CuratedLoader, DemoLoadError
from marketplace.demo.summary import demo_summary
from marketplace.payouts.reconciliation import Reconciliation, ledger_reconcile

FIXTURES_DIR = Path(settings.BASE_DIR) / "fixtures"


@dataclass
class DemoResult:
    loaded: bool
    summary: list[tuple[str, list[tuple[str, int]]]] = field(default_factory=list)
    reconciliation: Reconciliation | None = None
    accounts: list[tuple[str, str]] = field(default_factory=list)


def books_balance(reconciliation: Reconciliation) -> bool:
    """Whether `ledger_reconcile()` found the books balanced.

    On SQLite, decimals are stored as REAL, so its SUM()s carry binary-float noise below the cent
    that ledger_reconcile() compares unrounded (e.g. expected 76434.72000000020, ledger
    76434.7200000001). There, a mismatch that disappears at the cent is that noise, not money.
    """
    if reconciliation.balanced:
        return True
    if connection.vendor != "sqlite" or reconciliation.unbalanced_transactions:
        return False
    return all(quantize(Decimal(m["expected"])) == quantize(Decimal(m["ledger"])) for m in reconciliation.mismatches)


def demo_is_loaded() -> bool:
    return User.objects.filter(email=MARKER_EMAIL).exists()


def demo_password(directory: Path = FIXTURES_DIR) -> str:
    """The one password of every demo account, documented in fixtures/01_staff.toml."""
    with (directory / "01_staff.toml").open("rb") as fh:
        return tomllib.load(fh)["password"]


def fixtures_read(directory: Path = FIXTURES_DIR) -> dict:
    """Merge the numbered TOML files of `directory` in name order: lists concatenate, scalars are set."""
    files = sorted(directory.glob("[0-9][0-9]_*.toml"))
    if not files:
        raise DemoLoadError(f"No numbered fixtures (NN_name.toml) in {directory}.")
    data: dict = {}
    for path in files:
        with path.open("rb") as fh:
            for key, value in tomllib.load(fh).items():
                if isinstance(value, list):
                    data.setdefault(key, []).extend(value)
                else:
                    data[key] = value
    return data


def demo_load(*, fixtures_dir: Path = FIXTURES_DIR, log: Callable[[str], None] = lambda _: None) -> DemoResult:
    """Load the curated demo through the services, once. Returns loaded=False if it was already there."""
    if demo_is_loaded():
        return DemoResult(loaded=False)
    data = fixtures_read(fixtures_dir)
    with transaction.atomic():
        loader = CuratedLoader(data, log)
        loader.run()
        if settings.MARKETPLACE_DEMO_TOTP_SECRET:  # development only (check --deploy refuses it)
            log("  second factor (the development TOTP secret)…")
            second_factor_demo_devices_ensure(secret=settings.MARKETPLACE_DEMO_TOTP_SECRET)
        reconciliation = ledger_reconcile()
        if not books_balance(reconciliation):
            raise DemoLoadError(
                f"The ledger does not reconcile after the demo load: {reconciliation.mismatches} "
                f"(unbalanced transactions: {reconciliation.unbalanced_transactions})"
            )
    accounts = [(row["email"], ", ".join(row.get("groups", [])) or "superuser") for row in data["staff"]]
    accounts += [(row["email"], row["role"]) for row in data["users"]]
    return DemoResult(loaded=True, summary=demo_summary(), reconciliation=reconciliation, accounts=accounts)
