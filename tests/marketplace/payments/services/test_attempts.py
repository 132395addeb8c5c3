"""Issue 9: an authorisation's idempotency key names one attempt (booking, payment method, attempt
number), so a declined card does not block the booking: a second card, or the same one again, is a
new attempt with a new key and pays."""

import pytest

from marketplace.bookings.models import Booking
from marketplace.core.exceptions import PaymentFailed
from marketplace.payments.models import Payment
from marketplace.payments.services import booking_authorize
from tests.factories import PaymentMethodFactory
from tests.factories.states import booking_at

pytestmark = pytest.mark.django_db

S = Booking.Status


def _authorize_keys(gateway) -> list[str]:
    return [key for operation, key in gateway.calls if operation == "authorize"]


def test_booking_authorize_declined_card_then_good_card_pays(sandbox_gateway):
    # given a booking waiting for payment, a card the gateway declines and a good one
    booking = booking_at(S.PENDING_PAYMENT)
    declined = PaymentMethodFactory(user=booking.client, gateway_token="tok_decline", is_default=False)
    good = PaymentMethodFactory(user=booking.client, is_default=False)

    # when the client pays with the declined card
    with pytest.raises(PaymentFailed, match="declined"):
        booking_authorize(booking=booking, actor=booking.client, method=declined)

    # then the booking still waits for payment
    booking.refresh_from_db()
    assert booking.status == S.PENDING_PAYMENT
    assert not Payment.objects.filter(booking=booking).exists()

    # and when they pay with the good card, it is authorised
    booking_authorize(booking=booking, actor=booking.client, method=good)
    booking.refresh_from_db()
    assert booking.status == S.AUTHORIZED
    payment = Payment.objects.get(booking=booking)
    assert (payment.method_id, payment.amount) == (good.pk, booking.amount)
    # each attempt went to the gateway under its own key
    first, second = _authorize_keys(sandbox_gateway)
    assert first != second


def test_booking_authorize_same_card_again_after_a_decline_is_a_new_attempt(sandbox_gateway):
    # given a booking whose first authorisation the gateway refused (a card that is fine now)
    booking = booking_at(S.PENDING_PAYMENT)
    method = PaymentMethodFactory(user=booking.client, is_default=False)
    sandbox_gateway.fail_next("authorize")
    with pytest.raises(PaymentFailed):
        booking_authorize(booking=booking, actor=booking.client, method=method)

    # when the client tries the same card again
    booking_authorize(booking=booking, actor=booking.client, method=method)

    # then it pays, asked under a new key
    booking.refresh_from_db()
    assert booking.status == S.AUTHORIZED
    first, second = _authorize_keys(sandbox_gateway)
    assert first != second
