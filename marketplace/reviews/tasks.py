"""django-q2 entry points of reviews. Thin: each calls one service and returns its result."""

from marketplace.reviews import timers


def review_timers_run() -> dict[str, int]:
    """Scheduled: close bookings after their review window (publishing the reviews) and send review reminders."""
    return timers.review_timers_run()
