"""Booking expiry: a booking left waiting for payment or acceptance past its deadline expires, and
its authorisation is voided at the gateway.

It moves money, so it lives in the payments app, above bookings (ARCHITECTURE.md: a workflow that
spans layers lives in the higher app); the booking timers never import it. A periodic task
(`marketplace.payments.tasks.booking_expiry_run`) runs it, maybe twice at once: each row goes
through `booking_expire`, which locks and re-checks it, and the gateway is asked outside any
transaction (`payments.services.calls`), so the sweep calls each step with no transaction open.
"""

from django.utils import timezone

from marketplace.bookings.models import Booking
from marketplace.core.timers import sweep
from marketplace.payments.services.calls import GatewayCallInProgress
from marketplace.payments.services.checkout import booking_expire

B = Booking.Status
EXPIRABLE = (B.PENDING_PAYMENT, B.AUTHORIZED)


def booking_expiry_run() -> dict[str, int]:
    """Expire every booking pending payment, or authorised and not accepted, past `expires_at`
    (voiding the authorisation). Returns {"expired", "skipped", "failed"} counts.

    A booking whose void the gateway refuses, or does not answer, is counted as failed and left
    as it was, for the next run.
    """
    counts = {"expired": 0, "skipped": 0, "failed": 0}

    def expire(pk: int) -> bool:
        booking = Booking.objects.get(pk=pk)
        if booking.status not in EXPIRABLE or booking.expires_at is None or booking.expires_at > timezone.now():
            return False
        try:
            booking_expire(booking=booking, actor=None)
        except GatewayCallInProgress:
            return False  # a payment on it is in flight: its outcome decides, the next run sees it
        return True

    sweep(
        Booking.objects.filter(status__in=EXPIRABLE, expires_at__lte=timezone.now()),
        expire,
        counts=counts,
        done="expired",
        atomic=False,
    )
    return counts
