"""The payment of a booking at the gateway, with the ledger postings each movement needs.

Each movement has two halves around its gateway call (`calls.py`): `payment_<op>_open`, inside the
first transaction, checks the rules under the booking's and the payment's locks and records the
intent; `payment_<op>_record`, inside the second, records the money once the gateway said yes.
`payment_capture`, `payment_void` and `payment_refund` run both halves for a synchronous caller.
"""

from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from marketplace.audit.services import event_record
from marketplace.bookings.models import Booking
from marketplace.core.exceptions import InvalidInput, TransitionNotAllowed
from marketplace.core.money import ZERO, quantize
from marketplace.core.transitions import lock
from marketplace.ledger.services import ledger_post_capture, ledger_post_refund
from marketplace.payments.models import GatewayCall, Payment, PaymentMethod, Refund
from marketplace.payments.services.calls import gateway_call_open, gateway_workflow

P = Payment.Status
OP = GatewayCall.Operation


def payment_method_add(*, user, gateway_token: str, brand: str = "", last4: str = "", make_default=True):
    """Save a tokenised payment method. Card numbers never reach us; only the gateway's token does."""
    if not gateway_token.startswith("tok_"):
        raise InvalidInput("A payment method is saved from a gateway token (tok_...), never from card details.")
    with transaction.atomic():
        if make_default:
            PaymentMethod.objects.filter(user=user, is_default=True).update(is_default=False)
        method, _ = PaymentMethod.objects.update_or_create(
            user=user,
            gateway_token=gateway_token,
            defaults={"brand": brand, "last4": last4, "is_default": make_default},
        )
    return method


# --- Authorise --------------------------------------------------------------------------------


def payment_authorize_open(
    *, booking: Booking, method: PaymentMethod, actor, then: str = "", then_args: dict | None = None
) -> GatewayCall:
    """Record the intent to authorise the booking's amount on `method` (the caller holds the booking's lock)."""
    return gateway_call_open(
        operation=OP.AUTHORIZE,
        booking_id=booking.pk,
        method=method,
        amount=booking.amount,
        currency=booking.currency,
        actor=actor,
        then=then,
        then_args=then_args,
    )


def payment_authorize_record(*, call: GatewayCall) -> Payment:
    """The gateway authorised: the booking's payment exists, holding the amount. Nothing is posted."""
    payment = Payment.objects.create(
        booking_id=call.booking_id,
        method_id=call.method_id,
        amount=call.amount,
        currency=call.currency,
        gateway_reference=call.reference,
    )
    call.payment = payment
    event_record(
        verb="payment.authorized",
        actor=call.actor,
        target=payment,
        to_state=payment.status,
        data={"amount": str(payment.amount), "booking": call.booking_id},
    )
    return payment


# --- Capture --------------------------------------------------------------------------------------


def payment_capture_open(
    *, payment: Payment, booking: Booking, actor, then: str = "", then_args: dict | None = None
) -> GatewayCall:
    """Record the intent to capture an authorised payment in full."""
    lock(Booking, booking.pk)
    payment = lock(Payment, payment.pk)
    if payment.status != P.AUTHORIZED:
        raise TransitionNotAllowed(payment, "capture")
    return gateway_call_open(
        operation=OP.CAPTURE,
        booking_id=booking.pk,
        payment=payment,
        amount=payment.amount,
        currency=payment.currency,
        actor=actor,
        then=then,
        then_args=then_args,
    )


def payment_capture_record(*, call: GatewayCall) -> Payment:
    """The gateway captured: the payment is captured and the capture and the platform fee are posted."""
    payment = lock(Payment, call.payment_id, related=("booking",))
    if payment.status != P.AUTHORIZED:
        raise TransitionNotAllowed(payment, "capture")
    payment.status = P.CAPTURED
    payment.captured_amount = payment.amount
    payment.captured_at = timezone.now()
    payment.save(update_fields=["status", "captured_amount", "captured_at", "updated_at"])
    ledger_post_capture(payment=payment, booking=payment.booking)
    event_record(
        verb="payment.captured",
        actor=call.actor,
        target=payment,
        from_state=P.AUTHORIZED,
        to_state=P.CAPTURED,
        data={"amount": str(payment.amount), "currency": payment.currency, "booking": call.booking_id},
    )
    call.payment = payment
    return payment


def payment_capture(*, payment: Payment, booking, actor) -> Payment:
    """Capture an authorised payment in full and post the capture and the platform fee."""
    gateway_workflow(
        booking_id=booking.pk, first=lambda: payment_capture_open(payment=payment, booking=booking, actor=actor)
    )
    return Payment.objects.get(pk=payment.pk)


# --- Void -----------------------------------------------------------------------------------------


def payment_void_open(
    *, payment: Payment, actor, reason: str = "", then: str = "", then_args: dict | None = None
) -> GatewayCall:
    """Record the intent to release an authorisation that will not be captured."""
    lock(Booking, payment.booking_id)
    payment = lock(Payment, payment.pk)
    if payment.status != P.AUTHORIZED:
        raise TransitionNotAllowed(payment, "void")
    return gateway_call_open(
        operation=OP.VOID,
        booking_id=payment.booking_id,
        payment=payment,
        amount=payment.amount,
        currency=payment.currency,
        actor=actor,
        reason=reason,
        then=then,
        then_args=then_args,
    )


def payment_void_record(*, call: GatewayCall) -> Payment:
    """The gateway released the authorisation. Nothing moved, so nothing is posted."""
    payment = lock(Payment, call.payment_id)
    if payment.status != P.AUTHORIZED:
        raise TransitionNotAllowed(payment, "void")
    payment.status = P.VOIDED
    payment.save(update_fields=["status", "updated_at"])
    event_record(
        verb="payment.voided",
        actor=call.actor,
        target=payment,
        from_state=P.AUTHORIZED,
        to_state=P.VOIDED,
        reason=call.reason,
    )
    call.payment = payment
    return payment


def payment_void(*, payment: Payment, actor, reason: str = "") -> Payment:
    """Release an authorisation that will not be captured. Nothing moved, so nothing is posted."""
    gateway_workflow(
        booking_id=payment.booking_id, first=lambda: payment_void_open(payment=payment, actor=actor, reason=reason)
    )
    return Payment.objects.get(pk=payment.pk)


# --- Refund ---------------------------------------------------------------------------------------


def payment_refund_open(
    *,
    payment: Payment,
    amount: Decimal,
    actor,
    reason: str,
    idempotency_key: str,
    then: str = "",
    then_args: dict | None = None,
) -> GatewayCall | None:
    """Check a refund of part or all of a captured payment and record the intent to make it.

    Called inside the caller's first transaction (it locks the booking, then the payment; a caller
    that locks other rows too, a dispute, locks them before). After that transaction commits,
    `gateway_call_run(call.pk)` makes the refund; its continuation `then(call=call, **then_args)`
    runs after `payment_refund_record`, in the same second transaction, and finishes the caller's
    workflow (the refund is `Refund.objects.get(idempotency_key=call.refund_key)`).

    `idempotency_key` names the refund: a refund already made under it is not made again, and its
    call comes back as it finished (running it again does nothing; None for a refund made before
    gateway calls were recorded). The same key for another amount or payment raises InvalidInput,
    as does more than is left to refund; a payment not captured raises TransitionNotAllowed.
    Nothing is written then.
    """
    amount = quantize(amount)
    if amount <= ZERO:
        raise InvalidInput("A refund must be more than zero.")
    lock(Booking, payment.booking_id)
    payment = lock(Payment, payment.pk)
    existing = Refund.objects.filter(idempotency_key=idempotency_key).first()
    if existing is not None:
        if existing.payment_id != payment.pk or existing.amount != amount:
            raise InvalidInput(
                f"The refund key {idempotency_key!r} was used for {existing.amount} {existing.currency} "
                f"on payment #{existing.payment_id}; a different refund needs a new key."
            )
        return GatewayCall.objects.filter(refund_key=idempotency_key, status=GatewayCall.Status.SUCCEEDED).first()
    if payment.status not in (P.CAPTURED, P.PARTIALLY_REFUNDED):
        raise TransitionNotAllowed(payment, "refund")
    if amount > payment.refundable:
        raise InvalidInput(
            f"A refund of {amount} {payment.currency} exceeds the {payment.refundable} {payment.currency} "
            f"left to refund on payment #{payment.pk}."
        )
    elsewhere = GatewayCall.objects.filter(refund_key=idempotency_key).exclude(booking_id=payment.booking_id).first()
    if elsewhere is not None:
        raise InvalidInput(
            f"The refund key {idempotency_key!r} was used on booking #{elsewhere.booking_id}; "
            "a different refund needs a new key."
        )
    return gateway_call_open(
        operation=OP.REFUND,
        booking_id=payment.booking_id,
        payment=payment,
        amount=amount,
        currency=payment.currency,
        actor=actor,
        reason=reason,
        refund_key=idempotency_key,
        then=then,
        then_args=then_args,
    )


def payment_refund_record(*, call: GatewayCall) -> Refund:
    """The gateway refunded: the `Refund` row, the payment's totals and the ledger posting.

    The refund is split between the provider's share and the platform's fee in proportion to the
    booking's commission, rounded on the running total: the shares are never negative, and a
    payment refunded in full gives back exactly its fee and its provider share.
    """
    payment = lock(Payment, call.payment_id, related=("booking",))
    if payment.status not in (P.CAPTURED, P.PARTIALLY_REFUNDED):
        raise TransitionNotAllowed(payment, "refund")
    booking = payment.booking
    amount = call.amount
    # The platform's share is rounded on the running total, not on each part, so many small
    # refunds neither drift from the commission nor give a negative share.
    fee_refunded = sum((r.platform_share for r in payment.refunds.all()), ZERO)
    refunded_after = payment.refunded_amount + amount
    fee_due_after = quantize(refunded_after * booking.platform_fee / payment.captured_amount)
    platform_share = min(amount, max(ZERO, fee_due_after - fee_refunded))
    refund = Refund.objects.create(
        payment=payment,
        amount=amount,
        platform_share=platform_share,
        provider_share=amount - platform_share,
        currency=payment.currency,
        reason=call.reason,
        gateway_reference=call.reference,
        idempotency_key=call.refund_key,
        created_by=call.actor,
    )
    from_state = payment.status
    payment.refunded_amount += amount
    payment.status = P.REFUNDED if payment.refunded_amount == payment.captured_amount else P.PARTIALLY_REFUNDED
    payment.save(update_fields=["refunded_amount", "status", "updated_at"])
    ledger_post_refund(refund=refund, booking=booking)
    event_record(
        verb="payment.refunded",
        actor=call.actor,
        target=payment,
        from_state=from_state,
        to_state=payment.status,
        reason=call.reason,
        data={"refund": refund.pk, "amount": str(amount), "booking": booking.pk},
    )
    call.payment = payment
    return refund


def payment_refund(*, payment: Payment, amount: Decimal, actor, reason: str, idempotency_key: str) -> Refund:
    """Refund part or all of a captured payment, both halves in one call (see `payment_refund_open`).

    The same `idempotency_key` twice returns the first refund. A refund larger than what is left
    raises InvalidInput and writes nothing; a refund the gateway refuses raises PaymentFailed and
    writes only the failed call (the same key may be used again: a new attempt).
    """
    gateway_workflow(
        booking_id=payment.booking_id,
        first=lambda: payment_refund_open(
            payment=payment, amount=amount, actor=actor, reason=reason, idempotency_key=idempotency_key
        ),
    )
    return Refund.objects.get(idempotency_key=idempotency_key)
