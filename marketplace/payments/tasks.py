"""django-q2 entry points of payments. Thin: each calls one service and returns its result."""

from marketplace.payments import timers
from marketplace.payments.services import calls


def booking_expiry_run() -> dict[str, int]:
    """Scheduled: expire bookings past their payment or acceptance deadline, voiding the authorisation."""
    return timers.booking_expiry_run()


def gateway_calls_resume() -> dict[str, int]:
    """Scheduled: ask the gateway again (same key) about calls left pending, and record their outcome once."""
    return calls.gateway_calls_resume()
