"""Payments: the gateway calls and the booking workflows that move money.

`payments.py` holds the payment itself (authorise, capture, void, refund); `checkout.py` holds the
booking transitions that need them, because the higher app owns a workflow that spans layers.
"""

from marketplace.payments.services.checkout import (  # noqa: F401
    booking_accept,
    booking_authorize,
    booking_cancel,
    booking_cancellation_refund,
    booking_decline,
    booking_expire,
)
from marketplace.payments.services.payments import (  # noqa: F401
    payment_capture,
    payment_method_add,
    payment_refund,
    payment_void,
)
