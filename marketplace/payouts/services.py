"""The payout state machine: accrue, hold, approve (four-eyes), submit, pay, fail, retry, reverse."""

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from marketplace.audit.services import event_record
from marketplace.bookings.models import Booking
from marketplace.core.exceptions import ApplicationError, InvalidInput, NotPermitted
from marketplace.core.money import threshold
from marketplace.core.transitions import guard, lock
from marketplace.ledger.services import ledger_post_payout, ledger_post_payout_reversal
from marketplace.notifications.services import notify
from marketplace.partners.models import Partner, PartnerMembership
from marketplace.payments.gateway import GatewayUnavailable, get_gateway
from marketplace.payments.payable import CANCELLED, SETTLED, mature_q
from marketplace.payouts.balances import payout_cutoff
from marketplace.payouts.models import Payout, PayoutAttempt, PayoutHold
from marketplace.payouts.selectors import payout_for_user

S = Payout.Status
FINANCE_GROUP = "Finance"

# transition -> (states it may start from, state it leads to)
TRANSITIONS: dict[str, tuple[set[str], str]] = {
    "hold": ({S.ACCRUING, S.READY, S.AWAITING_APPROVAL, S.APPROVED, S.FAILED}, S.ON_HOLD),
    "release": ({S.ON_HOLD}, S.ACCRUING),
    "mature": ({S.ACCRUING}, S.READY),
    "request_approval": ({S.READY}, S.AWAITING_APPROVAL),
    "auto_approve": ({S.READY}, S.APPROVED),
    "approve": ({S.AWAITING_APPROVAL}, S.APPROVED),
    "reject": ({S.AWAITING_APPROVAL}, S.READY),
    "submit": ({S.APPROVED}, S.SUBMITTED),
    "mark_paid": ({S.SUBMITTED}, S.PAID),
    "mark_failed": ({S.SUBMITTED}, S.FAILED),
    "retry": ({S.FAILED}, S.READY),
    "auto_retry": ({S.FAILED}, S.APPROVED),
    "cancel": ({S.ACCRUING, S.ON_HOLD, S.READY, S.AWAITING_APPROVAL, S.APPROVED, S.FAILED}, S.CANCELLED),
    "reverse": ({S.PAID}, S.REVERSED),
}
# A person acting on a payout holds one of these and has the payout in scope (`payout_for_user`);
# actor None is the system (timers, the gateway's answers), which needs neither.
HOLD_PERMISSION = "payouts.hold_payout"
# A cancelled booking can be paid out too: the share a late cancellation leaves the provider.
PAYABLE_STATES = (*SETTLED, CANCELLED)
CHANGE_PERMISSION = "payouts.change_payout"
_DOING = {HOLD_PERMISSION: "hold or release payouts", CHANGE_PERMISSION: "change payouts"}


# The transitions a partner hears about (in-app and by email), and how they are told.
_PARTNER_NEWS = {
    "hold": "Payout #{pk} is on hold",
    "release": "Payout #{pk} is no longer on hold",
    "mark_paid": "Payout #{pk} of {amount} {currency} is paid",
    "mark_failed": "Payout #{pk} could not be paid",
    "cancel": "Payout #{pk} was cancelled",
    "reverse": "Payout #{pk} was returned by the bank",
}


def payout_notify_partner(payout: Payout, *, verb: str, title: str, body: str = "") -> None:
    """Tell the partner's owners (in-app and by email), inside the caller's transaction."""
    owners = PartnerMembership.objects.filter(partner_id=payout.partner_id, role=PartnerMembership.Role.OWNER)
    for membership in owners.select_related("user"):
        notify(user=membership.user, verb=verb, target=payout, title=title, body=body)


def _backoff(n: int) -> timedelta:
    """15, 30, 60 ... minutes (from the base setting), for the n-th failure."""
    return timedelta(minutes=settings.MARKETPLACE_PAYOUT_RETRY_BACKOFF_MINUTES * 2 ** max(n - 1, 0))


def _require_operator(payout: Payout, actor, permission: str) -> None:
    if actor is None:
        return
    if not actor.has_perm(permission):
        raise NotPermitted(f"You do not have the permission to {_DOING[permission]} (payout #{payout.pk}).")
    if not payout_for_user(actor).filter(pk=payout.pk).exists():
        raise NotPermitted(f"Payout #{payout.pk} is outside your scope.")


def _apply(
    payout: Payout,
    *,
    actor,
    transition: str,
    reason: str = "",
    fields=(),
    data=None,
    detail="",
    permission: str | None = None,
) -> Payout:
    """Guard, then (with `permission`) check the actor, then save and audit one transition."""
    target = guard(payout, TRANSITIONS, transition, detail=detail)
    if permission:
        _require_operator(payout, actor, permission)
    from_state = payout.status
    payout.status = target
    payout.save(update_fields=["status", "updated_at", *fields])
    event_record(
        verb=f"payout.{transition}",
        actor=actor,
        target=payout,
        from_state=from_state,
        to_state=target,
        reason=reason,
        data={"amount": str(payout.amount), **(data or {})},
    )
    if title := _PARTNER_NEWS.get(transition):
        payout_notify_partner(
            payout,
            verb=f"payout.{transition}",
            title=title.format(pk=payout.pk, amount=payout.amount, currency=payout.currency),
            body=reason,
        )
    return payout


def payout_hold(*, payout: Payout, actor, reason: str, kind: str = PayoutHold.Kind.MANUAL) -> Payout:
    """Put a hold on a payout (`payouts.hold_payout` in scope, or the system with actor None).

    A payout already on hold collects the extra hold and stays put.
    """
    return _hold(payout, actor=actor, reason=reason, kind=kind, dispute_id=None, permission=HOLD_PERMISSION)


def payout_hold_for_dispute(*, payout: Payout, dispute_id: int, actor, reason: str) -> Payout:
    """Hold a payout for a dispute on one of its bookings. Called by the dispute workflow, which has
    already checked its actor (a party to the booking, or staff in scope): no payout right is asked."""
    return _hold(payout, actor=actor, reason=reason, kind=PayoutHold.Kind.DISPUTE, dispute_id=dispute_id)


def _hold(payout: Payout, *, actor, reason: str, kind: str, dispute_id, permission: str | None = None) -> Payout:
    if not (reason or "").strip():
        raise InvalidInput("A reason is required to hold a payout.")
    with transaction.atomic():
        payout = lock(Payout, payout.pk)
        if payout.status != S.ON_HOLD:
            guard(payout, TRANSITIONS, "hold")
        if permission:
            _require_operator(payout, actor, permission)
        hold, created = PayoutHold.objects.get_or_create(
            payout=payout,
            kind=kind,
            dispute_id=dispute_id,
            released_at=None,
            defaults={"reason": reason, "created_by": actor if getattr(actor, "pk", None) else None},
        )
        if payout.status == S.ON_HOLD:
            if created:
                event_record(verb="payout.hold_added", actor=actor, target=payout, reason=reason, data={"kind": kind})
            return payout
        return _apply(payout, actor=actor, transition="hold", reason=reason, data={"kind": kind})


def payout_release_hold(*, payout: Payout, actor, kind: str | None = None, reason: str = "") -> Payout:
    """Release holds (all of them, or those of one kind): `payouts.hold_payout` in scope, or the
    system. With none left, the payout goes back to accruing, and on to ready if its hold period is over."""
    return _release(payout, actor=actor, kind=kind, dispute_id=None, reason=reason, permission=HOLD_PERMISSION)


def payout_release_for_dispute(*, payout: Payout, dispute_id: int, actor, reason: str = "") -> Payout:
    """Release a dispute's hold once the dispute is closed. Called by the dispute workflow, which
    has already checked its actor: no payout right is asked."""
    return _release(payout, actor=actor, kind=PayoutHold.Kind.DISPUTE, dispute_id=dispute_id, reason=reason)


def _release(payout: Payout, *, actor, kind, dispute_id, reason: str, permission: str | None = None) -> Payout:
    with transaction.atomic():
        payout = lock(Payout, payout.pk)
        guard(payout, TRANSITIONS, "release")
        if permission:
            _require_operator(payout, actor, permission)
        holds = payout.holds.filter(released_at__isnull=True)
        if kind:
            holds = holds.filter(kind=kind)
        if dispute_id is not None:
            holds = holds.filter(dispute_id=dispute_id)
        holds.update(released_at=timezone.now(), released_by=actor if getattr(actor, "pk", None) else None)
        if payout.holds.filter(released_at__isnull=True).exists():
            event_record(
                verb="payout.hold_released",
                actor=actor,
                target=payout,
                reason=reason,
                data={"kind": kind, "dispute": dispute_id, "still_on_hold": True},
            )
            return payout
        _apply(payout, actor=actor, transition="release", reason=reason)
        if payout_is_mature(payout):
            _apply(payout, actor=None, transition="mature")
        return payout


def payout_is_mature(payout: Payout, now=None) -> bool:
    """Past its hold: the hold period it was created with is over, or every booking it pays is
    payable now by the one rule (`mature_q`; e.g. a booking whose dispute was resolved early)."""
    now = now or timezone.now()
    if payout.hold_until <= now:
        return True
    bookings = Booking.objects.filter(payout_items__payout=payout, payout_items__is_active=True)
    return bookings.exists() and not bookings.exclude(mature_q(cutoff=payout_cutoff(now), now=now)).exists()


def payout_mature(*, payout: Payout) -> Payout:
    """The timer: a payout whose hold period is over becomes ready."""
    with transaction.atomic():
        payout = lock(Payout, payout.pk)
        if not payout_is_mature(payout):
            raise InvalidInput(f"Payout #{payout.pk} is held until {payout.hold_until:%Y-%m-%d %H:%M}.")
        return _apply(payout, actor=None, transition="mature")


def payout_needs_approval(payout: Payout) -> bool:
    return payout.amount > threshold("MARKETPLACE_PAYOUT_APPROVAL_ABOVE", payout.currency) or payout.partner.risk_flag


def payout_auto_approve(*, payout: Payout) -> Payout:
    """A small payout of an unflagged partner needs no person's approval."""
    with transaction.atomic():
        payout = lock(Payout, payout.pk, related=("partner",))
        if payout_needs_approval(payout):
            guard(payout, TRANSITIONS, "auto_approve")
            raise NotPermitted(f"Payout #{payout.pk} of {payout.amount} {payout.currency} needs a person's approval.")
        payout.approved_by = None
        payout.approved_at = timezone.now()
        return _apply(payout, actor=None, transition="auto_approve", fields=["approved_by", "approved_at"])


def payout_request_approval(*, payout: Payout, actor, note: str = "") -> Payout:
    """Ask a second person to approve a ready payout (`payouts.change_payout` in scope)."""
    with transaction.atomic():
        payout = lock(Payout, payout.pk)
        guard(payout, TRANSITIONS, "request_approval")
        _require_operator(payout, actor, CHANGE_PERMISSION)
        # A payout back at ready (after a hold or a failed attempt) is approved afresh.
        payout.requested_by = actor
        payout.approved_by = None
        payout.approved_at = None
        payout.note = note
        return _apply(
            payout,
            actor=actor,
            transition="request_approval",
            reason=note,
            fields=["requested_by", "approved_by", "approved_at", "note"],
        )


def _require_approver(payout: Payout, actor) -> None:
    if not actor.has_perm("payouts.approve_payout"):
        raise NotPermitted("You do not have the permission to approve payouts.")
    if not payout_for_user(actor).filter(pk=payout.pk).exists():
        raise NotPermitted(f"Payout #{payout.pk} is outside your scope.")


def payout_approve(*, payout: Payout, actor) -> Payout:
    """Approve a payout. Four-eyes: never the requester; above the finance threshold, Finance only."""
    with transaction.atomic():
        payout = lock(Payout, payout.pk)
        guard(payout, TRANSITIONS, "approve")
        if payout.requested_by_id == actor.pk:
            raise NotPermitted(f"You requested payout #{payout.pk}; a second person must approve it.")
        _require_approver(payout, actor)
        finance_above = threshold("MARKETPLACE_PAYOUT_FINANCE_ABOVE", payout.currency)
        if payout.amount > finance_above and not (
            actor.is_superuser or actor.groups.filter(name=FINANCE_GROUP).exists()
        ):
            raise NotPermitted(
                f"Payout #{payout.pk} is above {finance_above} {payout.currency}; only Finance can approve it."
            )
        payout.approved_by = actor
        payout.approved_at = timezone.now()
        return _apply(payout, actor=actor, transition="approve", fields=["approved_by", "approved_at"])


def payout_reject(*, payout: Payout, actor, reason: str) -> Payout:
    """Send a payout back to ready with a reason; its requester must ask again."""
    if not (reason or "").strip():
        raise InvalidInput("A reason is required to reject a payout.")
    with transaction.atomic():
        payout = lock(Payout, payout.pk)
        guard(payout, TRANSITIONS, "reject")
        _require_approver(payout, actor)
        payout.requested_by = None
        return _apply(payout, actor=actor, transition="reject", reason=reason, fields=["requested_by"])


def payout_submit(*, payout: Payout, actor=None) -> PayoutAttempt:
    """Send an approved payout to the gateway as a new attempt (key: payout id + attempt number).

    The gateway call itself runs in a task after commit (`payout_attempt_process`).
    """
    with transaction.atomic():
        payout = lock(Payout, payout.pk, related=("partner",))
        guard(payout, TRANSITIONS, "submit")
        _require_operator(payout, actor, CHANGE_PERMISSION)
        if payout.partner.status == Partner.Status.SUSPENDED:
            raise ApplicationError(f"Payout #{payout.pk} is not sent: {payout.partner} is suspended.")
        payout.attempt_count += 1
        payout.submitted_at = timezone.now()
        attempt = PayoutAttempt.objects.create(
            payout=payout,
            number=payout.attempt_count,
            idempotency_key=f"payout-{payout.pk}-attempt-{payout.attempt_count}",
        )
        _apply(
            payout,
            actor=actor,
            transition="submit",
            fields=["attempt_count", "submitted_at"],
            data={"attempt": attempt.number},
        )
        transaction.on_commit(lambda: _enqueue_attempt(attempt.pk))
    return attempt


def _enqueue_attempt(attempt_id: int) -> None:
    from django_q.tasks import async_task

    async_task("marketplace.payouts.tasks.payout_attempt_process", attempt_id)


def payout_attempt_process(*, attempt_id: int) -> Payout | None:
    """Call the gateway for one attempt and record the answer. Safe to run twice, even at once:
    the payout row is locked, a finished attempt is skipped, and the gateway call carries the
    attempt's key, so asking again after a crash returns the first answer and moves nothing.

    - paid: the payout is paid and the ledger posts it;
    - refused: the payout fails with the gateway's reason; the system retries it with backoff a
      few times (`payout.next_retry_at`), then leaves it failed for a person;
    - no answer (`GatewayUnavailable`): the outcome is unknown, so the same attempt stays
      submitted and is asked again with the same key after a backoff (`attempt.next_try_at`).
    """
    # The gateway is asked outside any transaction (no row lock is held while the bank answers);
    # the answer is recorded in a second transaction that re-checks the attempt is still open.
    attempt = PayoutAttempt.objects.select_related("payout__partner").get(pk=attempt_id)
    if attempt.status != PayoutAttempt.Status.SUBMITTED or attempt.payout.status != S.SUBMITTED:
        return None
    account = getattr(attempt.payout.partner, "payout_account", None)
    unanswered = None
    if account is None:
        result_ok, reference, error = False, "", "The partner has no payout account."
    else:
        try:
            result = get_gateway().payout(
                account=account.gateway_reference,
                amount=attempt.payout.amount,
                currency=attempt.payout.currency,
                idempotency_key=attempt.idempotency_key,
            )
            result_ok, reference, error = result.ok, result.reference, result.error
        except GatewayUnavailable as exc:
            unanswered = exc
    with transaction.atomic():
        payout = lock(Payout, attempt.payout_id, related=("partner",))
        attempt = PayoutAttempt.objects.select_for_update().get(pk=attempt_id)
        if attempt.status != PayoutAttempt.Status.SUBMITTED or payout.status != S.SUBMITTED:
            return None
        attempt.tries += 1
        if unanswered is not None:
            exc = unanswered
            attempt.error = str(exc)
            attempt.next_try_at = timezone.now() + _backoff(attempt.tries)
            attempt.save(update_fields=["tries", "error", "next_try_at"])
            event_record(
                verb="payout.attempt_unanswered",
                target=payout,
                reason=str(exc),
                data={
                    "attempt": attempt.number,
                    "tries": attempt.tries,
                    "next_try_at": attempt.next_try_at.isoformat(),
                },
            )
            return payout
        attempt.finished_at = timezone.now()
        attempt.gateway_reference = reference
        attempt.error = error
        attempt.next_try_at = None
        fields = ["status", "gateway_reference", "error", "finished_at", "tries", "next_try_at"]
        if result_ok:
            attempt.status = PayoutAttempt.Status.SUCCEEDED
            attempt.save(update_fields=fields)
            payout.gateway_reference = reference
            payout.paid_at = timezone.now()
            _apply(
                payout,
                actor=None,
                transition="mark_paid",
                fields=["gateway_reference", "paid_at"],
                data={"attempt": attempt.number},
            )
            ledger_post_payout(payout=payout)
        else:
            attempt.status = PayoutAttempt.Status.FAILED
            attempt.save(update_fields=fields)
            payout.failure_reason = error
            retry = payout.attempt_count <= settings.MARKETPLACE_PAYOUT_AUTO_RETRIES
            payout.next_retry_at = timezone.now() + _backoff(payout.attempt_count) if retry else None
            _apply(
                payout,
                actor=None,
                transition="mark_failed",
                reason=error,
                fields=["failure_reason", "next_retry_at"],
                data={
                    "attempt": attempt.number,
                    "next_retry_at": payout.next_retry_at.isoformat() if retry else None,
                },
            )
    return payout


def payout_auto_retry(*, payout: Payout) -> Payout:
    """The system retries a failed payout once its backoff is over: back to approved, to be
    submitted as a new attempt with a new key (the failed one moved no money)."""
    with transaction.atomic():
        payout = lock(Payout, payout.pk)
        guard(payout, TRANSITIONS, "auto_retry")
        if payout.next_retry_at is None or payout.next_retry_at > timezone.now():
            raise InvalidInput(f"Payout #{payout.pk} is not due for an automatic retry.")
        payout.next_retry_at = None
        payout.failure_reason = ""
        return _apply(
            payout,
            actor=None,
            transition="auto_retry",
            reason="Retried automatically after a failed attempt",
            fields=["next_retry_at", "failure_reason"],
        )


def payout_retry(*, payout: Payout, actor) -> Payout:
    """Put a failed payout back to ready; the next submission is a new attempt with a new key."""
    with transaction.atomic():
        payout = lock(Payout, payout.pk)
        payout.failure_reason = ""
        payout.next_retry_at = None
        return _apply(
            payout,
            actor=actor,
            transition="retry",
            fields=["failure_reason", "next_retry_at"],
            permission=CHANGE_PERMISSION,
        )


def payout_cancel(*, payout: Payout, actor, reason: str) -> Payout:
    """Cancel a payout that has not been sent; its bookings can be paid by a later payout."""
    if not (reason or "").strip():
        raise InvalidInput("A reason is required to cancel a payout.")
    with transaction.atomic():
        payout = lock(Payout, payout.pk)
        _apply(payout, actor=actor, transition="cancel", reason=reason, permission=CHANGE_PERMISSION)
        _release_for_good(payout, actor)
    return payout


def _release_for_good(payout: Payout, actor) -> None:
    """A cancelled payout lets go of its bookings (a later payout may take them) and of its holds."""
    payout.items.update(is_active=False)
    payout.holds.filter(released_at__isnull=True).update(
        released_at=timezone.now(), released_by=actor if getattr(actor, "pk", None) else None
    )


def payout_reverse(*, payout: Payout, actor, reason: str) -> Payout:
    """The bank returned a paid payout: the provider is owed the money again."""
    if not (reason or "").strip():
        raise InvalidInput("A reason is required to reverse a payout.")
    with transaction.atomic():
        payout = lock(Payout, payout.pk)
        _apply(payout, actor=actor, transition="reverse", reason=reason, permission=CHANGE_PERMISSION)
        ledger_post_payout_reversal(payout=payout)
        # The provider is owed these bookings again: a later payout may take them.
        payout.items.update(is_active=False)
    return payout


# What a payout settles and for how much (creation from the partner's balance, shrinking after a
# refund) lives in settlement.py; its services are part of this module's API.
from marketplace.payouts.settlement import (  # noqa: E402, F401
    booking_payable_amount,
    payout_active_for_booking,
    payout_create,
    payout_recompute_for_booking,
)
