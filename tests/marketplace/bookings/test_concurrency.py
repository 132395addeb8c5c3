"""Booking transitions fired twice at once from two database connections: exactly one wins, the
other gets TransitionNotAllowed, and money moves once (STYLE.md, Tests). Two different transitions
fired at once end as one of their serial orders, never as a mix of both."""

from decimal import Decimal

import pytest

from marketplace.audit.models import Event
from marketplace.bookings.models import Booking
from marketplace.bookings.services import booking_complete
from marketplace.core.exceptions import TransitionNotAllowed
from marketplace.ledger.models import LedgerTransaction
from marketplace.payouts.reconciliation import ledger_reconcile
from marketplace.payments.models import Payment, Refund
from marketplace.payments.services import booking_accept, booking_cancel, booking_decline
from tests.concurrency import run_concurrently, run_twice
from tests.factories.states import booking_at

pytestmark = pytest.mark.django_db(transaction=True)

S = Booking.Status
P = Payment.Status


def _events(booking: Booking, verb: str) -> int:
    return Event.objects.filter(verb=verb, target_id=str(booking.pk)).count()


def _gateway_calls(gateway, operation: str) -> int:
    return sum(1 for op, _ in gateway.calls if op == operation)


def _ledger_kinds() -> list[str]:
    return sorted(LedgerTransaction.objects.values_list("kind", flat=True))


def test_booking_accept_twice_at_once_captures_once(sandbox_gateway):
    # given an authorised booking (the actor is loaded here, not lazily inside the threads)
    booking = booking_at(S.AUTHORIZED, listing__price=Decimal("80.00"))
    provider = booking.provider

    # when the provider's two clicks arrive at the same moment
    outcomes = run_twice(lambda: booking_accept(booking=booking, actor=provider))

    # then one accepts, the other is told the booking is already accepted
    _, loser = outcomes.one_winner()
    assert isinstance(loser.error, TransitionNotAllowed)
    assert str(loser.error) == f"Booking #{booking.pk} is 'accepted': cannot accept."
    booking.refresh_from_db()
    assert booking.status == S.ACCEPTED
    # and the money was captured once: one gateway capture, one capture and one fee posting
    payment = Payment.objects.get(booking=booking)
    assert (payment.status, payment.captured_amount) == (P.CAPTURED, Decimal("80.00"))
    assert _gateway_calls(sandbox_gateway, "capture") == 1
    assert _ledger_kinds() == ["capture", "platform_fee"]
    assert _events(booking, "booking.accept") == 1
    assert Event.objects.filter(verb="payment.captured").count() == 1
    assert ledger_reconcile().balanced


def test_booking_cancel_twice_at_once_refunds_once(sandbox_gateway):
    # given an accepted (captured) booking starting in a week: a full refund
    booking = booking_at(S.ACCEPTED, listing__price=Decimal("80.00"))
    client = booking.client

    # when the client's cancellation is sent twice at once
    outcomes = run_twice(lambda: booking_cancel(booking=booking, actor=client, reason="Plans changed."))

    # then
    _, loser = outcomes.one_winner()
    assert isinstance(loser.error, TransitionNotAllowed)
    assert str(loser.error) == f"Booking #{booking.pk} is 'cancelled': cannot cancel."
    booking.refresh_from_db()
    assert booking.status == S.CANCELLED
    # and exactly one refund of 80.00 went out and was posted
    assert list(Refund.objects.values_list("amount", flat=True)) == [Decimal("80.00")]
    assert _gateway_calls(sandbox_gateway, "refund") == 1
    assert _ledger_kinds() == ["capture", "platform_fee", "refund"]
    payment = Payment.objects.get(booking=booking)
    assert (payment.status, payment.refunded_amount) == (P.REFUNDED, Decimal("80.00"))
    assert _events(booking, "booking.cancel") == 1
    assert ledger_reconcile().balanced


def test_booking_complete_twice_at_once_completes_once():
    # given a booking in progress
    booking = booking_at(S.IN_PROGRESS)
    provider = booking.provider

    # when the provider and the completion timer fire together
    outcomes = run_concurrently(
        lambda: booking_complete(booking=booking, actor=provider),
        lambda: booking_complete(booking=booking, actor=None),
    )

    # then
    _, loser = outcomes.one_winner()
    assert isinstance(loser.error, TransitionNotAllowed)
    assert str(loser.error) == f"Booking #{booking.pk} is 'completed': cannot complete."
    booking.refresh_from_db()
    assert booking.status == S.COMPLETED
    assert _events(booking, "booking.complete") == 1


def test_booking_decline_twice_at_once_voids_once(sandbox_gateway):
    # given
    booking = booking_at(S.AUTHORIZED)
    provider = booking.provider

    # when
    outcomes = run_twice(lambda: booking_decline(booking=booking, actor=provider, reason="Fully booked."))

    # then
    _, loser = outcomes.one_winner()
    assert isinstance(loser.error, TransitionNotAllowed)
    assert str(loser.error) == f"Booking #{booking.pk} is 'declined': cannot decline."
    booking.refresh_from_db()
    assert booking.status == S.DECLINED
    assert Payment.objects.get(booking=booking).status == P.VOIDED
    assert _gateway_calls(sandbox_gateway, "void") == 1
    assert _ledger_kinds() == []
    assert _events(booking, "booking.decline") == 1


def test_booking_accept_and_decline_at_once_one_wins_and_money_agrees(sandbox_gateway):
    # given
    booking = booking_at(S.AUTHORIZED)
    provider = booking.provider

    # when the provider accepts in one tab and declines in another
    outcomes = run_concurrently(
        lambda: booking_accept(booking=booking, actor=provider),
        lambda: booking_decline(booking=booking, actor=provider, reason="Changed my mind."),
    )

    # then exactly one happened, and the payment matches whichever it was
    winner, loser = outcomes.one_winner()
    assert isinstance(loser.error, TransitionNotAllowed)
    booking.refresh_from_db()
    payment = Payment.objects.get(booking=booking)
    if winner.index == 0:
        assert (booking.status, payment.status, _ledger_kinds()) == (
            S.ACCEPTED,
            P.CAPTURED,
            ["capture", "platform_fee"],
        )
    else:
        assert (booking.status, payment.status, _ledger_kinds()) == (S.DECLINED, P.VOIDED, [])
    assert _gateway_calls(sandbox_gateway, "capture") + _gateway_calls(sandbox_gateway, "void") == 1


def test_booking_accept_and_cancel_at_once_end_as_one_serial_order(sandbox_gateway):
    # given an authorised booking starting in a week (a cancellation then refunds in full)
    booking = booking_at(S.AUTHORIZED, listing__price=Decimal("80.00"))
    provider, client = booking.provider, booking.client

    # when the provider accepts while the client cancels
    outcomes = run_concurrently(
        lambda: booking_accept(booking=booking, actor=provider),
        lambda: booking_cancel(booking=booking, actor=client, reason="Found someone else."),
    )

    # then the result is one of the two serial orders, never a mix:
    booking.refresh_from_db()
    payment = Payment.objects.get(booking=booking)
    assert booking.status == S.CANCELLED
    if outcomes[0].ok:
        # accept first, then the cancellation of an accepted booking: captured once, refunded once in full
        assert outcomes[1].ok
        assert (payment.status, payment.captured_amount, payment.refunded_amount) == (
            P.REFUNDED,
            Decimal("80.00"),
            Decimal("80.00"),
        )
        assert _ledger_kinds() == ["capture", "platform_fee", "refund"]
        assert Refund.objects.count() == 1
    else:
        # cancel first: the authorisation is voided and the late accept is refused
        assert isinstance(outcomes[0].error, TransitionNotAllowed)
        assert str(outcomes[0].error) == f"Booking #{booking.pk} is 'cancelled': cannot accept."
        assert (payment.status, _ledger_kinds(), Refund.objects.count()) == (P.VOIDED, [], 0)
    assert _gateway_calls(sandbox_gateway, "capture") <= 1
    assert ledger_reconcile().balanced
