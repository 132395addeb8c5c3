"""Review timers: closing a booking after its review window (publishing the double-blind reviews)
and reminding each party who has not reviewed before the window closes.

They belong to the reviews app, above bookings, so the booking timers never import reviews. A
periodic task (`marketplace.reviews.tasks.review_timers_run`) runs them; like every timer it may run
twice, even at once, so each row is re-read under its lock before it moves and every reminder
carries a deterministic dedupe key (see `marketplace.core.timers.sweep`,
`marketplace.bookings.timers.remind`).
"""

from datetime import datetime

from django.db.models import Q
from django.utils import timezone

from marketplace.bookings.models import Booking
from marketplace.bookings.timers import Reminder, in_reminder_window, remind, reminder_window
from marketplace.core.timers import sweep
from marketplace.core.transitions import lock
from marketplace.reviews.services import review_window_close

B = Booking.Status
CLOSABLE = (B.COMPLETED, B.RESOLVED)


def review_timers_run() -> dict[str, int]:
    """Run the review timers once and return what they did.

    - completed or resolved past the review window (and the dispute window): close, publishing the reviews;
    - MARKETPLACE_REMINDER_HOURS before the review window closes: remind each party who has not reviewed.

    Returns {"closed", "reminded", "skipped", "failed"} counts.
    """
    counts = {"closed": 0, "reminded": 0, "skipped": 0, "failed": 0}
    now = timezone.now()

    def close(pk: int) -> bool:
        booking = lock(Booking, pk)
        if booking.status not in CLOSABLE or not _closing_time(booking, timezone.now()):
            return False
        review_window_close(booking=booking)
        return True

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


def _review_reminders(booking: Booking, now: datetime) -> list[Reminder]:
    deadline = booking.review_window_ends_at
    if booking.status not in CLOSABLE or not in_reminder_window(deadline, now):
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
