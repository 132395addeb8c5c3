"""django-q2 entry points of bookings. Thin: each calls one service and returns its result."""

from marketplace.bookings import timers


def booking_timers_run() -> dict[str, int]:
    """Scheduled: expire, auto-complete and close bookings, and send reminders (safe to run twice)."""
    return timers.booking_timers_run()
