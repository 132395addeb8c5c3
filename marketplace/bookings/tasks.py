"""django-q2 entry points of bookings. Thin: each calls one service and returns its result."""

from marketplace.bookings import timers


def booking_timers_run() -> dict[str, int]:
    """Scheduled: auto-complete bookings and remind providers to accept (safe to run twice).

    Expiry runs in `marketplace.payments.tasks.booking_expiry_run` (it voids the authorisation),
    closing after the review window in `marketplace.reviews.tasks.review_timers_run`.
    """
    return timers.booking_timers_run()
