"""Booking timers: auto-completion and the acceptance reminder; and `remind`, the reminder sweep
the other apps' timers use.

A periodic task (`marketplace.bookings.tasks.booking_timers_run`) runs them. Like every timer it
may run twice, even twice at once (django-q2 delivers at least once), so each row is re-read under
its lock before it moves (see `marketplace.core.timers.sweep`) and every reminder carries a
deterministic dedupe key, so each effect happens once.

The booking timers that reach into higher apps live there, so imports flow one way (upward):
expiry voids the authorisation (`marketplace.payments.timers`), closing after the review window
publishes the reviews (`marketplace.reviews.timers`), and dispute deadlines are
`marketplace.disputes.timers`.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import models, transaction
from django.utils import timezone

from marketplace.bookings.models import Booking
from marketplace.bookings.services import booking_complete
from marketplace.core.timers import BATCH_SIZE, MAX_BATCHES, sweep
from marketplace.core.transitions import lock
from marketplace.notifications.models import Notification
from marketplace.notifications.services import notify

B = Booking.Status
COMPLETABLE = (B.ACCEPTED, B.IN_PROGRESS)


# --- Reminders (shared with the dispute timers) ------------------------------------------------


@dataclass(frozen=True)
class Reminder:
    """One reminder owed to one user; `key` (which names the row, the user's role and the deadline)
    makes `notify` write it once, whoever sends it."""

    user: object
    key: str
    verb: str
    title: str
    body: str = ""


def remind(
    queryset: models.QuerySet,
    plan: Callable[[models.Model], list[Reminder]],
    *,
    counts: dict[str, int],
    related: tuple[str, ...] = (),
) -> dict[str, int]:
    """Send the reminders `plan(row)` says each row of `queryset` still needs, each exactly once.

    Reminders already sent (their dedupe key is taken) are left out with one query per batch, so
    a second run counts nothing. Each one still owed is sent in its own transaction after locking
    its row and planning again from the locked row: a row that moved on meanwhile is skipped, and
    a twin run that got there first has taken the key, which the locked re-check sees.
    """
    model = queryset.model
    last_pk = 0
    for _ in range(MAX_BATCHES):
        rows = list(queryset.filter(pk__gt=last_pk).order_by("pk")[:BATCH_SIZE])
        owed = [(row.pk, reminder) for row in rows for reminder in plan(row)]
        sent = set(
            Notification.objects.filter(dedupe_key__in=[r.key for _, r in owed]).values_list("dedupe_key", flat=True)
        )
        for pk, reminder in owed:
            if reminder.key in sent:
                continue
            with transaction.atomic():
                row = lock(model, pk, related=related)
                if (
                    reminder.key not in {r.key for r in plan(row)}
                    or Notification.objects.filter(dedupe_key=reminder.key).exists()
                ):
                    counts["skipped"] += 1
                    continue
                notify(
                    user=reminder.user,
                    verb=reminder.verb,
                    title=reminder.title,
                    body=reminder.body,
                    target=row,
                    dedupe_key=reminder.key,
                )
                counts["reminded"] += 1
        if len(rows) < BATCH_SIZE:
            break
        last_pk = rows[-1].pk
    return counts


def reminder_window(now: datetime) -> tuple[datetime, datetime]:
    """Deadlines in (now, now + MARKETPLACE_REMINDER_HOURS] get their reminder now."""
    return now, now + timedelta(hours=settings.MARKETPLACE_REMINDER_HOURS)


def in_reminder_window(deadline: datetime | None, now: datetime) -> bool:
    """The deadline falls in `reminder_window(now)`: its reminder is due."""
    start, end = reminder_window(now)
    return deadline is not None and start < deadline <= end


# --- The sweep ---------------------------------------------------------------------------------


def booking_timers_run() -> dict[str, int]:
    """Run the booking timers once and return what they did.

    - accepted or in progress past `ends_at` + MARKETPLACE_COMPLETION_GRACE_HOURS: complete;
    - MARKETPLACE_REMINDER_HOURS before the acceptance deadline: remind the provider.

    Returns {"completed", "reminded", "skipped", "failed"} counts.
    """
    counts = {"completed": 0, "reminded": 0, "skipped": 0, "failed": 0}
    now = timezone.now()
    grace = timedelta(hours=settings.MARKETPLACE_COMPLETION_GRACE_HOURS)

    def complete(pk: int) -> bool:
        booking = lock(Booking, pk)
        # `booking_complete` with no actor trusts its caller on the time, so check it here.
        if booking.status not in COMPLETABLE or booking.ends_at + grace > timezone.now():
            return False
        hours = settings.MARKETPLACE_COMPLETION_GRACE_HOURS
        reason = f"Completed automatically {hours} hours after the end of the booking."
        booking_complete(booking=booking, actor=None, reason=reason)
        return True

    sweep(
        Booking.objects.filter(status__in=COMPLETABLE, ends_at__lte=now - grace),
        complete,
        counts=counts,
        done="completed",
    )
    start, end = reminder_window(now)
    remind(
        Booking.objects.filter(status=B.AUTHORIZED, expires_at__gt=start, expires_at__lte=end).select_related(
            "provider"
        ),
        lambda booking: _accept_reminders(booking, now),
        counts=counts,
        related=("provider",),
    )
    return counts


def _accept_reminders(booking: Booking, now: datetime) -> list[Reminder]:
    deadline = booking.expires_at
    if booking.status != B.AUTHORIZED or not in_reminder_window(deadline, now):
        return []
    return [
        Reminder(
            user=booking.provider,
            key=f"reminder:booking-accept:{booking.pk}:{deadline.isoformat()}",
            verb="booking.accept_reminder",
            title=f"Booking #{booking.pk}: accept or decline by {deadline:%Y-%m-%d %H:%M} UTC",
            body="The booking is paid. If you do not answer in time it expires and the client's payment is released.",
        )
    ]
