"""Payments: the gateway calls and the booking workflows that move money.

`calls.py` records each gateway call before it is made and its outcome after, outside any
transaction; `payments.py` holds the payment itself (authorise, capture, void, refund), each as an
intent half and a recording half; `checkout.py` holds the booking transitions that need them,
because the higher app owns a workflow that spans layers.
"""

from marketplace.payments.services.calls import (  # noqa: F401
    GatewayCallInProgress,
    GatewayCallUnanswered,
    gateway_call_open,
    gateway_call_run,
    gateway_calls_resume,
)
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
    payment_refund_open,
    payment_refund_record,
    payment_void,
)
