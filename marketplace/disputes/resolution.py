"""Resolving a dispute: release the money, or refund part or all of it (through the one refund rule,
`payments.services.refunds`, with the gateway asked outside any transaction), then release the
payout's hold; and withdrawing a dispute. Part of the dispute services' API (re-exported by
`disputes.services`).
"""

from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from marketplace.accounts.models import User
from marketplace.audit.services import event_record
from marketplace.bookings.models import Booking
from marketplace.bookings.services import booking_apply_transition
from marketplace.core.exceptions import InvalidInput, NotPermitted, TransitionNotAllowed
from marketplace.core.money import ZERO, quantize
from marketplace.core.transitions import guard, lock
from marketplace.disputes.models import Dispute
from marketplace.disputes.selectors import dispute_for_user
from marketplace.disputes.services import (
    OUTCOMES,
    RESOLVE_PERMISSION,
    TRANSITIONS,
    _apply,
    _notify_parties,
    _require_scope,
)
from marketplace.payments.models import Payment
from marketplace.payments.services.calls import gateway_workflow
from marketplace.payments.services.payments import payment_refund_open
from marketplace.payments.services.refunds import refund_needs_second_person, refund_policy_check
from marketplace.payouts.services import (
    payout_active_for_booking,
    payout_recompute_for_booking,
    payout_release_for_dispute,
)


def dispute_resolve(
    *, dispute: Dispute, actor, outcome: str, reason_code: str, note: str = "", refund_amount: Decimal | None = None
) -> Dispute:
    """Resolve a dispute: release the money to the provider, or refund part or all of it.

    A refund above MARKETPLACE_REFUND_SECOND_APPROVAL_ABOVE (in the payment's currency) is only
    proposed here; a second person applies it with `dispute_approve_resolution` (the refund rule
    of `payments.services.refunds`). The gateway is asked after the first transaction commits, and
    the resolution is recorded with the refund in the second (`_after_resolve_refund`). Returns the
    dispute (resolved, or with a proposal).
    """
    if outcome not in OUTCOMES:
        raise InvalidInput(f"Unknown outcome '{outcome}': use release, partial_refund or full_refund.")
    if not (reason_code or "").strip():
        raise InvalidInput("A reason code is required to resolve a dispute.")
    if not actor.has_perm(RESOLVE_PERMISSION):
        raise NotPermitted("You do not have the permission to resolve disputes.")

    def first():
        locked = lock(Dispute, dispute.pk)
        guard(locked, TRANSITIONS, OUTCOMES[outcome][0])
        _require_scope(locked, actor)
        payment = Payment.objects.get(booking_id=locked.booking_id)
        refund = _refund_for(outcome, refund_amount, payment)
        if refund > ZERO and refund_needs_second_person(amount=refund, currency=payment.currency):
            _propose(locked, actor=actor, outcome=outcome, refund=refund, reason_code=reason_code, note=note)
            return None
        return _resolve_open(
            locked, payment, actor=actor, outcome=outcome, refund=refund, reason_code=reason_code, note=note
        )

    gateway_workflow(booking_id=dispute.booking_id, first=first)
    return Dispute.objects.get(pk=dispute.pk)


def _propose(dispute: Dispute, *, actor, outcome: str, refund: Decimal, reason_code: str, note: str) -> None:
    if (dispute.proposed_outcome, dispute.proposed_refund, dispute.proposed_by_id) == (outcome, refund, actor.pk):
        return  # the same proposal again (a double click): it stands as it is
    dispute.proposed_outcome = outcome
    dispute.proposed_refund = refund
    dispute.proposed_by = actor
    dispute.proposed_at = timezone.now()
    dispute.resolution_code = reason_code
    dispute.resolution_note = note
    dispute.save(
        update_fields=[
            "proposed_outcome",
            "proposed_refund",
            "proposed_by",
            "proposed_at",
            "resolution_code",
            "resolution_note",
            "updated_at",
        ]
    )
    event_record(
        verb="dispute.resolution_proposed",
        actor=actor,
        target=dispute,
        reason=note,
        data={"outcome": outcome, "refund": str(refund), "reason_code": reason_code},
    )


def dispute_approve_resolution(*, dispute: Dispute, actor) -> Dispute:
    """The second person applies a proposed refund above the threshold. Never the proposer."""
    if not actor.has_perm("disputes.approve_refund"):
        raise NotPermitted("You do not have the permission to approve refunds.")

    def first():
        locked = lock(Dispute, dispute.pk, related=("proposed_by",))
        if not locked.proposed_outcome:
            raise TransitionNotAllowed(locked, "approve a resolution", detail="No resolution is waiting for approval.")
        if locked.proposed_by_id == actor.pk:
            raise NotPermitted(f"You proposed the resolution of dispute #{locked.pk}; a second person must approve it.")
        guard(locked, TRANSITIONS, OUTCOMES[locked.proposed_outcome][0])
        _require_scope(locked, actor)
        return _resolve_open(
            locked,
            Payment.objects.get(booking_id=locked.booking_id),
            actor=locked.proposed_by,
            outcome=locked.proposed_outcome,
            refund=locked.proposed_refund,
            reason_code=locked.resolution_code,
            note=locked.resolution_note,
            approver=actor,
        )

    gateway_workflow(booking_id=dispute.booking_id, first=first)
    return Dispute.objects.get(pk=dispute.pk)


def _refund_for(outcome: str, refund_amount, payment: Payment) -> Decimal:
    if outcome == "release":
        if refund_amount not in (None, ZERO):
            raise InvalidInput("A release refunds nothing; choose partial_refund to refund.")
        return ZERO
    if outcome == "full_refund":
        return payment.refundable
    if refund_amount is None:
        raise InvalidInput("A partial refund needs an amount.")
    refund = quantize(refund_amount)
    if not (ZERO < refund < payment.refundable):
        raise InvalidInput(
            f"A partial refund must be more than 0 and less than the {payment.refundable} {payment.currency} "
            "left on the payment; use full_refund to refund everything."
        )
    return refund


def _resolve_open(dispute: Dispute, payment: Payment, *, actor, outcome, refund, reason_code, note, approver=None):
    """First transaction: with a refund, check the refund rule and record the refund's intent (the
    resolution is recorded with the refund, `_after_resolve_refund`); without, resolve now."""
    args = {
        "dispute_id": dispute.pk,
        "actor_id": actor.pk,
        "approver_id": approver.pk if approver else None,
        "outcome": outcome,
        "refund": str(refund),
        "reason_code": reason_code,
        "note": note,
    }
    if refund <= ZERO:
        _resolve(dispute, actor=actor, outcome=outcome, refund=refund, reason_code=reason_code, note=note)
        return None
    refund_policy_check(
        payment=payment,
        amount=refund,
        requested_by=actor,
        approved_by=approver,
        in_scope=lambda user: dispute_for_user(user).filter(pk=dispute.pk).exists(),
    )
    return payment_refund_open(
        payment=payment,
        amount=refund,
        actor=approver or actor,
        reason=f"Dispute #{dispute.pk}: {reason_code}",
        idempotency_key=f"dispute:{dispute.pk}",
        then="marketplace.disputes.resolution._after_resolve_refund",
        then_args=args,
    )


def _after_resolve_refund(*, call, dispute_id, actor_id, approver_id, outcome, refund, reason_code, note) -> None:
    """Second transaction, with the refund recorded: the dispute is resolved."""
    dispute = lock(Dispute, dispute_id)
    guard(dispute, TRANSITIONS, OUTCOMES[outcome][0])
    approver = User.objects.get(pk=approver_id) if approver_id else None
    if approver is not None:
        dispute.approved_by = approver
    _resolve(
        dispute,
        actor=User.objects.get(pk=actor_id),
        outcome=outcome,
        refund=Decimal(refund),
        reason_code=reason_code,
        note=note,
        approver=approver,
    )


def _resolve(dispute: Dispute, *, actor, outcome, refund: Decimal, reason_code: str, note: str, approver=None):
    booking = lock(Booking, dispute.booking_id, related=("client", "provider"))
    transition, _ = OUTCOMES[outcome]
    dispute.refund_amount = refund
    dispute.resolution_code = reason_code
    dispute.resolution_note = note
    dispute.resolved_by = actor
    dispute.resolved_at = timezone.now()
    dispute.proposed_outcome = ""
    _apply(
        dispute,
        actor=approver or actor,
        transition=transition,
        reason=note,
        fields=[
            "refund_amount",
            "resolution_code",
            "resolution_note",
            "resolved_by",
            "resolved_at",
            "proposed_outcome",
            "approved_by",
        ],
        data={"refund": str(refund), "reason_code": reason_code, "approved_by": approver.pk if approver else None},
    )
    booking_apply_transition(
        booking=booking, actor=approver or actor, transition="resolve", reason=reason_code, notify_parties=False
    )
    _release_payout(dispute, booking, actor=approver or actor, refunded=refund > ZERO)
    _notify_parties(
        dispute,
        booking,
        verb="dispute.resolved",
        title=f"Dispute #{dispute.pk} is resolved",
        body=f"{dispute.get_status_display()}. {note}".strip(),
    )
    return dispute


def _release_payout(dispute: Dispute, booking: Booking, *, actor, refunded: bool) -> None:
    payout = payout_active_for_booking(booking=booking)
    if payout is None:
        return
    if refunded:
        payout = payout_recompute_for_booking(booking=booking, actor=actor, reason=f"Refund on dispute #{dispute.pk}")
    if payout.status == payout.Status.ON_HOLD and payout.holds.filter(dispute_id=dispute.pk, released_at=None).exists():
        payout_release_for_dispute(
            payout=payout, actor=actor, dispute_id=dispute.pk, reason=f"Dispute #{dispute.pk} closed"
        )


def dispute_withdraw(*, dispute: Dispute, actor, reason: str = "") -> Dispute:
    """The opener withdraws (or staff who resolve disputes, in scope); the booking is completed
    again and its payout hold is released."""
    with transaction.atomic():
        dispute = lock(Dispute, dispute.pk)
        if actor.pk != dispute.opened_by_id:
            if not actor.has_perm(RESOLVE_PERMISSION):
                raise NotPermitted(f"Only whoever opened dispute #{dispute.pk} can withdraw it.")
            _require_scope(dispute, actor)
        dispute.resolved_at = timezone.now()
        dispute.resolved_by = actor
        _apply(dispute, actor=actor, transition="withdraw", reason=reason, fields=["resolved_at", "resolved_by"])
        booking = lock(Booking, dispute.booking_id, related=("client", "provider"))
        booking_apply_transition(
            booking=booking, actor=actor, transition="withdraw_dispute", reason=reason, notify_parties=False
        )
        _release_payout(dispute, booking, actor=actor, refunded=False)
    return dispute
