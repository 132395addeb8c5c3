"""What a booking leaves its provider: the one definition of the payable, and when it may be paid.

    payable = captured - refunded - (platform fee - fee refunded)

that is, what the client paid and kept paid, less the platform's fee net of the fee given back with
refunds. The fee is fixed when the booking is made (`core.money.fee_and_share`, half up to the
cent) and each refund's split is fixed when it is made (`Refund.platform_share`), so the payable is
a plain sum of stored amounts: exact in every rendering, with no rounding of its own.

The formula is written once, as `TERMS`, and rendered three ways from it: `payable()` for Python,
`payable_expression()` for the ORM (previews, balances, the portable payout path) and
`payable_sql()` for the payout run's set-based SQL. `mature_q()`/`mature_sql()` are the one rule
for when a booking's payable may be paid: settled, past the hold period and past its dispute window
(or cancelled before the hold period with money kept).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from django.db.models import DecimalField, ExpressionWrapper, F, OuterRef, Q, Subquery, Sum, Value
from django.db.models.functions import Coalesce

from marketplace.core.money import AMOUNT_DIGITS, AMOUNT_PLACES, ZERO

# term -> sign. The payable is the signed sum of these four stored amounts.
TERMS: tuple[tuple[str, int], ...] = (
    ("captured", +1),  # Payment.captured_amount
    ("refunded", -1),  # Payment.refunded_amount
    ("fee", -1),  # Booking.platform_fee
    ("fee_refunded", +1),  # the sum of the payment's Refund.platform_share
)
# Booking states whose money is settled (no longer moves with the booking's own workflow).
SETTLED = ("completed", "resolved", "closed")
# Bookings that have left the dispute window for good (a resolved dispute cannot be reopened).
FINAL = ("resolved", "closed")
# A booking cancelled after capture keeps what the cancellation policy did not refund.
CANCELLED = "cancelled"
MONEY = DecimalField(max_digits=AMOUNT_DIGITS, decimal_places=AMOUNT_PLACES)


def payable(*, captured: Decimal, refunded: Decimal, fee: Decimal, fee_refunded: Decimal) -> Decimal:
    """The payable of one booking from its four amounts."""
    values = {"captured": captured, "refunded": refunded, "fee": fee, "fee_refunded": fee_refunded}
    return sum((sign * Decimal(values[name]) for name, sign in TERMS), ZERO)


def booking_payable(*, booking, payment) -> Decimal:
    """The payable of `booking` now (one query for its refunds' fee share)."""
    if payment is None:
        return ZERO
    fee_refunded = payment.refunds.aggregate(t=Sum("platform_share"))["t"] or ZERO
    return payable(
        captured=payment.captured_amount,
        refunded=payment.refunded_amount,
        fee=booking.platform_fee,
        fee_refunded=fee_refunded,
    )


def payable_expression():
    """The payable as an ORM expression on `Booking` (through its payment and refunds)."""
    from marketplace.payments.models import Refund

    fee_refunded = (
        Refund.objects.filter(payment=OuterRef("payment"))
        .values("payment")
        .annotate(t=Sum("platform_share"))
        .values("t")
    )
    columns = {
        "captured": F("payment__captured_amount"),
        "refunded": F("payment__refunded_amount"),
        "fee": F("platform_fee"),
        "fee_refunded": Coalesce(Subquery(fee_refunded, output_field=MONEY), Value(ZERO)),
    }
    expression = Value(ZERO, output_field=MONEY)
    for name, sign in TERMS:
        expression = expression + columns[name] if sign > 0 else expression - columns[name]
    return ExpressionWrapper(expression, output_field=MONEY)


def payable_sql(columns: dict[str, str]) -> str:
    """The payable as SQL text, given each term's column expression (e.g. {"captured": "p.captured_amount"})."""
    return "(" + " ".join(f"{'+' if sign > 0 else '-'} {columns[name]}" for name, sign in TERMS) + ")"


def mature_q(*, cutoff: datetime, now: datetime, prefix: str = "") -> Q:
    """Bookings whose payable may be paid: settled, completed before `cutoff` (the hold period),
    and either final or past their own dispute window; or cancelled before `cutoff` with money kept
    (a late cancellation's share)."""
    settled = Q(**{f"{prefix}status__in": SETTLED, f"{prefix}completed_at__lte": cutoff}) & (
        Q(**{f"{prefix}status__in": FINAL})
        | Q(**{f"{prefix}dispute_window_ends_at__isnull": True})
        | Q(**{f"{prefix}dispute_window_ends_at__lte": now})
    )
    return settled | Q(**{f"{prefix}status": CANCELLED, f"{prefix}cancelled_at__lte": cutoff})


def mature_sql(alias: str) -> str:
    """`mature_q` as SQL over the booking alias `alias`, with %(cutoff)s and %(now)s parameters."""
    settled = ", ".join(f"'{s}'" for s in SETTLED)
    final = ", ".join(f"'{s}'" for s in FINAL)
    return (
        f"(({alias}.status IN ({settled}) AND {alias}.completed_at <= %(cutoff)s"
        f" AND ({alias}.status IN ({final}) OR {alias}.dispute_window_ends_at IS NULL"
        f" OR {alias}.dispute_window_ends_at <= %(now)s))"
        f" OR ({alias}.status = '{CANCELLED}' AND {alias}.cancelled_at <= %(cutoff)s))"
    )
