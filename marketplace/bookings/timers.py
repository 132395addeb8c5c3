"""Booking timers: expiry, auto-completion, closing after the review window, and reminders.

A periodic task (`marketplace.bookings.tasks.booking_timers_run`) runs them. Like every timer it
may run twice, even twice at once (django-q2 delivers at least once), so each row is re-read under
its lock before it moves (see `marketplace.catalog.timers.sweep`) and every reminder carries a
deterministic dedupe key, so each effect happens once.

This module is a workflow over several apps (the expiry voids a payment, closing publishes
reviews), so it calls their services; the booking services themselves never import them.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import models, transaction
from django.db.models import Q
from django.utils import timezone

from marketplace.bookings.models import Booking
from marketplace.bookings.services import booking_complete
from marketplace.core.timers import BATCH_SIZE, MAX_BATCHES, sweep
from marketplace.core.transitions import lock
from marketplace.notifications.models import Notification
from marketplace.notifications.services import notify
from marketplace.payments.services.checkout import booking_expire
from marketplace.reviews.services import review_window_close

B = Booking.Status
EXPIRABLE = (B.PENDING_PAYMENT, B.AUTHORIZED)
COMPLETABLE = (B.ACCEPTED, B.IN_PROGRESS)
CLOSABLE = (B.COMPLETED, B.RESOLVED)


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


def _in_window(deadline: datetime | None, now: datetime) -> bool:
    start, end = reminder_window(now)
    return deadline is not None and start < deadline <= end


# --- The sweep ---------------------------------------------------------------------------------


def booking_timers_run() -> dict[str, int]:
    """Run every booking timer once and return what it did.

    - pending payment or authorised (not accepted) past `expires_at`: expire (the authorisation is voided);
    - accepted or in progress past `ends_at` + MARKETPLACE_COMPLETION_GRACE_HOURS: complete;
    - completed or resolved past the review window (and the dispute window): close, publishing the reviews;
    - reminders MARKETPLACE_REMINDER_HOURS before a deadline: the provider before the acceptance
      deadline, each party who has not reviewed before the review window closes.

    Returns {"expired", "completed", "closed", "reminded", "skipped", "failed"} counts.
    """
    counts = {"expired": 0, "completed": 0, "closed": 0, "reminded": 0, "skipped": 0, "failed": 0}
    now = timezone.now()
    grace = timedelta(hours=settings.MARKETPLACE_COMPLETION_GRACE_HOURS)

    def expire(pk: int) -> bool:
        booking = lock(Booking, pk)
        if booking.status not in EXPIRABLE or booking.expires_at is None or booking.expires_at > timezone.now():
            return False
        booking_expire(booking=booking, actor=None)
        return True

    def complete(pk: int) -> bool:
        booking = lock(Booking, pk)
        # `booking_complete` with no actor trusts its caller on the time, so check it here.
        if booking.status not in COMPLETABLE or booking.ends_at + grace > timezone.now():
            return False
        hours = settings.MARKETPLACE_COMPLETION_GRACE_HOURS
        reason = f"Completed automatically {hours} hours after the end of the booking."
        booking_complete(booking=booking, actor=None, reason=reason)
        return True

    def close(pk: int) -> bool:
        booking = lock(Booking, pk)
        if booking.status not in CLOSABLE or not _closing_time(booking, timezone.now()):
            return False
        review_window_close(booking=booking)
        return True

    sweep(Booking.objects.filter(status__in=EXPIRABLE, expires_at__lte=now), expire, counts=counts, done="expired")
    sweep(
        Booking.objects.filter(status__in=COMPLETABLE, ends_at__lte=now - grace),
        complete,
        counts=counts,
        done="completed",
    )
    sweep(
        Booking.objects.filter(status__in=CLOSABLE, review_window_ends_at__lte=now).filter(
            Q(dispute_window_ends_at__isnull=True) | Q(dispute_window_ends_at__lte=now)
        ),
        close,
        counts=counts,
        done="closed",
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
    remind(
        Booking.objects.filter(status__in=CLOSABLE, review_window_ends_at__gt=start, review_window_ends_at__lte=end)
        .select_related("client", "provider")
        .prefetch_related("reviews"),
        lambda booking: _review_reminders(booking, now),
        counts=counts,
        related=("client", "provider"),
    )
    return counts


def _closing_time(booking: Booking, now: datetime) -> bool:
    """The review window is over, and so is the dispute window.

    A closed booking can no longer be disputed, so closing at the end of the review window must
    not cut a longer dispute window short (they are both 14 days by default).
    """
    review_over = booking.review_window_ends_at is not None and booking.review_window_ends_at <= now
    dispute_over = booking.dispute_window_ends_at is None or booking.dispute_window_ends_at <= now
    return review_over and dispute_over


def _accept_reminders(booking: Booking, now: datetime) -> list[Reminder]:
    deadline = booking.expires_at
    if booking.status != B.AUTHORIZED or not _in_window(deadline, now):
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


def _review_reminders(booking: Booking, now: datetime) -> list[Reminder]:
    deadline = booking.review_window_ends_at
    if booking.status not in CLOSABLE or not _in_window(deadline, now):
        return []
    reviewed = {review.author_id for review in booking.reviews.all()}
    return [
        Reminder(
            user=user,
            key=f"reminder:booking-review:{booking.pk}:{user.pk}:{deadline.isoformat()}",
            verb="booking.review_reminder",
            title=f"Booking #{booking.pk}: leave your review by {deadline:%Y-%m-%d %H:%M} UTC",
            body="Reviews are published together when both parties have reviewed or the window closes.",
        )
        for user in (booking.client, booking.provider)
        if user.pk not in reviewed
    ]
