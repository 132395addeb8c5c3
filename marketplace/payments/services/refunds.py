"""The one refund rule, applied by every door that refunds (a cancellation, a dispute's resolution, a
Finance manual refund), and the requests that wait for a second person.

The rule (`refund_policy_check`):
- whoever chose the amount has the booking in their scope (`booking_for_user`);
- a chosen amount above MARKETPLACE_REFUND_SECOND_APPROVAL_ABOVE (in the payment's currency) needs a
  second person: someone else, with `disputes.approve_refund`, with the booking in scope.
A refund the cancellation policy computes (a client cancelling, a provider cancelling) is not
chosen by anyone: it is the policy, and needs no approval.

A cancellation or manual refund above the threshold becomes a `RefundRequest`; approving it makes
the refund through `payment_refund`, under the request's own idempotency key (so approving twice, or
two approvers at once, refunds once). Disputes keep their proposal on the dispute and apply the
same rule when the second person resolves it.
"""

from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from marketplace.audit.services import event_record
from marketplace.bookings.selectors import booking_for_user
from marketplace.core.exceptions import InvalidInput, NotPermitted, TransitionNotAllowed
from marketplace.core.money import ZERO, quantize, threshold
from marketplace.payments.models import Payment, Refund, RefundRequest
from marketplace.payments.services.payments import payment_refund

APPROVE_PERMISSION = "disputes.approve_refund"
RR = RefundRequest.Status


class NeedsSecondApproval(NotPermitted):
    """The refund is above the threshold and nobody else has approved it."""


def refund_needs_second_person(*, amount: Decimal, currency: str) -> bool:
    return amount > threshold("MARKETPLACE_REFUND_SECOND_APPROVAL_ABOVE", currency)


def refund_policy_check(*, payment: Payment, amount: Decimal, requested_by, approved_by=None, in_scope=None) -> None:
    """Raise NotPermitted unless a refund of `amount` chosen by `requested_by` may be made now.

    `in_scope(user) -> bool` is the door's object scope (a dispute's, for a dispute resolution);
    by default the booking's (`booking_for_user`).
    """
    booking_id = payment.booking_id

    def in_scope_of(user) -> bool:
        if in_scope is not None:
            return in_scope(user)
        return booking_for_user(user).filter(pk=booking_id).exists()

    if requested_by is not None and not in_scope_of(requested_by):
        raise NotPermitted(f"Booking #{booking_id} is outside your scope.")
    if not refund_needs_second_person(amount=amount, currency=payment.currency):
        return
    limit = threshold("MARKETPLACE_REFUND_SECOND_APPROVAL_ABOVE", payment.currency)
    if approved_by is None:
        raise NeedsSecondApproval(
            f"A refund of {amount} {payment.currency} is above {limit} {payment.currency}: a second person must approve it."
        )
    if requested_by is not None and approved_by.pk == requested_by.pk:
        raise NeedsSecondApproval(
            f"You chose this refund of {amount} {payment.currency}; a second person must approve it."
        )
    if not approved_by.has_perm(APPROVE_PERMISSION):
        raise NotPermitted("You do not have the permission to approve refunds.")
    if not in_scope_of(approved_by):
        raise NotPermitted(f"Booking #{booking_id} is outside your scope.")


def refund_request_create(
    *, payment: Payment, amount: Decimal, actor, reason: str, door: str, idempotency_key: str
) -> RefundRequest:
    """Record a chosen refund above the threshold for a second person (inside the caller's transaction)."""
    amount = quantize(amount)
    if amount <= ZERO or amount > payment.refundable:
        raise InvalidInput(
            f"A refund must be more than 0 and at most the {payment.refundable} {payment.currency} left."
        )
    refund_policy_check(payment=payment, amount=ZERO, requested_by=actor)  # the scope half
    request = RefundRequest.objects.create(
        payment=payment,
        amount=amount,
        currency=payment.currency,
        door=door,
        reason=reason,
        idempotency_key=idempotency_key,
        requested_by=actor,
    )
    event_record(
        verb="refund.requested",
        actor=actor,
        target=payment,
        to_state=RR.AWAITING_APPROVAL,
        reason=reason,
        data={"request": request.pk, "amount": str(amount), "currency": payment.currency, "door": door},
    )
    return request


def refund_manual(*, payment: Payment, amount: Decimal, actor, reason: str) -> Refund | RefundRequest:
    """Finance refunds part of a captured payment by hand: at once up to the threshold, else a request."""
    if not actor.has_perm("bookings.operate_booking") and not actor.has_perm(APPROVE_PERMISSION):
        raise NotPermitted("You do not have the permission to refund payments.")
    if not (reason or "").strip():
        raise InvalidInput("A reason is required to refund.")
    amount = quantize(amount)
    key = f"manual:{payment.pk}:{RefundRequest.objects.filter(payment=payment).count() + Refund.objects.filter(payment=payment).count() + 1}"
    if refund_needs_second_person(amount=amount, currency=payment.currency):
        with transaction.atomic():
            return refund_request_create(
                payment=payment,
                amount=amount,
                actor=actor,
                reason=reason,
                door=RefundRequest.Door.MANUAL,
                idempotency_key=key,
            )
    refund_policy_check(payment=payment, amount=amount, requested_by=actor)
    return payment_refund(payment=payment, amount=amount, actor=actor, reason=f"Manual: {reason}", idempotency_key=key)


def refund_request_approve(*, request: RefundRequest, actor) -> Refund:
    """The second person approves: the refund is made (once, under the request's key)."""
    with transaction.atomic():
        request = RefundRequest.objects.select_for_update().select_related("payment", "requested_by").get(pk=request.pk)
        if request.status != RR.AWAITING_APPROVAL:
            raise TransitionNotAllowed(request, "approve", state=request.status)
        refund_policy_check(
            payment=request.payment, amount=request.amount, requested_by=request.requested_by, approved_by=actor
        )
        request.status = RR.REFUNDED
        request.decided_by = actor
        request.decided_at = timezone.now()
        request.save(update_fields=["status", "decided_by", "decided_at"])
        event_record(
            verb="refund.approved",
            actor=actor,
            target=request.payment,
            from_state=RR.AWAITING_APPROVAL,
            to_state=RR.REFUNDED,
            data={"request": request.pk, "amount": str(request.amount)},
        )
    # The gateway is asked after the approval commits; a crash here is resumed with the same key.
    refund = payment_refund(
        payment=request.payment,
        amount=request.amount,
        actor=actor,
        reason=f"{request.get_door_display()}: {request.reason}",
        idempotency_key=request.idempotency_key,
    )
    RefundRequest.objects.filter(pk=request.pk).update(refund=refund)
    return refund


def refund_request_reject(*, request: RefundRequest, actor, reason: str) -> RefundRequest:
    """The second person refuses; nothing is refunded."""
    if not (reason or "").strip():
        raise InvalidInput("A reason is required to reject a refund.")
    with transaction.atomic():
        request = RefundRequest.objects.select_for_update().select_related("payment").get(pk=request.pk)
        if request.status != RR.AWAITING_APPROVAL:
            raise TransitionNotAllowed(request, "reject", state=request.status)
        if not actor.has_perm(APPROVE_PERMISSION):
            raise NotPermitted("You do not have the permission to decide on refunds.")
        if actor.pk == request.requested_by_id:
            raise NotPermitted("You asked for this refund; a second person decides on it.")
        request.status, request.decided_by, request.decided_at = RR.REJECTED, actor, timezone.now()
        request.save(update_fields=["status", "decided_by", "decided_at"])
        event_record(
            verb="refund.rejected",
            actor=actor,
            target=request.payment,
            from_state=RR.AWAITING_APPROVAL,
            to_state=RR.REJECTED,
            reason=reason,
            data={"request": request.pk, "amount": str(request.amount)},
        )
    return request
