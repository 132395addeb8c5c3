"""Chargebacks: the client's bank pulls a payment back. Nobody here asks for it; the gateway reports it.

A chargeback is recorded like a refund the platform did not choose (a `Refund` row under the key
`chargeback:<gateway reference>`, split between the provider's share and the fee the same way, and
the same ledger posting). It lives here, above payments, because it also shrinks the live payout
that would pay the booking. If the booking was already paid out, the provider's share becomes a
negative balance that the partner's next payouts net off (`balances.py`).
"""

from dataclasses import dataclass
from decimal import Decimal

from django.db import transaction

from marketplace.audit.services import event_record
from marketplace.bookings.models import Booking
from marketplace.core.exceptions import InvalidInput, TransitionNotAllowed
from marketplace.core.money import ZERO, quantize
from marketplace.core.transitions import lock
from marketplace.payments.models import Payment, Refund
from marketplace.payments.services.payments import payment_refund_record
from marketplace.payouts.services import payout_recompute_for_booking


@dataclass
class _BankEvent:
    """What `payment_refund_record` reads of a gateway call, for money the bank moved on its own."""

    payment_id: int
    amount: Decimal
    reason: str
    reference: str
    refund_key: str
    actor: object = None
    payment: object = None


def payment_chargeback(*, payment: Payment, amount: Decimal, reference: str, reason: str) -> Refund:
    """Record a chargeback of `amount` reported by the gateway under `reference` (once per reference).

    Refuses (InvalidInput, writing nothing) more than is left on the payment, or the same reference
    for another amount.
    """
    amount = quantize(amount)
    if amount <= ZERO:
        raise InvalidInput("A chargeback must be more than zero.")
    if not (reference or "").strip():
        raise InvalidInput("A chargeback needs the gateway's reference.")
    key = f"chargeback:{reference}"
    with transaction.atomic():
        booking = lock(Booking, payment.booking_id)
        payment = lock(Payment, payment.pk)
        existing = Refund.objects.filter(idempotency_key=key).first()
        if existing is not None:
            if (existing.payment_id, existing.amount) != (payment.pk, amount):
                raise InvalidInput(f"Chargeback {reference} was already recorded for {existing.amount}.")
            return existing
        if payment.status not in (Payment.Status.CAPTURED, Payment.Status.PARTIALLY_REFUNDED):
            raise TransitionNotAllowed(payment, "charge back")
        if amount > payment.refundable:
            raise InvalidInput(
                f"A chargeback of {amount} {payment.currency} exceeds the {payment.refundable} {payment.currency} "
                f"left on payment #{payment.pk}."
            )
        refund = payment_refund_record(
            call=_BankEvent(
                payment_id=payment.pk,
                amount=amount,
                reason=f"Chargeback: {reason}".strip(),
                reference=reference,
                refund_key=key,
            )
        )
        event_record(
            verb="payment.chargeback",
            target=payment,
            reason=reason,
            data={"refund": refund.pk, "amount": str(amount), "reference": reference, "booking": booking.pk},
        )
        payout_recompute_for_booking(booking=booking, actor=None, reason=f"Chargeback {reference}")
    return refund
