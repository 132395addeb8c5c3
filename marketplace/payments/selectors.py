"""Payment reads. Refund requests follow their booking's scope (`booking_for_user`)."""

from marketplace.bookings.selectors import booking_for_user
from marketplace.partners.selectors import can_operate
from marketplace.payments.models import RefundRequest


def refund_request_for_user(user):
    """Refund requests on the bookings in the user's scope."""
    if not can_operate(user):
        return RefundRequest.objects.none()
    return RefundRequest.objects.filter(payment__booking__in=booking_for_user(user).values("pk"))
