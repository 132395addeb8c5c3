"""Dispute timers: the counterparty's response deadline, the ops SLA, and their reminders.

A periodic task (`marketplace.disputes.tasks.dispute_timers_run`) runs them; it may run twice,
even twice at once, so each row is re-read under its lock before it moves, and each reminder has
a deterministic dedupe key (see `marketplace.catalog.timers.sweep`, `marketplace.bookings.timers.remind`).
"""

from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from marketplace.bookings.timers import Reminder, remind, reminder_window
from marketplace.core.timers import sweep
from marketplace.core.transitions import lock
from marketplace.disputes.models import Dispute
from marketplace.disputes.services import (
    TRANSITIONS,
    dispute_escalate,
    dispute_response_overdue,
    dispute_sla_breached,
    dispute_start_review,
)

S = Dispute.Status
ESCALATABLE = sorted(TRANSITIONS["escalate"][0])  # opened, awaiting_response, under_review
# The states in which the ops SLA runs (awaiting_response waits on the counterparty instead).
SLA_RUNNING = (S.OPENED, S.UNDER_REVIEW)


def dispute_timers_run() -> dict[str, int]:
    """Run every dispute timer once and return what it did.

    - awaiting a response past `response_due_at`: under review, with a fresh ops SLA;
    - opened or under review (or awaiting a response whose deadline has passed too) past
      `sla_due_at`: escalated to the lead queue (see `dispute_escalate`);
    - reminders: the counterparty MARKETPLACE_REMINDER_HOURS before their response deadline, the
      assignee MARKETPLACE_DISPUTE_SLA_REMINDER_HOURS before the SLA runs out.

    Returns {"reviewing", "escalated", "reminded", "skipped", "failed"} counts.
    """
    counts = {"reviewing": 0, "escalated": 0, "reminded": 0, "skipped": 0, "failed": 0}
    now = timezone.now()

    def start_review(pk: int) -> bool:
        dispute = lock(Dispute, pk)
        if not dispute_response_overdue(dispute, timezone.now()):
            return False
        dispute_start_review(dispute=dispute, actor=None)
        return True

    def escalate(pk: int) -> bool:
        dispute = lock(Dispute, pk)
        if not dispute_sla_breached(dispute, timezone.now()):
            return False
        dispute_escalate(dispute=dispute, actor=None, reason="SLA breached")
        return True

    # Responses first: a dispute whose response deadline passed gets its fresh SLA before the
    # escalation pass looks at it.
    sweep(
        Dispute.objects.filter(status=S.AWAITING_RESPONSE, response_due_at__lte=now),
        start_review,
        counts=counts,
        done="reviewing",
    )
    sweep(
        Dispute.objects.filter(sla_due_at__lte=now).filter(
            Q(status__in=SLA_RUNNING)
            | Q(status=S.AWAITING_RESPONSE) & (Q(response_due_at__isnull=True) | Q(response_due_at__lte=now))
        ),
        escalate,
        counts=counts,
        done="escalated",
    )
    start, end = reminder_window(now)
    remind(
        Dispute.objects.filter(
            status=S.AWAITING_RESPONSE, response_due_at__gt=start, response_due_at__lte=end
        ).select_related("booking__client", "booking__provider"),
        lambda dispute: _response_reminders(dispute, now),
        counts=counts,
        related=("booking__client", "booking__provider"),
    )
    sla_end = now + timedelta(hours=settings.MARKETPLACE_DISPUTE_SLA_REMINDER_HOURS)
    remind(
        Dispute.objects.filter(
            status__in=SLA_RUNNING, assignee__isnull=False, sla_due_at__gt=now, sla_due_at__lte=sla_end
        ).select_related("assignee"),
        lambda dispute: _sla_reminders(dispute, now),
        counts=counts,
        related=("assignee",),
    )
    return counts


def _response_reminders(dispute: Dispute, now: datetime) -> list[Reminder]:
    deadline = dispute.response_due_at
    start, end = reminder_window(now)
    if dispute.status != S.AWAITING_RESPONSE or deadline is None or not start < deadline <= end:
        return []
    booking = dispute.booking
    # The same counterparty `dispute_request_response` asked.
    counterparty = booking.provider if dispute.opened_by_id == booking.client_id else booking.client
    return [
        Reminder(
            user=counterparty,
            key=f"reminder:dispute-response:{dispute.pk}:{deadline.isoformat()}",
            verb="dispute.response_reminder",
            title=f"Dispute #{dispute.pk}: please respond by {deadline:%Y-%m-%d %H:%M} UTC",
            body="Without your response the dispute is reviewed on what the other party has said.",
        )
    ]


def _sla_reminders(dispute: Dispute, now: datetime) -> list[Reminder]:
    deadline = dispute.sla_due_at
    sla_end = now + timedelta(hours=settings.MARKETPLACE_DISPUTE_SLA_REMINDER_HOURS)
    if dispute.status not in SLA_RUNNING or dispute.assignee is None or deadline is None:
        return []
    if not now < deadline <= sla_end:
        return []
    return [
        Reminder(
            user=dispute.assignee,
            key=f"reminder:dispute-sla:{dispute.pk}:{dispute.assignee_id}:{deadline.isoformat()}",
            verb="dispute.sla_reminder",
            title=f"Dispute #{dispute.pk} is due by {deadline:%Y-%m-%d %H:%M} UTC",
            body="If it is not handled in time it is escalated to the lead queue.",
        )
    ]
