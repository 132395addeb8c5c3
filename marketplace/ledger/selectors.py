"""Reading the ledger: balances and a booking's postings. The proof that the ledger agrees with
payments, refunds and payouts reads those tables too, so it lives above them
(`marketplace.payouts.reconciliation`)."""

from dataclasses import dataclass
from decimal import Decimal

from django.db.models import Sum

from marketplace.core.money import ZERO, quantize
from marketplace.ledger.models import LedgerEntry

A = LedgerEntry.Account


def ledger_balance(*, account: str, partner_id: int | None = None, currency: str | None = None) -> Decimal:
    """The signed balance of an account (debits positive), optionally for one partner and one currency.

    Without `currency` the sum spans currencies: only meaningful where the caller knows there is one.
    """
    qs = LedgerEntry.objects.filter(account=account)
    if partner_id is not None:
        qs = qs.filter(partner_id=partner_id)
    if currency is not None:
        qs = qs.filter(currency=currency)
    return quantize(qs.aggregate(total=Sum("amount"))["total"] or ZERO)


def ledger_partner_balances(partner_id: int) -> dict[str, Decimal]:
    """What the platform owes a partner, per currency (negative: the partner owes the platform)."""
    rows = (
        LedgerEntry.objects.filter(account=A.PROVIDER_PAYABLE, partner_id=partner_id)
        .values("currency")
        .annotate(total=Sum("amount"))
        .order_by("currency")
    )
    return {row["currency"]: -quantize(row["total"] or ZERO) for row in rows}


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
