"""Reading the ledger: balances, and the reconciliation proof that the books balance to the cent."""

from dataclasses import dataclass, field
from decimal import Decimal

from django.apps import apps
from django.db.models import F, Q, Sum

from marketplace.core.money import CENT, ZERO, quantize
from marketplace.ledger.models import LedgerEntry, LedgerTransaction

A = LedgerEntry.Account


@dataclass
class Reconciliation:
    balanced: bool
    unbalanced_transactions: list[int] = field(default_factory=list)
    mismatches: list[dict] = field(default_factory=list)
    totals: dict[str, Decimal] = field(default_factory=dict)


def ledger_balance(*, account: str, partner_id: int | None = None) -> Decimal:
    """The signed balance of an account (debits positive), optionally for one partner."""
    qs = LedgerEntry.objects.filter(account=account)
    if partner_id is not None:
        qs = qs.filter(partner_id=partner_id)
    return quantize(qs.aggregate(total=Sum("amount"))["total"] or ZERO)


# Sums are rounded to the cent: exact on PostgreSQL, and SQLite (floats underneath) agrees to the cent.
def _sum(qs, expr) -> Decimal:
    return quantize(qs.aggregate(total=Sum(expr))["total"] or ZERO)


def _by_partner(qs, partner_path: str, expr) -> dict[int, Decimal]:
    return {row["p"]: quantize(row["total"] or ZERO) for row in qs.values(p=F(partner_path)).annotate(total=Sum(expr))}


def ledger_reconcile() -> Reconciliation:
    """Prove the books: every transaction sums to zero, and the ledger matches the operational
    tables (payments, refunds, payouts) to the cent, in total and per partner.

    The operational models are looked up through the app registry because they sit above the
    ledger in the import order. Each figure is one aggregate query; nothing is pulled row by row.
    """
    Payment = apps.get_model("payments", "Payment")
    Refund = apps.get_model("payments", "Refund")
    Payout = apps.get_model("payouts", "Payout")

    unbalanced = list(
        LedgerTransaction.objects.annotate(total=Sum("entries__amount"))
        .filter(Q(total__gte=CENT) | Q(total__lte=-CENT))
        .values_list("pk", flat=True)[:100]
    )
    captured = Payment.objects.filter(captured_amount__gt=0)
    refunds = Refund.objects.all()
    paid = Payout.objects.filter(status="paid")

    expected = {
        "cash": _sum(captured, "captured_amount") - _sum(refunds, "amount") - _sum(paid, "amount"),
        "platform_revenue": _sum(captured, "booking__platform_fee") - _sum(refunds, "platform_share"),
    }
    expected["provider_payable"] = expected["cash"] - expected["platform_revenue"]
    actual = {
        "cash": ledger_balance(account=A.CASH),
        "platform_revenue": -ledger_balance(account=A.PLATFORM_REVENUE),
        "provider_payable": -ledger_balance(account=A.PROVIDER_PAYABLE),
    }
    mismatches = [
        {"account": name, "expected": str(expected[name]), "ledger": str(actual[name])}
        for name in expected
        if expected[name] != actual[name]
    ]

    owed = _by_partner(captured, "booking__partner_id", F("captured_amount") - F("booking__platform_fee"))
    for partner_id, amount in _by_partner(refunds, "payment__booking__partner_id", "provider_share").items():
        owed[partner_id] = owed.get(partner_id, ZERO) - amount
    for partner_id, amount in _by_partner(paid, "partner_id", "amount").items():
        owed[partner_id] = owed.get(partner_id, ZERO) - amount
    ledger_owed = {
        row["partner_id"]: -quantize(row["total"] or ZERO)
        for row in LedgerEntry.objects.filter(account=A.PROVIDER_PAYABLE)
        .values("partner_id")
        .annotate(total=Sum("amount"))
    }
    for partner_id in sorted(set(owed) | set(ledger_owed)):
        exp, got = owed.get(partner_id, ZERO), ledger_owed.get(partner_id, ZERO)
        if exp != got:
            mismatches.append(
                {"account": "provider_payable", "partner": partner_id, "expected": str(exp), "ledger": str(got)}
            )

    payments_total = _sum(captured, "captured_amount")
    totals = {
        "payments": payments_total,
        "refunds": _sum(refunds, "amount"),
        "payouts": _sum(paid, "amount"),
        "provider_payable": actual["provider_payable"],
        "platform_revenue": actual["platform_revenue"],
        "cash": actual["cash"],
        "ledger_sum": _sum(LedgerEntry.objects.all(), "amount"),
    }
    if totals["ledger_sum"] != ZERO:
        mismatches.append({"account": "*", "expected": "0.00", "ledger": str(totals["ledger_sum"])})
    return Reconciliation(
        balanced=not unbalanced and not mismatches,
        unbalanced_transactions=unbalanced,
        mismatches=mismatches,
        totals=totals,
    )


@dataclass
class MoneyRow:
    """One ledger entry as a statement line: debits positive, credits shown as positive amounts."""

    at: object
    transaction_id: int
    kind: str
    account: str
    debit: Decimal | None
    credit: Decimal | None


@dataclass
class BookingMoney:
    """A booking's own ledger postings (capture, fee, refunds), oldest first, and what they leave.

    `cash` is what the gateway holds for it (captured minus refunded), `provider_owed` what the
    provider is owed from it and `platform_revenue` the platform's fee net of refunds. Payouts are
    posted per payout, not per booking, so they are not here.
    """

    rows: list[MoneyRow]
    cash: Decimal
    provider_owed: Decimal
    platform_revenue: Decimal
    currency: str


def booking_money(booking_id: int) -> BookingMoney:
    """One query: the entries of the booking's ledger transactions, with their transaction."""
    entries = list(
        LedgerEntry.objects.filter(transaction__booking_id=booking_id)
        .select_related("transaction")
        .order_by("transaction__created_at", "transaction_id", "pk")
    )

    def total(account: str) -> Decimal:
        return quantize(sum((e.amount for e in entries if e.account == account), ZERO))

    return BookingMoney(
        rows=[
            MoneyRow(
                at=e.transaction.created_at,
                transaction_id=e.transaction_id,
                kind=e.transaction.get_kind_display(),
                account=e.get_account_display(),
                debit=e.amount if e.amount > 0 else None,
                credit=-e.amount if e.amount < 0 else None,
            )
            for e in entries
        ],
        cash=total(A.CASH),
        provider_owed=-total(A.PROVIDER_PAYABLE),
        platform_revenue=-total(A.PLATFORM_REVENUE),
        currency=entries[0].currency if entries else "",
    )
