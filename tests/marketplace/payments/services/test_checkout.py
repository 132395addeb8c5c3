"""Booking transitions that move money (marketplace/payments/services/checkout.py): authorise,
accept (capture), decline and expire (void), cancel (void or refund by policy, provider or operator),
and the failures that must leave every row as it was. Amounts are checked to the cent.

Booking 123.45 EUR at 15% commission: the platform fee is 18.52, the provider's share 104.93.
"""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from marketplace.audit.models import Event
from marketplace.audit.selectors import event_list_for_object
from marketplace.bookings.models import Booking
from marketplace.core.exceptions import InvalidInput, NotPermitted, PaymentFailed
from marketplace.ledger.models import LedgerEntry, LedgerTransaction
from marketplace.ledger.selectors import ledger_balance
from marketplace.payments.models import Payment, Refund
from marketplace.payments.services import (
    booking_accept,
    booking_authorize,
    booking_cancel,
    booking_cancellation_refund,
    booking_decline,
)
from marketplace.payouts.reconciliation import ledger_reconcile
from tests.factories import PartnerFactory, PaymentMethodFactory
from tests.factories.states import booking_at, operator_with

pytestmark = pytest.mark.django_db

S = Booking.Status
P = Payment.Status
A = LedgerEntry.Account
PRICE = Decimal("123.45")
FEE = Decimal("18.52")


def _booking(status: str, *, starts_in: timedelta = timedelta(days=7)) -> Booking:
    """A 123.45 EUR booking (15% commission) in `status`, starting `starts_in` from now."""
    return booking_at(status, listing__price=PRICE, starts_at=timezone.now() + starts_in)


def _snapshot(booking: Booking) -> dict:
    """Every row a refused money workflow must leave as it was."""
    row = Booking.objects.get(pk=booking.pk)
    return {
        "booking": (row.status, row.updated_at, row.expires_at, row.cancellation_reason),
        "payments": list(Payment.objects.values_list("pk", "status", "captured_amount", "refunded_amount")),
        "refunds": Refund.objects.count(),
        "ledger": (LedgerTransaction.objects.count(), LedgerEntry.objects.count()),
        "events": Event.objects.count(),
    }


def _balances(booking: Booking) -> tuple[Decimal, Decimal, Decimal]:
    """(cash, provider payable of the booking's partner, platform revenue), signed as the ledger keeps them."""
    return (
        ledger_balance(account=A.CASH),
        ledger_balance(account=A.PROVIDER_PAYABLE, partner_id=booking.partner_id),
        ledger_balance(account=A.PLATFORM_REVENUE),
    )


def _cancel_event(booking: Booking) -> Event:
    return Event.objects.get(verb="booking.cancel", target_id=str(booking.pk))


# --- Authorise and capture ---------------------------------------------------------------------


def test_booking_authorize_holds_the_amount_without_posting():
    # given
    booking = _booking(S.PENDING_PAYMENT)
    method = PaymentMethodFactory(user=booking.client)
    # when
    booking_authorize(booking=booking, actor=booking.client, method=method)
    # then a payment is authorised for the booking's amount; no money moved yet
    payment = Payment.objects.get(booking=booking)
    assert (payment.status, payment.amount, payment.captured_amount, payment.currency) == (
        P.AUTHORIZED,
        PRICE,
        Decimal("0.00"),
        "EUR",
    )
    assert payment.method == method and payment.gateway_reference.startswith("sbx_aut_")
    assert LedgerEntry.objects.count() == 0
    event = event_list_for_object(obj=payment).get()
    assert (event.verb, event.to_state, event.data["amount"]) == ("payment.authorized", P.AUTHORIZED, "123.45")


def test_booking_accept_captures_and_posts_capture_and_fee():
    # given
    booking = _booking(S.AUTHORIZED)
    # when
    booking_accept(booking=booking, actor=booking.provider)
    # then the payment is captured in full, the fee goes to the platform, the rest is owed to the provider
    payment = Payment.objects.get(booking=booking)
    assert (payment.status, payment.captured_amount, payment.refunded_amount) == (P.CAPTURED, PRICE, Decimal("0.00"))
    assert _balances(booking) == (PRICE, -(PRICE - FEE), -FEE)
    assert sorted(LedgerTransaction.objects.values_list("kind", flat=True)) == ["capture", "platform_fee"]
    assert ledger_reconcile().balanced
    captured = event_list_for_object(obj=payment).filter(verb="payment.captured").get()
    assert (captured.from_state, captured.to_state, captured.data["amount"]) == (P.AUTHORIZED, P.CAPTURED, "123.45")


def test_booking_accept_by_operator_captures():
    # given
    booking = _booking(S.AUTHORIZED)
    operator = operator_with("operate_booking")
    # when
    booking_accept(booking=booking, actor=operator)
    # then
    booking.refresh_from_db()
    assert booking.status == S.ACCEPTED
    assert Payment.objects.get(booking=booking).status == P.CAPTURED


# --- Decline ------------------------------------------------------------------------------------


def test_booking_decline_of_authorized_booking_voids_the_payment():
    # given
    booking = _booking(S.AUTHORIZED)
    # when
    booking_decline(booking=booking, actor=booking.provider, reason="Fully booked.")
    # then the authorisation is released; nothing was captured, nothing posted
    booking.refresh_from_db()
    assert (booking.status, booking.expires_at) == (S.DECLINED, None)
    payment = Payment.objects.get(booking=booking)
    assert (payment.status, payment.captured_amount) == (P.VOIDED, Decimal("0.00"))
    assert LedgerEntry.objects.count() == 0 and Refund.objects.count() == 0
    voided = event_list_for_object(obj=payment).filter(verb="payment.voided").get()
    assert (voided.from_state, voided.to_state, voided.reason) == (P.AUTHORIZED, P.VOIDED, "Fully booked.")
    declined = event_list_for_object(obj=booking).first()
    assert (declined.verb, declined.from_state, declined.to_state, declined.reason) == (
        "booking.decline",
        S.AUTHORIZED,
        S.DECLINED,
        "Fully booked.",
    )


# --- Cancel -------------------------------------------------------------------------------------


def test_booking_cancel_before_capture_voids_the_authorisation():
    # given an authorised, not yet accepted booking
    booking = _booking(S.AUTHORIZED)
    # when the client cancels
    booking_cancel(booking=booking, actor=booking.client, reason="Plans changed.")
    # then the authorisation is voided and nothing is refunded or posted
    booking.refresh_from_db()
    assert (booking.status, booking.cancellation_reason) == (S.CANCELLED, "Plans changed.")
    assert Payment.objects.get(booking=booking).status == P.VOIDED
    assert Refund.objects.count() == 0 and LedgerEntry.objects.count() == 0
    event = _cancel_event(booking)
    assert (event.from_state, event.to_state, event.data) == (S.AUTHORIZED, S.CANCELLED, {"refund": "0.00"})


@pytest.mark.parametrize("state", [S.REQUESTED, S.PENDING_PAYMENT])
def test_booking_cancel_before_payment_moves_no_money(state):
    # given
    booking = _booking(state)
    # when
    booking_cancel(booking=booking, actor=booking.client, reason="Found someone else.")
    # then
    booking.refresh_from_db()
    assert booking.status == S.CANCELLED
    assert Payment.objects.count() == 0 and Refund.objects.count() == 0 and LedgerEntry.objects.count() == 0
    assert _cancel_event(booking).data == {"refund": "0.00"}


def test_booking_cancel_by_client_before_cutoff_refunds_in_full():
    # given an accepted booking starting in a week (the cut-off is 48 hours before the start)
    booking = _booking(S.ACCEPTED, starts_in=timedelta(days=7))
    # when
    booking_cancel(booking=booking, actor=booking.client, reason="Plans changed.")
    # then everything comes back: the provider's share and the platform's fee
    refund = Refund.objects.get(payment__booking=booking)
    assert (refund.amount, refund.provider_share, refund.platform_share) == (PRICE, PRICE - FEE, FEE)
    assert refund.idempotency_key == f"cancel:booking:{booking.pk}"
    payment = Payment.objects.get(booking=booking)
    assert (payment.status, payment.refunded_amount) == (P.REFUNDED, PRICE)
    assert _balances(booking) == (Decimal("0.00"), Decimal("0.00"), Decimal("0.00"))
    assert ledger_reconcile().balanced
    event = _cancel_event(booking)
    assert (event.from_state, event.to_state, event.reason, event.data) == (
        S.ACCEPTED,
        S.CANCELLED,
        "Plans changed.",
        {"refund": "123.45"},
    )


def test_booking_cancel_by_client_after_cutoff_refunds_the_late_rate(settings):
    # given an accepted booking starting in 24 hours, past the 48-hour cut-off; the late rate is 50%
    assert Decimal("0.50") == settings.MARKETPLACE_CANCEL_LATE_REFUND_RATE
    booking = _booking(S.ACCEPTED, starts_in=timedelta(hours=24))
    # when
    booking_cancel(booking=booking, actor=booking.client, reason="Plans changed.")
    # then half of 123.45 (61.725) rounds half up to 61.73, split in proportion to the fee
    refund = Refund.objects.get(payment__booking=booking)
    assert (refund.amount, refund.platform_share, refund.provider_share) == (
        Decimal("61.73"),
        Decimal("9.26"),
        Decimal("52.47"),
    )
    payment = Payment.objects.get(booking=booking)
    assert (payment.status, payment.refunded_amount) == (P.PARTIALLY_REFUNDED, Decimal("61.73"))
    assert _balances(booking) == (Decimal("61.72"), Decimal("-52.46"), Decimal("-9.26"))
    assert ledger_reconcile().balanced
    assert _cancel_event(booking).data == {"refund": "61.73"}


def test_booking_cancel_late_rate_follows_the_setting(settings):
    # given a late cancellation with a 20% late refund rate
    settings.MARKETPLACE_CANCEL_LATE_REFUND_RATE = Decimal("0.20")
    booking = _booking(S.ACCEPTED, starts_in=timedelta(hours=3))
    # when
    booking_cancel(booking=booking, actor=booking.client, reason="Ill.")
    # then 20% of 123.45 = 24.69
    assert Refund.objects.get(payment__booking=booking).amount == Decimal("24.69")


def test_booking_cancellation_refund_cutoff_is_inclusive(settings):
    # given an accepted booking and the policy's cut-off instant
    booking = _booking(S.ACCEPTED, starts_in=timedelta(days=7))
    cutoff = booking.starts_at - timedelta(hours=settings.MARKETPLACE_CANCEL_FULL_REFUND_HOURS)
    # when / then: at the cut-off the refund is full, a second later it is the late share
    assert booking_cancellation_refund(booking=booking, now=cutoff) == PRICE
    assert booking_cancellation_refund(booking=booking, now=cutoff + timedelta(seconds=1)) == Decimal("61.73")


def test_booking_cancel_by_provider_after_cutoff_refunds_in_full():
    # given a booking starting in 2 hours
    booking = _booking(S.ACCEPTED, starts_in=timedelta(hours=2))
    # when the provider cancels
    booking_cancel(booking=booking, actor=booking.provider, reason="Van broke down.")
    # then the client gets everything back whatever the timing
    refund = Refund.objects.get(payment__booking=booking)
    assert (refund.amount, refund.provider_share, refund.platform_share) == (PRICE, PRICE - FEE, FEE)
    assert Payment.objects.get(booking=booking).status == P.REFUNDED
    assert ledger_reconcile().balanced


def test_booking_cancel_by_operator_refunds_the_chosen_amount():
    # given
    booking = _booking(S.ACCEPTED, starts_in=timedelta(hours=2))
    operator = operator_with("operate_booking")
    # when the operator settles on 40.00
    booking_cancel(booking=booking, actor=operator, reason="Goodwill.", refund_amount=Decimal("40.00"))
    # then 40.00 is refunded: 6.00 of fee (40 x 18.52 / 123.45 = 6.0008), 34.00 of the provider's share
    refund = Refund.objects.get(payment__booking=booking)
    assert (refund.amount, refund.platform_share, refund.provider_share, refund.created_by) == (
        Decimal("40.00"),
        Decimal("6.00"),
        Decimal("34.00"),
        operator,
    )
    assert Payment.objects.get(booking=booking).status == P.PARTIALLY_REFUNDED
    assert _cancel_event(booking).data == {"refund": "40.00"}
    assert ledger_reconcile().balanced


def test_booking_cancel_by_operator_audits_the_refund_to_the_cent():
    # given
    booking = _booking(S.ACCEPTED)
    # when the operator types the amount without cents
    booking_cancel(booking=booking, actor=operator_with("operate_booking"), reason="Goodwill.", refund_amount=40)
    # then the refund and the audit trail both say 40.00
    assert Refund.objects.get(payment__booking=booking).amount == Decimal("40.00")
    assert _cancel_event(booking).data == {"refund": "40.00"}


def test_booking_cancel_by_operator_with_zero_refund_keeps_the_money():
    # given
    booking = _booking(S.ACCEPTED)
    # when
    booking_cancel(booking=booking, actor=operator_with("operate_booking"), reason="No-show.", refund_amount=0)
    # then
    booking.refresh_from_db()
    assert booking.status == S.CANCELLED
    assert Refund.objects.count() == 0
    assert Payment.objects.get(booking=booking).status == P.CAPTURED


def test_booking_cancel_refund_more_than_paid_is_refused():
    # given
    booking = _booking(S.ACCEPTED)
    before = _snapshot(booking)
    # when the operator asks for a cent more than was captured
    with pytest.raises(InvalidInput) as raised:
        booking_cancel(
            booking=booking, actor=operator_with("operate_booking"), reason="Goodwill.", refund_amount=Decimal("123.46")
        )
    # then nothing is cancelled, refunded or posted
    payment = Payment.objects.get(booking=booking)
    assert str(raised.value) == (
        f"A refund of 123.46 EUR exceeds the 123.45 EUR left to refund on payment #{payment.pk}."
    )
    assert _snapshot(booking) == before


def test_booking_cancel_negative_refund_is_refused():
    # given
    booking = _booking(S.ACCEPTED)
    before = _snapshot(booking)
    # when an operator enters a negative refund
    with pytest.raises(InvalidInput):
        booking_cancel(
            booking=booking, actor=operator_with("operate_booking"), reason="Typo.", refund_amount=Decimal("-10.00")
        )
    # then the booking is not cancelled with a negative refund on its audit trail
    assert _snapshot(booking) == before


def test_booking_cancel_operator_amount_before_capture_refunds_nothing():
    # given an authorised (not captured) booking
    booking = _booking(S.AUTHORIZED)
    # when an operator cancels it with a refund amount
    booking_cancel(
        booking=booking, actor=operator_with("operate_booking"), reason="Duplicate.", refund_amount=Decimal("50.00")
    )
    # then the authorisation is voided, nothing is refunded, and the audit trail says so
    assert Payment.objects.get(booking=booking).status == P.VOIDED
    assert Refund.objects.count() == 0
    assert _cancel_event(booking).data == {"refund": "0.00"}


@pytest.mark.parametrize("who", ["client", "provider"])
def test_booking_cancel_refund_amount_chosen_by_a_party_is_refused(who):
    # given
    booking = _booking(S.ACCEPTED)
    before = _snapshot(booking)
    # when
    with pytest.raises(NotPermitted) as raised:
        booking_cancel(
            booking=booking, actor=getattr(booking, who), reason="Plans changed.", refund_amount=Decimal("123.45")
        )
    # then
    assert str(raised.value) == "Only an operator can choose the refund amount."
    assert _snapshot(booking) == before


@pytest.mark.parametrize("reason", ["", "   ", None])
def test_booking_cancel_without_reason_is_refused(reason):
    # given
    booking = _booking(S.ACCEPTED)
    before = _snapshot(booking)
    # when
    with pytest.raises(InvalidInput) as raised:
        booking_cancel(booking=booking, actor=booking.client, reason=reason)
    # then
    assert str(raised.value) == "A reason is required to cancel a booking."
    assert _snapshot(booking) == before


# --- Failures leave no row changed --------------------------------------------------------------


def test_booking_authorize_declined_card_writes_nothing():
    # given a client paying with a card the gateway declines
    booking = _booking(S.PENDING_PAYMENT)
    method = PaymentMethodFactory(user=booking.client, gateway_token="tok_decline")
    before = _snapshot(booking)
    # when
    with pytest.raises(PaymentFailed) as raised:
        booking_authorize(booking=booking, actor=booking.client, method=method)
    # then
    assert str(raised.value) == f"The payment for booking #{booking.pk} was declined: sandbox: authorize declined"
    assert _snapshot(booking) == before
    assert Payment.objects.filter(booking=booking).count() == 0


def test_booking_authorize_gateway_failure_writes_nothing_and_a_retry_succeeds(sandbox_gateway):
    # given
    booking = _booking(S.PENDING_PAYMENT)
    method = PaymentMethodFactory(user=booking.client)
    before = _snapshot(booking)
    sandbox_gateway.fail_next("authorize")
    # when
    with pytest.raises(PaymentFailed, match="injected authorize failure"):
        booking_authorize(booking=booking, actor=booking.client, method=method)
    # then nothing was written, and paying again works
    assert _snapshot(booking) == before
    booking_authorize(booking=booking, actor=booking.client, method=method)
    booking.refresh_from_db()
    assert booking.status == S.AUTHORIZED


def test_booking_accept_capture_failure_writes_nothing_and_a_retry_captures_once(sandbox_gateway):
    # given an authorised booking and a gateway that fails the next capture
    booking = _booking(S.AUTHORIZED)
    payment = Payment.objects.get(booking=booking)
    before = _snapshot(booking)
    sandbox_gateway.fail_next("capture")

    # when
    with pytest.raises(PaymentFailed) as raised:
        booking_accept(booking=booking, actor=booking.provider)

    # then no row changed: the booking still waits, the payment is still only authorised, no ledger rows
    assert str(raised.value) == (
        f"The gateway refused to capture payment #{payment.pk}: sandbox: injected capture failure"
    )
    assert _snapshot(booking) == before

    # and accepting again captures, once
    booking_accept(booking=booking, actor=booking.provider)
    assert Payment.objects.get(pk=payment.pk).status == P.CAPTURED
    assert LedgerTransaction.objects.filter(kind="capture").count() == 1
    assert _balances(booking) == (PRICE, -(PRICE - FEE), -FEE)


def test_booking_decline_void_failure_writes_nothing(sandbox_gateway):
    # given
    booking = _booking(S.AUTHORIZED)
    before = _snapshot(booking)
    sandbox_gateway.fail_next("void")
    # when
    with pytest.raises(PaymentFailed, match="injected void failure"):
        booking_decline(booking=booking, actor=booking.provider, reason="Fully booked.")
    # then
    assert _snapshot(booking) == before


def test_booking_cancel_refund_failure_writes_nothing_and_a_retry_refunds_once(sandbox_gateway):
    # given
    booking = _booking(S.ACCEPTED)
    before = _snapshot(booking)
    sandbox_gateway.fail_next("refund")
    # when
    with pytest.raises(PaymentFailed, match="injected refund failure"):
        booking_cancel(booking=booking, actor=booking.client, reason="Plans changed.")
    # then
    assert _snapshot(booking) == before
    booking_cancel(booking=booking, actor=booking.client, reason="Plans changed.")
    assert Refund.objects.filter(payment__booking=booking).count() == 1
    assert LedgerTransaction.objects.filter(kind="refund").count() == 1
    assert ledger_reconcile().balanced


def test_booking_cancel_refund_amount_chosen_by_an_operator_of_another_partner_is_refused():
    # given a captured booking and an operator granted another partner only
    booking = _booking(S.ACCEPTED)
    operator = operator_with("operate_booking", scope=PartnerFactory())
    before = _snapshot(booking)
    # when they cancel it with a refund of their choosing
    with pytest.raises(NotPermitted) as raised:
        booking_cancel(booking=booking, actor=operator, reason="Goodwill.", refund_amount=Decimal("40.00"))
    # then it is refused: no money moved, nothing was written
    assert str(raised.value) == f"You cannot cancel booking #{booking.pk}."
    assert _snapshot(booking) == before
