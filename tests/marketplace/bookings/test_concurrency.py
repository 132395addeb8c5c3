"""Booking transitions fired twice at once from two database connections: exactly one wins, the
other gets TransitionNotAllowed, and money moves once (STYLE.md, Tests). Two different transitions
fired at once end as their serial order, never as a mix of both.

Each race is run with `run_overlapping`: the second call is seen waiting on the booking's row lock
(pg_stat_activity) while the first still holds it, so the two transactions really overlapped."""

from decimal import Decimal

import pytest

from marketplace.audit.models import Event
from marketplace.bookings.models import Booking
from marketplace.bookings.services import booking_complete
from marketplace.core.exceptions import TransitionNotAllowed
from marketplace.ledger.models import LedgerTransaction
from marketplace.payments.models import Payment, Refund
from marketplace.payments.services import booking_accept, booking_cancel, booking_decline
from marketplace.payouts.reconciliation import ledger_reconcile
from tests.concurrency import run_overlapping
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

    # when the provider's second click arrives while the first accept still holds the booking
    overlap = run_overlapping(
        lambda: booking_accept(booking=booking, actor=provider),
        lambda: booking_accept(booking=booking, actor=provider),
    )

    # then the second was seen waiting on the booking's row lock before the first committed
    assert overlap.wait.waiting_for == ("Lock", "SELECT", "bookings_booking")
    # and the first accepts, the second is told the booking is already accepted
    winner, loser = overlap.one_winner()
    assert (winner.index, loser.index) == (0, 1)
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

    # when the client's cancellation is sent twice, overlapping
    overlap = run_overlapping(
        lambda: booking_cancel(booking=booking, actor=client, reason="Plans changed."),
        lambda: booking_cancel(booking=booking, actor=client, reason="Plans changed."),
    )

    # then the second waited on the booking's lock, and is refused once the first has cancelled
    assert overlap.wait.waiting_for == ("Lock", "SELECT", "bookings_booking")
    winner, loser = overlap.one_winner()
    assert (winner.index, loser.index) == (0, 1)
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

    # when the completion timer fires while the provider's completion still holds the booking
    overlap = run_overlapping(
        lambda: booking_complete(booking=booking, actor=provider),
        lambda: booking_complete(booking=booking, actor=None),
    )

    # then
    assert overlap.wait.waiting_for == ("Lock", "SELECT", "bookings_booking")
    winner, loser = overlap.one_winner()
    assert (winner.index, loser.index) == (0, 1)
    assert isinstance(loser.error, TransitionNotAllowed)
    assert str(loser.error) == f"Booking #{booking.pk} is 'completed': cannot complete."
    booking.refresh_from_db()
    assert booking.status == S.COMPLETED
    assert _events(booking, "booking.complete") == 1
    assert Event.objects.get(verb="booking.complete", target_id=str(booking.pk)).actor_id == provider.pk


def test_booking_decline_twice_at_once_voids_once(sandbox_gateway):
    # given
    booking = booking_at(S.AUTHORIZED)
    provider = booking.provider

    # when
    overlap = run_overlapping(
        lambda: booking_decline(booking=booking, actor=provider, reason="Fully booked."),
        lambda: booking_decline(booking=booking, actor=provider, reason="Fully booked."),
    )

    # then
    assert overlap.wait.waiting_for == ("Lock", "SELECT", "bookings_booking")
    winner, loser = overlap.one_winner()
    assert (winner.index, loser.index) == (0, 1)
    assert isinstance(loser.error, TransitionNotAllowed)
    assert str(loser.error) == f"Booking #{booking.pk} is 'declined': cannot decline."
    booking.refresh_from_db()
    assert booking.status == S.DECLINED
    assert Payment.objects.get(booking=booking).status == P.VOIDED
    assert _gateway_calls(sandbox_gateway, "void") == 1
    assert _ledger_kinds() == []
    assert _events(booking, "booking.decline") == 1


def test_booking_accept_then_decline_overlapping_accepts_and_captures(sandbox_gateway):
    # given
    booking = booking_at(S.AUTHORIZED)
    provider = booking.provider

    # when the provider accepts in one tab and, while that holds the booking, declines in another
    overlap = run_overlapping(
        lambda: booking_accept(booking=booking, actor=provider),
        lambda: booking_decline(booking=booking, actor=provider, reason="Changed my mind."),
    )

    # then the decline waited, then found the booking accepted; the payment was captured, never voided
    assert overlap.wait.waiting_for == ("Lock", "SELECT", "bookings_booking")
    winner, loser = overlap.one_winner()
    assert (winner.index, loser.index) == (0, 1)
    assert str(loser.error) == f"Booking #{booking.pk} is 'accepted': cannot decline."
    booking.refresh_from_db()
    payment = Payment.objects.get(booking=booking)
    assert (booking.status, payment.status, _ledger_kinds()) == (S.ACCEPTED, P.CAPTURED, ["capture", "platform_fee"])
    assert (_gateway_calls(sandbox_gateway, "capture"), _gateway_calls(sandbox_gateway, "void")) == (1, 0)


def test_booking_decline_then_accept_overlapping_declines_and_voids(sandbox_gateway):
    # given
    booking = booking_at(S.AUTHORIZED)
    provider = booking.provider

    # when the provider declines in one tab and, while that holds the booking, accepts in another
    overlap = run_overlapping(
        lambda: booking_decline(booking=booking, actor=provider, reason="Changed my mind."),
        lambda: booking_accept(booking=booking, actor=provider),
    )

    # then the accept waited, then found the booking declined; nothing was captured
    assert overlap.wait.waiting_for == ("Lock", "SELECT", "bookings_booking")
    winner, loser = overlap.one_winner()
    assert (winner.index, loser.index) == (0, 1)
    assert str(loser.error) == f"Booking #{booking.pk} is 'declined': cannot accept."
    booking.refresh_from_db()
    payment = Payment.objects.get(booking=booking)
    assert (booking.status, payment.status, _ledger_kinds()) == (S.DECLINED, P.VOIDED, [])
    assert (_gateway_calls(sandbox_gateway, "capture"), _gateway_calls(sandbox_gateway, "void")) == (0, 1)


def test_booking_accept_then_cancel_overlapping_captures_then_refunds_in_full(sandbox_gateway):
    # given an authorised booking starting in a week (a cancellation then refunds in full)
    booking = booking_at(S.AUTHORIZED, listing__price=Decimal("80.00"))
    provider, client = booking.provider, booking.client

    # when the client cancels while the provider's accept holds the booking
    overlap = run_overlapping(
        lambda: booking_accept(booking=booking, actor=provider),
        lambda: booking_cancel(booking=booking, actor=client, reason="Found someone else."),
    )

    # then the cancellation waited, then cancelled an accepted booking: captured once, refunded once in full
    assert overlap.wait.waiting_for == ("Lock", "SELECT", "bookings_booking")
    assert overlap.errors == []
    booking.refresh_from_db()
    payment = Payment.objects.get(booking=booking)
    assert booking.status == S.CANCELLED
    assert (payment.status, payment.captured_amount, payment.refunded_amount) == (
        P.REFUNDED,
        Decimal("80.00"),
        Decimal("80.00"),
    )
    assert _ledger_kinds() == ["capture", "platform_fee", "refund"]
    assert list(Refund.objects.values_list("amount", flat=True)) == [Decimal("80.00")]
    assert _gateway_calls(sandbox_gateway, "capture") == 1
    assert ledger_reconcile().balanced


def test_booking_cancel_then_accept_overlapping_voids_and_refuses_the_accept(sandbox_gateway):
    # given an authorised booking
    booking = booking_at(S.AUTHORIZED, listing__price=Decimal("80.00"))
    provider, client = booking.provider, booking.client

    # when the provider accepts while the client's cancellation holds the booking
    overlap = run_overlapping(
        lambda: booking_cancel(booking=booking, actor=client, reason="Found someone else."),
        lambda: booking_accept(booking=booking, actor=provider),
    )

    # then the accept waited, then was refused: the authorisation is voided, nothing captured or refunded
    assert overlap.wait.waiting_for == ("Lock", "SELECT", "bookings_booking")
    winner, loser = overlap.one_winner()
    assert (winner.index, loser.index) == (0, 1)
    assert isinstance(loser.error, TransitionNotAllowed)
    assert str(loser.error) == f"Booking #{booking.pk} is 'cancelled': cannot accept."
    booking.refresh_from_db()
    payment = Payment.objects.get(booking=booking)
    assert (booking.status, payment.status, _ledger_kinds(), Refund.objects.count()) == (S.CANCELLED, P.VOIDED, [], 0)
    assert _gateway_calls(sandbox_gateway, "capture") == 0
    assert ledger_reconcile().balanced
