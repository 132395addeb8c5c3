"""A partner's balance per currency, from the ledger, and what of it a payout may pay now.

For a partner P in currency C:

    owed      what the ledger says the platform owes P (captures less fees, refunds, chargebacks,
              adjustments, payouts paid and reversed): -SUM(provider_payable entries)
    in_flight what live payouts not yet paid will pay (their amounts)
    unpaid    the payable of P's captured bookings that no live payout holds (`payments.payable`)
    mature    the part of `unpaid` past its hold and dispute window (`payments.payable.mature_q`)
    carried   owed - in_flight - unpaid: the balance no booking accounts for. Negative after a
              refund or chargeback on a booking already paid out; positive after a credit adjustment.

A payout pays `mature + carried` (its items are the mature bookings, `Payout.carried` the rest),
and only when that is above zero: a negative balance is carried forward, and the next payouts net
it. The payout run computes the same figures in one SQL statement from the same definitions.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.db.models import Count, Q, Sum
from django.utils import timezone

from marketplace.bookings.models import Booking
from marketplace.core.money import ZERO, quantize
from marketplace.ledger.models import LedgerEntry
from marketplace.payments.payable import mature_q, payable_expression
from marketplace.payouts.models import Payout, PayoutItem

S = Payout.Status
# Payouts that will still pay (or may, after a retry): their amounts are committed, not yet posted.
UNPAID_STATES = tuple(s for s in S.values if s not in (S.PAID, S.CANCELLED, S.REVERSED))


@dataclass
class Balance:
    partner_id: int
    currency: str
    owed: Decimal = ZERO
    in_flight: Decimal = ZERO
    unpaid: Decimal = ZERO
    mature: Decimal = ZERO
    mature_bookings: int = 0

    @property
    def carried(self) -> Decimal:
        return self.owed - self.in_flight - self.unpaid

    @property
    def withheld(self) -> Decimal:
        """Owed for bookings still in their hold or dispute window (or not settled yet)."""
        return self.unpaid - self.mature

    @property
    def payable_now(self) -> Decimal:
        """What a payout created now would pay (may be zero or negative: nothing is paid then)."""
        return self.mature + self.carried


def payout_cutoff(now=None):
    """Bookings completed (or cancelled) before this are past the payout hold."""
    return (now or timezone.now()) - timedelta(days=settings.MARKETPLACE_PAYOUT_HOLD_DAYS)


def unpaid_bookings(*, partner_ids=None, currency: str | None = None):
    """Captured bookings that no live payout holds, with their payable annotated."""
    qs = Booking.objects.filter(payment__captured_amount__gt=0).exclude(
        pk__in=PayoutItem.objects.filter(is_active=True).values("booking_id")
    )
    if partner_ids is not None:
        qs = qs.filter(partner_id__in=list(partner_ids))
    if currency is not None:
        qs = qs.filter(currency=currency)
    return qs.annotate(payable=payable_expression())


def partner_balances(*, partner_ids=None, currency: str | None = None, now=None) -> dict[tuple[int, str], Balance]:
    """Balances keyed by (partner id, currency), in three aggregate queries. Never adds two currencies."""
    now = now or timezone.now()
    mature = mature_q(cutoff=payout_cutoff(now), now=now)
    balances: dict[tuple[int, str], Balance] = {}

    def get(partner_id, code) -> Balance:
        return balances.setdefault((partner_id, code), Balance(partner_id=partner_id, currency=code))

    ledger = LedgerEntry.objects.filter(account=LedgerEntry.Account.PROVIDER_PAYABLE)
    payouts = Payout.objects.filter(status__in=UNPAID_STATES)
    if partner_ids is not None:
        ledger = ledger.filter(partner_id__in=list(partner_ids))
        payouts = payouts.filter(partner_id__in=list(partner_ids))
    if currency is not None:
        ledger, payouts = ledger.filter(currency=currency), payouts.filter(currency=currency)
    for row in ledger.values("partner_id", "currency").annotate(t=Sum("amount")).order_by():
        get(row["partner_id"], row["currency"]).owed = -quantize(row["t"] or ZERO)
    for row in payouts.values("partner_id", "currency").annotate(t=Sum("amount")).order_by():
        get(row["partner_id"], row["currency"]).in_flight = quantize(row["t"] or ZERO)
    rows = (
        unpaid_bookings(partner_ids=partner_ids, currency=currency)
        .values("partner_id", "currency")
        .annotate(
            unpaid=Sum("payable"),
            mature=Sum("payable", filter=mature),
            n=Count("pk", filter=mature & Q(payable__gt=0)),
        )
        .order_by()
    )
    for row in rows:
        balance = get(row["partner_id"], row["currency"])
        balance.unpaid = quantize(row["unpaid"] or ZERO)
        balance.mature = quantize(row["mature"] or ZERO)
        balance.mature_bookings = row["n"] or 0
    return balances


def partner_balance_rows(partner) -> list[Balance]:
    """One partner's balances, one per currency it has ever had money in, by currency."""
    return sorted(partner_balances(partner_ids=[partner.pk]).values(), key=lambda b: b.currency)
