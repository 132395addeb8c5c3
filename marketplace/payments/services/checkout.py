"""Booking transitions that move money: authorise, accept (capture), decline, expire, cancel (refund).

Each runs in the shape of `calls.py`: a first transaction locks the booking (then its payment),
checks the transition and the rules and records the gateway call; the gateway is asked with no
transaction open; a second transaction records the money and, through the call's continuation
(`_after_*` below), applies the booking transition. A transition that needs no gateway call (no
payment yet, nothing to refund) is applied in the first transaction. The services stay synchronous
for their callers: they return the booking once all of it is done, or raise.
"""

from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.utils import timezone

from marketplace.bookings.models import Booking
from marketplace.bookings.services import TRANSITIONS, booking_apply_transition, booking_is_operator
from marketplace.core.exceptions import InvalidInput, NotPermitted
from marketplace.core.money import ZERO, quantize
from marketplace.core.transitions import guard, lock
from marketplace.payments.models import GatewayCall, Payment, PaymentMethod, RefundRequest
from marketplace.payments.services.calls import gateway_call_require_idle, gateway_workflow
from marketplace.payments.services.payments import (
    payment_authorize_open,
    payment_capture_open,
    payment_refund_open,
    payment_void_open,
)
from marketplace.payments.services.refunds import (
    refund_needs_second_person,
    refund_policy_check,
    refund_request_create,
)

B = Booking.Status


def _then(name: str) -> str:
    return f"{__name__}.{name}"


def booking_authorize(*, booking: Booking, actor, method: PaymentMethod) -> Booking:
    """The client pays: authorise the amount on their saved method; the provider then accepts.

    Each try is its own gateway call (key: booking, method, attempt number), so after a decline
    another card, or the same one, can pay.
    """

    def first():
        locked = lock(Booking, booking.pk)
        guard(locked, TRANSITIONS, "authorize")
        if actor.pk != locked.client_id:
            raise NotPermitted(f"Only the client of booking #{locked.pk} can pay for it.")
        if method.user_id != locked.client_id:
            raise NotPermitted("This payment method belongs to someone else.")
        if locked.expires_at and locked.expires_at < timezone.now():
            raise InvalidInput(f"Booking #{locked.pk} waited too long for payment and can no longer be paid.")
        return payment_authorize_open(booking=locked, method=method, actor=actor, then=_then("_after_authorize"))

    gateway_workflow(booking_id=booking.pk, first=first)
    return Booking.objects.get(pk=booking.pk)


def _after_authorize(*, call: GatewayCall) -> None:
    booking_apply_transition(booking=lock(Booking, call.booking_id), actor=call.actor, transition="authorize")


def booking_accept(*, booking: Booking, actor) -> Booking:
    """The provider (or an operator) accepts: the payment is captured and posted to the ledger."""

    def first():
        locked = lock(Booking, booking.pk)
        guard(locked, TRANSITIONS, "accept")
        if actor.pk != locked.provider_id and not booking_is_operator(booking=locked, actor=actor):
            raise NotPermitted(f"Only the provider or an operator can accept booking #{locked.pk}.")
        return payment_capture_open(
            payment=Payment.objects.get(booking=locked), booking=locked, actor=actor, then=_then("_after_accept")
        )

    gateway_workflow(booking_id=booking.pk, first=first)
    return Booking.objects.get(pk=booking.pk)


def _after_accept(*, call: GatewayCall) -> None:
    booking_apply_transition(booking=lock(Booking, call.booking_id), actor=call.actor, transition="accept")


def _void_or_apply(
    booking: Booking, *, actor, transition: str, reason: str, void_reason: str | None = None, data: dict | None = None
):
    """Inside the first transaction: void an authorised payment, the transition following in its
    continuation; with nothing to void, apply the transition now. Returns the call, or None."""
    payment = Payment.objects.filter(booking=booking).first()
    if payment is not None and payment.status == Payment.Status.AUTHORIZED:
        return payment_void_open(
            payment=payment,
            actor=actor,
            reason=reason if void_reason is None else void_reason,
            then=_then("_after_void"),
            then_args={"transition": transition, "reason": reason, "data": data},
        )
    gateway_call_require_idle(booking_id=booking.pk)
    booking_apply_transition(booking=booking, actor=actor, transition=transition, reason=reason, data=data)
    return None


def _after_void(*, call: GatewayCall, transition: str, reason: str, data: dict | None) -> None:
    booking_apply_transition(
        booking=lock(Booking, call.booking_id), actor=call.actor, transition=transition, reason=reason, data=data
    )


def booking_decline(*, booking: Booking, actor, reason: str = "") -> Booking:
    """The provider (or an operator) declines; any authorisation is released."""

    def first():
        locked = lock(Booking, booking.pk)
        guard(locked, TRANSITIONS, "decline")
        if actor.pk != locked.provider_id and not booking_is_operator(booking=locked, actor=actor):
            raise NotPermitted(f"Only the provider or an operator can decline booking #{locked.pk}.")
        return _void_or_apply(locked, actor=actor, transition="decline", reason=reason)

    gateway_workflow(booking_id=booking.pk, first=first)
    return Booking.objects.get(pk=booking.pk)


def booking_expire(*, booking: Booking, actor=None) -> Booking:
    """The timer: a booking left waiting for payment or acceptance past its deadline expires."""

    def first():
        locked = lock(Booking, booking.pk)
        guard(locked, TRANSITIONS, "expire")
        if locked.expires_at is None or locked.expires_at > timezone.now():
            raise InvalidInput(f"Booking #{locked.pk} has not reached its deadline yet.")
        return _void_or_apply(locked, actor=actor, transition="expire", reason="", void_reason="expired")

    gateway_workflow(booking_id=booking.pk, first=first)
    return Booking.objects.get(pk=booking.pk)


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

    def first():
        locked = lock(Booking, booking.pk)
        guard(locked, TRANSITIONS, "cancel")
        is_party = actor.pk in (locked.client_id, locked.provider_id)
        # A party cancelling at the policy's refund needs no operator rights (and no scope query).
        is_operator = (not is_party or refund_amount is not None) and booking_is_operator(booking=locked, actor=actor)
        if not is_party and not is_operator:
            raise NotPermitted(f"You cannot cancel booking #{locked.pk}.")
        if refund_amount is not None and not is_operator:
            raise NotPermitted("Only an operator can choose the refund amount.")
        payment = Payment.objects.filter(booking=locked).first()
        if payment is None or payment.status == Payment.Status.AUTHORIZED:
            # Nothing was captured, so nothing is refunded: the authorisation (if any) is released.
            return _void_or_apply(locked, actor=actor, transition="cancel", reason=reason, data={"refund": str(ZERO)})
        amount = refund_amount
        if amount is None:
            # The provider cancelling gives the client everything back.
            if actor.pk == locked.provider_id:
                amount = payment.refundable
            else:
                amount = booking_cancellation_refund(booking=locked)
        elif amount > payment.refundable:
            raise InvalidInput(
                f"A refund of {amount} {payment.currency} exceeds the {payment.refundable} {payment.currency} "
                f"left to refund on payment #{payment.pk}."
            )
        elif amount > ZERO and refund_needs_second_person(amount=amount, currency=payment.currency):
            # An operator's chosen refund above the threshold: the booking is cancelled now, the
            # refund waits for a second person (the one refund rule, `refunds.py`).
            gateway_call_require_idle(booking_id=locked.pk)
            request = refund_request_create(
                payment=payment,
                amount=amount,
                actor=actor,
                reason=f"Cancellation: {reason}",
                door=RefundRequest.Door.CANCEL,
                idempotency_key=f"cancel:booking:{locked.pk}",
            )
            booking_apply_transition(
                booking=locked,
                actor=actor,
                transition="cancel",
                reason=reason,
                data={"refund": str(ZERO), "refund_requested": str(amount), "refund_request": request.pk},
            )
            return None
        elif amount > ZERO:
            refund_policy_check(payment=payment, amount=amount, requested_by=actor)
        if amount > ZERO:
            return payment_refund_open(
                payment=payment,
                amount=amount,
                actor=actor,
                reason=f"Cancellation: {reason}",
                idempotency_key=f"cancel:booking:{locked.pk}",
                then=_then("_after_cancel_refund"),
                then_args={"reason": reason},
            )
        gateway_call_require_idle(booking_id=locked.pk)
        booking_apply_transition(
            booking=locked, actor=actor, transition="cancel", reason=reason, data={"refund": str(ZERO)}
        )
        return None

    gateway_workflow(booking_id=booking.pk, first=first)
    return Booking.objects.get(pk=booking.pk)


def _after_cancel_refund(*, call: GatewayCall, reason: str) -> None:
    booking_apply_transition(
        booking=lock(Booking, call.booking_id),
        actor=call.actor,
        transition="cancel",
        reason=reason,
        data={"refund": str(call.amount)},
    )
