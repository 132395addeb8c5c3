"""Drive real objects through the real services to a given state."""

from datetime import timedelta

from django.utils import timezone

from marketplace.bookings.models import Booking
from marketplace.bookings.services import booking_complete, booking_request_payment, booking_start
from marketplace.payments.services import booking_accept, booking_authorize
from tests.factories import BookingFactory, PaymentMethodFactory, PayoutAccountFactory


def booking_in(status: str, **kwargs) -> Booking:
    """A booking brought to `status` (requested .. completed) through the services, money included."""
    booking = BookingFactory(**kwargs)
    order = ["requested", "pending_payment", "authorized", "accepted", "in_progress", "completed"]
    if status not in order:
        raise ValueError(f"booking_in() reaches {order}, not {status!r}")
    steps = order[1 : order.index(status) + 1]
    client, provider = booking.client, booking.provider
    for step in steps:
        if step == "pending_payment":
            booking = booking_request_payment(booking=booking, actor=client)
        elif step == "authorized":
            method = PaymentMethodFactory(user=client)
            booking = booking_authorize(booking=booking, actor=client, method=method)
        elif step == "accepted":
            booking = booking_accept(booking=booking, actor=provider)
        elif step == "in_progress":
            booking = booking_start(booking=booking, actor=provider)
        elif step == "completed":
            booking = booking_complete(booking=booking, actor=provider)
    return booking


def settled_booking(*, window_open: bool = False, **kwargs) -> Booking:
    """A completed, captured booking whose partner has a payout account and whose hold period is over.

    Its dispute window is over too (so a payout run pays it), unless `window_open`: then it can
    still be disputed (and a run does not pay it yet).
    """
    booking = booking_in("completed", **kwargs)
    if not hasattr(booking.partner, "payout_account"):
        PayoutAccountFactory(partner=booking.partner)
    # Past the payout hold and the dispute window: payable now.
    window_ends = timezone.now() + timedelta(days=1) if window_open else timezone.now() - timedelta(days=16)
    Booking.objects.filter(pk=booking.pk).update(
        completed_at=timezone.now() - timedelta(days=30), dispute_window_ends_at=window_ends
    )
    booking.refresh_from_db()
    return booking
