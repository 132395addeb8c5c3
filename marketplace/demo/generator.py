"""The scale generator: `load_demo_data --scale N` writes N bookings and what they need, in bulk.

For N bookings: ~N/10 clients (each with a saved card), ~N/50 service providers, ~N/5000 partners
(at least 3: one integrator for the jobs board, the rest provider businesses, with payout accounts
and memberships), a 2-level category tree, ~N/20 listings in every moderation state, and the
bookings in a realistic mix of states with their payments, refunds, disputes and the ledger
postings of every captured payment and refund, so `ledger_reconcile()` stays balanced.

Rows come from a seeded `random.Random` as tuples (`marketplace.demo.rows`) and go through
`marketplace.core.bulk` (binary COPY from a writer thread on PostgreSQL, batched INSERTs on
SQLite), never through save(). They satisfy every constraint of the models, which the database
checks as they arrive. A run uses its own label in every email and slug, so the generator can run
again on the same database. The statement count depends on the number of batches, not on N. The
load is one transaction, ending with ANALYZE and the reconciliation: all of it or nothing.

This is the one place that writes rows without the services, on purpose: it is how a million
bookings load in minutes. It writes no audit events or notifications per row; the load itself is
recorded as one audit event.
"""

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from django.db import transaction

from marketplace.accounts.models import User
from marketplace.audit.services import event_record
from marketplace.bookings.models import Booking
from marketplace.catalog.models import Category, Listing
from marketplace.core.bulk import BulkWriteError, bulk_writer, table_sizes
from marketplace.core.money import quantize
from marketplace.demo.demo import books_balance
from marketplace.demo.rows import EMAIL_DOMAIN, RowGenerator
from marketplace.disputes.models import Dispute
from marketplace.ledger.models import LedgerEntry, LedgerTransaction
from marketplace.partners.models import Partner, PartnerMembership, PayoutAccount
from marketplace.payments.models import Payment, PaymentMethod, Refund
from marketplace.payouts.reconciliation import Reconciliation, ledger_reconcile

DEFAULT_SEED = 20240601
DEFAULT_BATCH_SIZE = 50_000
LABEL_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")

# Every table the generator writes, in foreign-key order.
MODELS = [
    Category,
    Partner,
    PayoutAccount,
    User,
    PartnerMembership,
    PaymentMethod,
    Listing,
    Booking,
    Payment,
    Refund,
    Dispute,
    LedgerTransaction,
    LedgerEntry,
]


class ScaleError(Exception):
    """The scale load was refused or did not reconcile; nothing was written."""


@dataclass(frozen=True)
class ScalePlan:
    bookings: int
    clients: int
    providers: int
    partners: int
    listings: int

    @classmethod
    def for_bookings(cls, n: int, *, partners: int | None = None) -> "ScalePlan":
        return cls(
            bookings=n,
            clients=max(10, n // 10),
            providers=max(5, n // 50),
            partners=max(3, partners or n // 5000),
            listings=max(10, n // 20),
        )


@dataclass
class ScaleReport:
    plan: ScalePlan
    run_label: str
    vendor: str
    seed: int
    rows: dict[str, int]
    booking_states: dict[str, int]
    statements: int
    load_seconds: float
    check_seconds: float
    sizes: dict[str, int] = field(default_factory=dict)
    write_seconds: dict[str, float] = field(default_factory=dict)
    reconciliation: Reconciliation | None = None

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())

    def lines(self) -> list[str]:
        header = f"  {'table':<28}{'rows':>11}{'write s':>10}" + (f"{'size':>14}" if self.sizes else "")
        lines = [f"Run {self.run_label} (seed {self.seed}) on {self.vendor}:", header]
        for table, count in self.rows.items():
            size = f"{self.sizes[table] / 2**20:10.1f} MiB" if table in self.sizes else ""
            lines.append(f"  {table:<28}{count:>11,}{self.write_seconds.get(table, 0.0):>10.1f}{size}")
        lines.append(f"  {'total':<28}{self.total_rows:>11,}")
        lines.append("  bookings by state: " + ", ".join(f"{k} {v:,}" for k, v in self.booking_states.items()))
        if self.reconciliation is not None:
            for currency, figures in self.reconciliation.totals.items():
                totals = {name: quantize(value) for name, value in figures.items()}
                lines.append(
                    f"  ledger reconciled ({currency}): payments {totals['payments']}, refunds {totals['refunds']}, "
                    f"provider payable {totals['provider_payable']}, platform revenue {totals['platform_revenue']}"
                )
        return lines

    def timing_line(self) -> str:
        return (
            f"Loaded {self.plan.bookings:,} bookings ({self.total_rows:,} rows in {self.statements:,} statements) "
            f"in {self.load_seconds:.1f} s: {self.total_rows / self.load_seconds:,.0f} rows/s, "
            f"{self.plan.bookings / self.load_seconds:,.0f} bookings/s; "
            f"ANALYZE + reconciliation {self.check_seconds:.1f} s."
        )


def default_run_label() -> str:
    return "s" + datetime.now(UTC).strftime("%y%m%d%H%M%S%f")[:-3]


def scale_load(
    *,
    n: int,
    seed: int = DEFAULT_SEED,
    batch_size: int = DEFAULT_BATCH_SIZE,
    run_label: str | None = None,
    partners: int | None = None,
    log: Callable[[str], None] = lambda _: None,
) -> ScaleReport:
    """Generate `n` bookings and everything they need in one transaction. Refuses a used run label."""
    if n < 1:
        raise ScaleError("--scale needs a number of bookings of at least 1.")
    if batch_size < 1:
        raise ScaleError("--batch-size must be at least 1.")
    run_label = run_label or default_run_label()
    if not LABEL_RE.match(run_label):
        raise ScaleError(f"A run label is lower-case letters, digits and dashes (at most 40), not {run_label!r}.")
    if User.objects.filter(email__startswith=f"{run_label}.", email__endswith=f"@{EMAIL_DOMAIN}").exists():
        raise ScaleError(f"The run label {run_label!r} was used already; pick another one.")

    plan = ScalePlan.for_bookings(n, partners=partners)
    writer = bulk_writer()
    log(
        f"Generating {plan.bookings:,} bookings, {plan.listings:,} listings, {plan.clients:,} clients, "
        f"{plan.providers:,} providers, {plan.partners:,} partners (run {run_label}, seed {seed}, "
        f"{'binary COPY' if writer.vendor == 'postgresql' else 'batched INSERT'}, batches of {batch_size:,})"
    )
    started = time.perf_counter()
    with transaction.atomic():
        generator = RowGenerator(plan, seed=seed, label=run_label, writer=writer, batch_size=batch_size, log=log)
        try:
            writer.prepare(MODELS)
            generator.run(started)
            writer.flush()
            load_seconds = time.perf_counter() - started
            writer.finish(MODELS)
        except BulkWriteError as exc:
            raise ScaleError(f"{exc} Nothing was written.") from exc
        finally:
            writer.close()
        reconciliation = ledger_reconcile()
        if not books_balance(reconciliation):
            raise ScaleError(f"The ledger does not reconcile after the scale load: {reconciliation.mismatches}")
        rows = {m._meta.db_table: generator.rows[m] for m in MODELS}
        event_record(
            verb="demo.scale_loaded",
            data={"run": run_label, "seed": seed, "bookings": n, "rows": sum(rows.values())},
        )
    check_seconds = time.perf_counter() - started - load_seconds
    return ScaleReport(
        plan=plan,
        run_label=run_label,
        vendor=writer.vendor,
        seed=seed,
        rows=rows,
        booking_states=dict(sorted(generator.booking_states.items(), key=lambda kv: -kv[1])),
        statements=writer.statements,
        load_seconds=load_seconds,
        check_seconds=check_seconds,
        sizes=table_sizes(MODELS),
        write_seconds=writer.seconds,
        reconciliation=reconciliation,
    )
