"""Booking transitions that move money: authorise, accept (capture), decline, expire, cancel (refund).

Each locks the booking first and then its payment, always in that order.
"""

from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from marketplace.audit.services import event_record
from marketplace.bookings.models import Booking
from marketplace.bookings.services import TRANSITIONS, booking_apply_transition, booking_is_operator
from marketplace.core.exceptions import InvalidInput, NotPermitted, PaymentFailed
from marketplace.core.money import ZERO, quantize
from marketplace.core.transitions import guard, lock
from marketplace.payments.gateway import get_gateway
from marketplace.payments.models import Payment, PaymentMethod
from marketplace.payments.services.payments import payment_capture, payment_refund, payment_void

B = Booking.Status


def booking_authorize(*, booking: Booking, actor, method: PaymentMethod) -> Booking:
    """The client pays: authorise the amount on their saved method; the provider then accepts."""
    with transaction.atomic():
        booking = lock(Booking, booking.pk)
        guard(booking, TRANSITIONS, "authorize")
        if actor.pk != booking.client_id:
            raise NotPermitted(f"Only the client of booking #{booking.pk} can pay for it.")
        if method.user_id != booking.client_id:
            raise NotPermitted("This payment method belongs to someone else.")
        if booking.expires_at and booking.expires_at < timezone.now():
            raise InvalidInput(f"Booking #{booking.pk} waited too long for payment and can no longer be paid.")
        result = get_gateway().authorize(
            token=method.gateway_token,
            amount=booking.amount,
            currency=booking.currency,
            idempotency_key=f"authorize:booking:{booking.pk}",
        )
        if not result.ok:
            raise PaymentFailed(f"The payment for booking #{booking.pk} was declined: {result.error}")
        payment = Payment.objects.create(
            booking=booking,
            method=method,
            amount=booking.amount,
            currency=booking.currency,
            gateway_reference=result.reference,
        )
        event_record(
            verb="payment.authorized",
            actor=actor,
            target=payment,
            to_state=payment.status,
            data={"amount": str(payment.amount), "booking": booking.pk},
        )
        return booking_apply_transition(booking=booking, actor=actor, transition="authorize")


def booking_accept(*, booking: Booking, actor) -> Booking:
    """The provider (or an operator) accepts: the payment is captured and posted to the ledger."""
    with transaction.atomic():
        booking = lock(Booking, booking.pk)
        guard(booking, TRANSITIONS, "accept")
        if actor.pk != booking.provider_id and not booking_is_operator(booking=booking, actor=actor):
            raise NotPermitted(f"Only the provider or an operator can accept booking #{booking.pk}.")
        payment_capture(payment=Payment.objects.get(booking=booking), booking=booking, actor=actor)
        return booking_apply_transition(booking=booking, actor=actor, transition="accept")


def _void_if_authorized(booking: Booking, actor, reason: str) -> None:
    payment = Payment.objects.filter(booking=booking).first()
    if payment is not None and payment.status == Payment.Status.AUTHORIZED:
        payment_void(payment=payment, actor=actor, reason=reason)


def booking_decline(*, booking: Booking, actor, reason: str = "") -> Booking:
    """The provider (or an operator) declines; any authorisation is released."""
    with transaction.atomic():
        booking = lock(Booking, booking.pk)
        guard(booking, TRANSITIONS, "decline")
        if actor.pk != booking.provider_id and not booking_is_operator(booking=booking, actor=actor):
            raise NotPermitted(f"Only the provider or an operator can decline booking #{booking.pk}.")
        _void_if_authorized(booking, actor, reason)
        return booking_apply_transition(booking=booking, actor=actor, transition="decline", reason=reason)


def booking_expire(*, booking: Booking, actor=None) -> Booking:
    """The timer: a booking left waiting for payment or acceptance past its deadline expires."""
    with transaction.atomic():
        booking = lock(Booking, booking.pk)
        guard(booking, TRANSITIONS, "expire")
        if booking.expires_at is None or booking.expires_at > timezone.now():
            raise InvalidInput(f"Booking #{booking.pk} has not reached its deadline yet.")
        _void_if_authorized(booking, actor, "expired")
        return booking_apply_transition(booking=booking, actor=actor, transition="expire")


def booking_cancellation_refund(*, booking: Booking, now=None) -> Decimal:
    """The refund the cancellation policy gives: all of it until the cut-off before the start, then a share."""
    payment = Payment.objects.filter(booking=booking).first()
    if payment is None or payment.refundable <= ZERO:
        return ZERO
    now = now or timezone.now()
    if now <= booking.starts_at - timedelta(hours=settings.MARKETPLACE_CANCEL_FULL_REFUND_HOURS):
        return payment.refundable
    return min(payment.refundable, quantize(payment.captured_amount * settings.MARKETPLACE_CANCEL_LATE_REFUND_RATE))


def booking_cancel(*, booking: Booking, actor, reason: str, refund_amount: Decimal | None = None) -> Booking:
    """Cancel a booking. Before capture the authorisation is voided; after, the client gets the
    policy's refund, or an operator's chosen amount (never more than was paid)."""
    if not (reason or "").strip():
        raise InvalidInput("A reason is required to cancel a booking.")
    if refund_amount is not None:
        refund_amount = quantize(refund_amount)
        if refund_amount < ZERO:
            raise InvalidInput("A refund cannot be negative.")
    with transaction.atomic():
        booking = lock(Booking, booking.pk)
        guard(booking, TRANSITIONS, "cancel")
        is_party = actor.pk in (booking.client_id, booking.provider_id)
        # A party cancelling at the policy's refund needs no operator rights (and no scope query).
        is_operator = (not is_party or refund_amount is not None) and booking_is_operator(booking=booking, actor=actor)
        if not is_party and not is_operator:
            raise NotPermitted(f"You cannot cancel booking #{booking.pk}.")
        if refund_amount is not None and not is_operator:
            raise NotPermitted("Only an operator can choose the refund amount.")
        refunded = ZERO
        payment = Payment.objects.filter(booking=booking).first()
        if payment is not None and payment.status == Payment.Status.AUTHORIZED:
            # Nothing was captured, so nothing is refunded: the authorisation is released.
            payment_void(payment=payment, actor=actor, reason=reason)
        elif payment is not None:
            if refund_amount is None:
                # The provider cancelling gives the client everything back.
                if actor.pk == booking.provider_id:
                    refund_amount = payment.refundable
                else:
                    refund_amount = booking_cancellation_refund(booking=booking)
            if refund_amount > ZERO:
                refunded = payment_refund(
                    payment=payment,
                    amount=refund_amount,
                    actor=actor,
                    reason=f"Cancellation: {reason}",
                    idempotency_key=f"cancel:booking:{booking.pk}",
                ).amount
        return booking_apply_transition(
            booking=booking,
            actor=actor,
            transition="cancel",
            reason=reason,
            data={"refund": str(refunded)},
        )
