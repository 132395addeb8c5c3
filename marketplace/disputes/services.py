"""The dispute state machine. Opening holds the payout; resolving refunds (if any) and releases it.

Rows are locked in one order everywhere: dispute, booking, payment, payout.
"""

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from guardian.shortcuts import assign_perm, remove_perm

from marketplace.accounts.models import User
from marketplace.accounts.services import StaffGroup
from marketplace.audit.services import event_record
from marketplace.bookings.models import Booking
from marketplace.bookings.selectors import booking_for_user
from marketplace.bookings.services import TRANSITIONS as BOOKING_TRANSITIONS
from marketplace.bookings.services import booking_apply_transition
from marketplace.core.exceptions import InvalidInput, NotPermitted, TransitionNotAllowed
from marketplace.core.transitions import guard, lock
from marketplace.disputes.models import OPEN_STATES, Dispute, DisputeEvidence
from marketplace.disputes.selectors import dispute_for_user
from marketplace.notifications.services import notify
from marketplace.payouts.services import (
    payout_active_for_booking,
    payout_hold_for_dispute,
)

S = Dispute.Status
OPEN = set(OPEN_STATES)
OUTCOMES = {
    "release": ("resolve_release", S.RESOLVED_RELEASE),
    "partial_refund": ("resolve_partial_refund", S.RESOLVED_PARTIAL_REFUND),
    "full_refund": ("resolve_full_refund", S.RESOLVED_FULL_REFUND),
}

# transition -> (states it may start from, state it leads to)
TRANSITIONS: dict[str, tuple[set[str], str]] = {
    "request_response": ({S.OPENED, S.UNDER_REVIEW, S.ESCALATED}, S.AWAITING_RESPONSE),
    "respond": ({S.AWAITING_RESPONSE}, S.UNDER_REVIEW),
    "start_review": ({S.OPENED, S.AWAITING_RESPONSE}, S.UNDER_REVIEW),
    "escalate": ({S.OPENED, S.AWAITING_RESPONSE, S.UNDER_REVIEW}, S.ESCALATED),
    "resolve_release": (OPEN, S.RESOLVED_RELEASE),
    "resolve_partial_refund": (OPEN, S.RESOLVED_PARTIAL_REFUND),
    "resolve_full_refund": (OPEN, S.RESOLVED_FULL_REFUND),
    "withdraw": (OPEN, S.WITHDRAWN),
}


# The model permission each staff step needs; the dispute must also be in the actor's scope
# (`dispute_for_user`: partner and category grants, and the disputes assigned to them).
HANDLE_PERMISSION = "disputes.change_dispute"
RESOLVE_PERMISSION = "disputes.resolve_dispute"


def _require_scope(dispute: Dispute, actor) -> None:
    if not dispute_for_user(actor).filter(pk=dispute.pk).exists():
        raise NotPermitted(f"Dispute #{dispute.pk} is outside your scope.")


def _require_handler(dispute: Dispute, actor) -> None:
    """Staff who handle disputes (`disputes.change_dispute`) with this dispute in scope."""
    if not actor.has_perm(HANDLE_PERMISSION):
        raise NotPermitted(f"You do not have the permission to handle dispute #{dispute.pk}.")
    _require_scope(dispute, actor)


def _apply(dispute: Dispute, *, actor, transition: str, reason: str = "", fields=(), data=None) -> Dispute:
    target = guard(dispute, TRANSITIONS, transition)
    from_state = dispute.status
    dispute.status = target
    dispute.save(update_fields=["status", "updated_at", *fields])
    event_record(
        verb=f"dispute.{transition}",
        actor=actor,
        target=dispute,
        from_state=from_state,
        to_state=target,
        reason=reason,
        data=data,
    )
    return dispute


def _notify_parties(dispute: Dispute, booking: Booking, *, verb: str, title: str, body: str = "", skip=None):
    for user in (booking.client, booking.provider):
        if skip is None or user.pk != skip.pk:
            notify(user=user, verb=verb, target=dispute, title=title, body=body)


def dispute_open(*, booking: Booking, actor, reason_code: str, description: str) -> Dispute:
    """A party disputes a completed booking within the dispute window; its payout goes on hold."""
    if reason_code not in Dispute.Reason.values:
        raise InvalidInput(f"Unknown dispute reason '{reason_code}'.")
    if not (description or "").strip():
        raise InvalidInput("Describe the problem to open a dispute.")
    with transaction.atomic():
        booking = lock(Booking, booking.pk, related=("client", "provider"))
        guard(booking, BOOKING_TRANSITIONS, "dispute")
        if actor.pk not in (booking.client_id, booking.provider_id):
            if not actor.has_perm(HANDLE_PERMISSION):
                raise NotPermitted(f"You are not a party to booking #{booking.pk}.")
            if not booking_for_user(actor).filter(pk=booking.pk).exists():
                raise NotPermitted(f"Booking #{booking.pk} is outside your scope.")
        if booking.dispute_window_ends_at and booking.dispute_window_ends_at < timezone.now():
            raise TransitionNotAllowed(booking, "open a dispute", detail="The dispute window has closed.")
        now = timezone.now()
        dispute = Dispute.objects.create(
            booking=booking,
            partner_id=booking.partner_id,
            opened_by=actor,
            reason_code=reason_code,
            description=description,
            sla_due_at=now + timedelta(hours=settings.MARKETPLACE_DISPUTE_SLA_HOURS),
        )
        event_record(
            verb="dispute.opened",
            actor=actor,
            target=dispute,
            to_state=dispute.status,
            reason=description,
            data={"booking": booking.pk, "reason_code": reason_code},
        )
        booking_apply_transition(
            booking=booking, actor=actor, transition="dispute", reason=reason_code, notify_parties=False
        )
        payout = payout_active_for_booking(booking=booking)
        if payout is not None and payout.status == payout.Status.SUBMITTED:
            # The money is already at the gateway and cannot be stopped; a refund on this dispute
            # then leaves the provider owing it, which the ledger carries as a negative payable.
            event_record(verb="dispute.payout_in_flight", actor=actor, target=dispute, data={"payout": payout.pk})
        elif payout is not None:
            payout_hold_for_dispute(
                payout=payout,
                actor=actor,
                dispute_id=dispute.pk,
                reason=f"Dispute #{dispute.pk} on booking #{booking.pk}",
            )
        _notify_parties(
            dispute,
            booking,
            verb="dispute.opened",
            skip=actor,
            title=f"A dispute was opened on booking #{booking.pk}",
            body=description,
        )
    return dispute


def dispute_assign(*, dispute: Dispute, actor, assignee) -> Dispute:
    """Assign a dispute to a staff member, granting them this one dispute (guardian object permission).

    The actor needs `disputes.assign_dispute` and the dispute in scope; the assignee needs no scope
    of their own: the grant puts this dispute in it.
    """
    if not actor.has_perm("disputes.assign_dispute"):
        raise NotPermitted("You do not have the permission to assign disputes.")
    if not (assignee.is_active and assignee.is_staff):
        raise InvalidInput(f"{assignee} is not active staff and cannot handle disputes.")
    with transaction.atomic():
        dispute = lock(Dispute, dispute.pk)
        if dispute.status not in OPEN:
            raise TransitionNotAllowed(dispute, "assign")
        _require_scope(dispute, actor)
        previous = dispute.assignee
        if previous is not None and previous.pk == assignee.pk:
            return dispute  # already theirs (a double click): nothing to grant, record or tell
        if previous is not None:
            remove_perm("disputes.handle_dispute", previous, dispute)
        assign_perm("disputes.handle_dispute", assignee, dispute)
        dispute.assignee = assignee
        dispute.save(update_fields=["assignee", "updated_at"])
        event_record(
            verb="dispute.assigned",
            actor=actor,
            target=dispute,
            data={"assignee": assignee.pk, "previous": previous.pk if previous else None},
        )
        event_record(
            verb="scope.granted",
            actor=actor,
            target=dispute,
            data={"grantee": str(assignee), "permission": "disputes.handle_dispute"},
        )
        notify(user=assignee, verb="dispute.assigned", target=dispute, title=f"Dispute #{dispute.pk} is yours")
    return dispute


def dispute_request_response(*, dispute: Dispute, actor, due_at=None) -> Dispute:
    """Ask the counterparty to respond by a deadline (default: the configured response time)."""
    due_at = due_at or timezone.now() + timedelta(hours=settings.MARKETPLACE_DISPUTE_RESPONSE_HOURS)
    if due_at <= timezone.now():
        raise InvalidInput("The response deadline must be in the future.")
    with transaction.atomic():
        dispute = lock(Dispute, dispute.pk, related=("booking__client", "booking__provider", "opened_by"))
        guard(dispute, TRANSITIONS, "request_response")
        _require_handler(dispute, actor)
        dispute.response_due_at = due_at
        _apply(
            dispute,
            actor=actor,
            transition="request_response",
            fields=["response_due_at"],
            data={"due_at": due_at.isoformat()},
        )
        booking = dispute.booking
        counterparty = booking.provider if dispute.opened_by_id == booking.client_id else booking.client
        notify(
            user=counterparty,
            verb="dispute.response_requested",
            target=dispute,
            title=f"Please respond to dispute #{dispute.pk} by {due_at:%Y-%m-%d %H:%M} UTC",
        )
    return dispute


def dispute_respond(*, dispute: Dispute, actor, text: str) -> Dispute:
    """The counterparty answers; the dispute moves to review with a fresh ops SLA."""
    if not (text or "").strip():
        raise InvalidInput("A response cannot be empty.")
    with transaction.atomic():
        dispute = lock(Dispute, dispute.pk, related=("booking",))
        booking = dispute.booking
        if actor.pk not in (booking.client_id, booking.provider_id) or actor.pk == dispute.opened_by_id:
            raise NotPermitted(f"Only the other party can respond to dispute #{dispute.pk}.")
        guard(dispute, TRANSITIONS, "respond")
        DisputeEvidence.objects.create(dispute=dispute, submitted_by=actor, text=text)
        dispute.sla_due_at = timezone.now() + timedelta(hours=settings.MARKETPLACE_DISPUTE_SLA_HOURS)
        return _apply(dispute, actor=actor, transition="respond", reason=text, fields=["sla_due_at"])


def dispute_add_evidence(*, dispute: Dispute, actor, text: str = "", file=None) -> DisputeEvidence:
    if not (text or "").strip() and not file:
        raise InvalidInput("Evidence needs a text or a file.")
    with transaction.atomic():
        dispute = lock(Dispute, dispute.pk, related=("booking",))
        booking = dispute.booking
        if actor.pk not in (booking.client_id, booking.provider_id):
            if not actor.has_perm(HANDLE_PERMISSION):
                raise NotPermitted(f"You are not a party to dispute #{dispute.pk}.")
            _require_scope(dispute, actor)
        if dispute.status not in OPEN:
            raise TransitionNotAllowed(dispute, "add evidence")
        evidence = DisputeEvidence.objects.create(dispute=dispute, submitted_by=actor, text=text, file=file or "")
        event_record(verb="dispute.evidence_added", actor=actor, target=dispute, data={"evidence": evidence.pk})
    return evidence


def dispute_start_review(*, dispute: Dispute, actor=None) -> Dispute:
    """Ops take the dispute into review (or the response deadline passed); the SLA clock starts.

    With no actor it is the response timer: it refuses (InvalidInput, writing nothing) a dispute
    whose counterparty's deadline has not passed, and tells both parties the review has started.
    """
    with transaction.atomic():
        dispute = lock(Dispute, dispute.pk, related=("booking__client", "booking__provider"))
        guard(dispute, TRANSITIONS, "start_review")
        if actor is not None:
            _require_handler(dispute, actor)
        elif not dispute_response_overdue(dispute, timezone.now()):
            raise InvalidInput(f"Dispute #{dispute.pk} is not past its response deadline yet.")
        dispute.sla_due_at = timezone.now() + timedelta(hours=settings.MARKETPLACE_DISPUTE_SLA_HOURS)
        reason = "" if actor is not None else "The response deadline passed."
        _apply(dispute, actor=actor, transition="start_review", reason=reason, fields=["sla_due_at"])
        if actor is None:
            _notify_parties(
                dispute,
                dispute.booking,
                verb="dispute.review_started",
                title=f"Dispute #{dispute.pk} is under review",
                body="The time to respond is over; the operations team now reviews the dispute.",
            )
    return dispute


def dispute_response_overdue(dispute: Dispute, now) -> bool:
    """Awaiting a response whose deadline has passed: the response timer moves it to review."""
    return (
        dispute.status == S.AWAITING_RESPONSE and dispute.response_due_at is not None and dispute.response_due_at <= now
    )


def dispute_sla_breached(dispute: Dispute, now) -> bool:
    """An escalatable dispute whose ops SLA (`sla_due_at`) has passed.

    While the dispute awaits the counterparty, the ball is in their court: the SLA only counts
    again once their deadline has passed (and the response timer then starts a fresh SLA anyway).
    """
    if dispute.status not in TRANSITIONS["escalate"][0] or dispute.sla_due_at is None or dispute.sla_due_at > now:
        return False
    return not (
        dispute.status == S.AWAITING_RESPONSE and dispute.response_due_at is not None and dispute.response_due_at > now
    )


def dispute_escalate(*, dispute: Dispute, actor=None, reason: str = "SLA breached") -> Dispute:
    """Escalate a dispute: the SLA timer (actor None), or a handler in scope.

    The timer refuses (InvalidInput, writing nothing) a dispute whose SLA has not been breached.
    When it escalates, the dispute leaves its assignee for the lead queue, and the members of the
    Operations lead group, the previous assignee and the parties are told, all in this transaction.
    """
    with transaction.atomic():
        dispute = lock(Dispute, dispute.pk, related=("booking__client", "booking__provider", "assignee"))
        guard(dispute, TRANSITIONS, "escalate")
        if actor is not None:
            _require_handler(dispute, actor)
        elif not dispute_sla_breached(dispute, timezone.now()):
            raise InvalidInput(f"Dispute #{dispute.pk} is within its SLA until {dispute.sla_due_at:%Y-%m-%d %H:%M}.")
        dispute.escalated_at = timezone.now()
        previous = dispute.assignee if actor is None else None
        fields = ["escalated_at"]
        if previous is not None:
            dispute.assignee = None
            fields.append("assignee")
        data = {"previous_assignee": previous.pk} if previous is not None else None
        _apply(dispute, actor=actor, transition="escalate", reason=reason, fields=fields, data=data)
        if actor is None:
            _escalate_to_leads(dispute, previous=previous, reason=reason)
    return dispute


def _escalate_to_leads(dispute: Dispute, *, previous, reason: str) -> None:
    """Hand a dispute the timer escalated to the lead queue and tell everyone concerned."""
    if previous is not None:
        # The object grant means "handles this dispute": dispute_assign grants it and takes it
        # from the previous assignee on reassignment. Escalation reassigns to the lead queue, so
        # the same rule applies; otherwise the dispute would stay in the agent's scope (and in
        # reach of their resolve permission) after it stopped being theirs. Leads see every
        # partner through their group, and a lead can hand it back with dispute_assign.
        remove_perm("disputes.handle_dispute", previous, dispute)
        event_record(
            verb="dispute.assigned",
            target=dispute,
            reason="Escalated to the lead queue",
            data={"assignee": None, "previous": previous.pk},
        )
        event_record(
            verb="scope.revoked",
            target=dispute,
            data={"grantee": str(previous), "permission": "disputes.handle_dispute"},
        )
    booking = dispute.booking
    recipients = {}
    for user in (booking.client, booking.provider):
        recipients.setdefault(user.pk, (user, f"Dispute #{dispute.pk} was escalated to a senior agent"))
    if previous is not None:
        recipients.setdefault(previous.pk, (previous, f"Dispute #{dispute.pk} was escalated and left your queue"))
    leads = User.objects.filter(groups__name=StaffGroup.OPERATIONS_LEAD, is_active=True).distinct().order_by("pk")
    for lead in leads:
        recipients.setdefault(lead.pk, (lead, f"Dispute #{dispute.pk} breached its SLA and is in the lead queue"))
    for user, title in recipients.values():
        notify(user=user, verb="dispute.escalated", target=dispute, title=title, body=reason)


# Resolution (the refund through the one refund rule, the payout released) and withdrawal live in
# resolution.py; they are part of this module's API.
from marketplace.disputes.resolution import (  # noqa: E402, F401
    dispute_approve_resolution,
    dispute_resolve,
    dispute_withdraw,
)
