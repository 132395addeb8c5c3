"""The payment of a booking at the gateway, with the ledger postings each movement needs.

Gateway calls are made inside the transaction with an idempotency key: if the gateway refuses,
PaymentFailed rolls everything back; if our commit fails after the gateway said yes, a retry with
the same key gets the same answer from the gateway and moves no money twice.
"""

from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from marketplace.audit.services import event_record
from marketplace.core.exceptions import InvalidInput, PaymentFailed, TransitionNotAllowed
from marketplace.core.money import ZERO, quantize
from marketplace.core.transitions import lock
from marketplace.ledger.services import ledger_post_capture, ledger_post_refund
from marketplace.payments.gateway import get_gateway
from marketplace.payments.models import Payment, PaymentMethod, Refund

P = Payment.Status


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


def payment_capture(*, payment: Payment, booking, actor) -> Payment:
    """Capture an authorised payment in full and post the capture and the platform fee."""
    payment = lock(Payment, payment.pk)
    if payment.status != P.AUTHORIZED:
        raise TransitionNotAllowed(payment, "capture")
    result = get_gateway().capture(
        reference=payment.gateway_reference, amount=payment.amount, idempotency_key=f"capture:{payment.pk}"
    )
    if not result.ok:
        raise PaymentFailed(f"The gateway refused to capture payment #{payment.pk}: {result.error}")
    payment.status = P.CAPTURED
    payment.captured_amount = payment.amount
    payment.captured_at = timezone.now()
    payment.save(update_fields=["status", "captured_amount", "captured_at", "updated_at"])
    ledger_post_capture(payment=payment, booking=booking)
    event_record(
        verb="payment.captured",
        actor=actor,
        target=payment,
        from_state=P.AUTHORIZED,
        to_state=P.CAPTURED,
        data={"amount": str(payment.amount), "currency": payment.currency, "booking": booking.pk},
    )
    return payment


def payment_void(*, payment: Payment, actor, reason: str = "") -> Payment:
    """Release an authorisation that will not be captured. Nothing moved, so nothing is posted."""
    payment = lock(Payment, payment.pk)
    if payment.status != P.AUTHORIZED:
        raise TransitionNotAllowed(payment, "void")
    result = get_gateway().void(reference=payment.gateway_reference, idempotency_key=f"void:{payment.pk}")
    if not result.ok:
        raise PaymentFailed(f"The gateway refused to void payment #{payment.pk}: {result.error}")
    payment.status = P.VOIDED
    payment.save(update_fields=["status", "updated_at"])
    event_record(
        verb="payment.voided", actor=actor, target=payment, from_state=P.AUTHORIZED, to_state=P.VOIDED, reason=reason
    )
    return payment


def payment_refund(*, payment: Payment, amount: Decimal, actor, reason: str, idempotency_key: str) -> Refund:
    """Refund part or all of a captured payment.

    The refund is split between the provider's share and the platform's fee in proportion to
    the booking's commission, rounded on the running total: the shares are never negative, and a
    payment refunded in full gives back exactly its fee and its provider share. The same `idempotency_key` twice returns the first refund.
    A refund larger than what is left raises InvalidInput and writes nothing.
    """
    amount = quantize(amount)
    if amount <= ZERO:
        raise InvalidInput("A refund must be more than zero.")
    with transaction.atomic():
        payment = lock(Payment, payment.pk, related=("booking",))
        existing = Refund.objects.filter(idempotency_key=idempotency_key).first()
        if existing is not None:
            if existing.payment_id != payment.pk or existing.amount != amount:
                raise InvalidInput(
                    f"The refund key {idempotency_key!r} was used for {existing.amount} {existing.currency} "
                    f"on payment #{existing.payment_id}; a different refund needs a new key."
                )
            return existing
        if payment.status not in (P.CAPTURED, P.PARTIALLY_REFUNDED):
            raise TransitionNotAllowed(payment, "refund")
        if amount > payment.refundable:
            raise InvalidInput(
                f"A refund of {amount} {payment.currency} exceeds the {payment.refundable} {payment.currency} "
                f"left to refund on payment #{payment.pk}."
            )
        booking = payment.booking
        # The platform's share is rounded on the running total, not on each part, so many small
        # refunds neither drift from the commission nor give a negative share.
        fee_refunded = sum((r.platform_share for r in payment.refunds.all()), ZERO)
        refunded_after = payment.refunded_amount + amount
        fee_due_after = quantize(refunded_after * booking.platform_fee / payment.captured_amount)
        platform_share = min(amount, max(ZERO, fee_due_after - fee_refunded))
        result = get_gateway().refund(
            reference=payment.gateway_reference, amount=amount, idempotency_key=f"refund:{idempotency_key}"
        )
        if not result.ok:
            raise PaymentFailed(f"The gateway refused the refund on payment #{payment.pk}: {result.error}")
        refund = Refund.objects.create(
            payment=payment,
            amount=amount,
            platform_share=platform_share,
            provider_share=amount - platform_share,
            currency=payment.currency,
            reason=reason,
            gateway_reference=result.reference,
            idempotency_key=idempotency_key,
            created_by=actor if getattr(actor, "pk", None) else None,
        )
        from_state = payment.status
        payment.refunded_amount += amount
        payment.status = P.REFUNDED if payment.refunded_amount == payment.captured_amount else P.PARTIALLY_REFUNDED
        payment.save(update_fields=["refunded_amount", "status", "updated_at"])
        ledger_post_refund(refund=refund, booking=booking)
        event_record(
            verb="payment.refunded",
            actor=actor,
            target=payment,
            from_state=from_state,
            to_state=payment.status,
            reason=reason,
            data={"refund": refund.pk, "amount": str(amount), "booking": booking.pk},
        )
    return refund
