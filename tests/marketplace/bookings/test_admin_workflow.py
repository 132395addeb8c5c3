"""Booking workflows from the admin: accept, decline, complete, cancel (policy or chosen refund)."""

from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from marketplace.audit.models import Event
from marketplace.bookings.models import Booking
from marketplace.ledger.models import LedgerEntry, LedgerTransaction
from marketplace.payments.models import Payment, Refund
from tests.factories import PartnerFactory
from tests.factories.states import booking_at, operator_with

pytestmark = pytest.mark.django_db
S = Booking.Status


def _operator(partner):
    """An operator of `partner`'s bookings who may open the bookings admin."""
    return operator_with("operate_booking", "view_booking", scope=partner)


def _messages(response) -> list[str]:
    return [str(m) for m in response.context["messages"]] if response.context else []


def _url(step: str, booking: Booking) -> str:
    return reverse(f"admin:bookings_booking_{step}", args=[booking.pk])


def _events(verb: str, booking: Booking) -> int:
    return Event.objects.filter(verb=verb, target_id=str(booking.pk)).count()


def test_accept_captures_the_payment_and_a_double_post_is_told_already(client):
    # given an authorised booking and an operator of its partner
    booking = booking_at(S.AUTHORIZED)
    client.force_login(_operator(booking.partner))

    # when the confirmation page is opened, nothing changes
    page = client.get(_url("accept", booking))
    assert page.status_code == 200
    booking.refresh_from_db()
    assert booking.status == S.AUTHORIZED

    # when it is posted twice
    done = client.post(_url("accept", booking), follow=True)
    again = client.post(_url("accept", booking), follow=True)

    # then the booking is accepted once, its payment captured to the cent
    booking.refresh_from_db()
    payment = Payment.objects.get(booking=booking)
    assert booking.status == S.ACCEPTED
    assert payment.status == Payment.Status.CAPTURED
    assert payment.captured_amount == Decimal("100.00")
    assert LedgerTransaction.objects.filter(kind="capture", booking=booking).count() == 1
    assert f"Booking #{booking.pk} is accepted; the payment is captured." in _messages(done)
    assert f"Booking #{booking.pk} is already accepted; nothing to do." in _messages(again)
    assert _events("booking.accept", booking) == 1


def test_decline_needs_a_reason_and_releases_the_authorisation(client):
    booking = booking_at(S.AUTHORIZED)
    client.force_login(_operator(booking.partner))

    empty = client.post(_url("decline", booking), {"reason": "  "})
    assert empty.status_code == 200  # the form again, with the error
    assert "reason" in empty.context["form"].errors
    booking.refresh_from_db()
    assert booking.status == S.AUTHORIZED

    done = client.post(_url("decline", booking), {"reason": "Provider is ill."}, follow=True)

    booking.refresh_from_db()
    assert booking.status == S.DECLINED
    assert Payment.objects.get(booking=booking).status == Payment.Status.VOIDED
    assert f"Booking #{booking.pk} is declined; any authorisation is released." in _messages(done)
    event = Event.objects.get(verb="booking.decline", target_id=str(booking.pk))
    assert event.reason == "Provider is ill."
    assert event.from_state == S.AUTHORIZED and event.to_state == S.DECLINED


def test_complete_marks_the_work_done(client):
    booking = booking_at(S.IN_PROGRESS)
    operator = _operator(booking.partner)
    client.force_login(operator)

    done = client.post(_url("complete", booking), {"reason": "Confirmed by phone."}, follow=True)
    again = client.post(_url("complete", booking), {"reason": ""}, follow=True)

    booking.refresh_from_db()
    assert booking.status == S.COMPLETED
    assert booking.dispute_window_ends_at is not None
    assert f"Booking #{booking.pk} is completed." in _messages(done)
    assert f"Booking #{booking.pk} is already completed; nothing to do." in _messages(again)
    event = Event.objects.get(verb="booking.complete", target_id=str(booking.pk))
    assert event.actor_id == operator.pk


def test_cancel_shows_the_policy_refund_and_refunds_it(client):
    # given an accepted booking a week away: the policy refunds everything captured
    booking = booking_at(S.ACCEPTED)
    client.force_login(_operator(booking.partner))

    page = client.get(_url("cancel", booking))
    assert "refund: 100.00 EUR" in page.content.decode()

    done = client.post(_url("cancel", booking), {"reason": "Venue closed.", "refund": "policy"}, follow=True)

    booking.refresh_from_db()
    payment = Payment.objects.get(booking=booking)
    assert booking.status == S.CANCELLED
    assert booking.cancellation_reason == "Venue closed."
    assert payment.refunded_amount == Decimal("100.00")
    assert payment.status == Payment.Status.REFUNDED
    assert f"Booking #{booking.pk} is cancelled." in _messages(done)
    assert Event.objects.get(verb="booking.cancel", target_id=str(booking.pk)).data == {"refund": "100.00"}


def test_cancel_with_a_chosen_amount_refunds_it_to_the_cent_with_a_ledger_posting(client):
    booking = booking_at(S.ACCEPTED)
    client.force_login(_operator(booking.partner))

    done = client.post(
        _url("cancel", booking),
        {"reason": "Goodwill: half the job was done.", "refund": "amount", "refund_amount": "40.35"},
        follow=True,
    )
    again = client.post(
        _url("cancel", booking),
        {"reason": "Goodwill: half the job was done.", "refund": "amount", "refund_amount": "40.35"},
        follow=True,
    )

    booking.refresh_from_db()
    payment = Payment.objects.get(booking=booking)
    assert booking.status == S.CANCELLED
    assert payment.refunded_amount == Decimal("40.35")
    assert payment.status == Payment.Status.PARTIALLY_REFUNDED
    refund = Refund.objects.get(payment=payment)
    assert refund.amount == Decimal("40.35")
    assert refund.provider_share + refund.platform_share == Decimal("40.35")
    txn = LedgerTransaction.objects.get(kind="refund", booking=booking)
    assert LedgerEntry.objects.get(transaction=txn, account="cash").amount == Decimal("-40.35")
    assert f"Booking #{booking.pk} is cancelled." in _messages(done)
    assert f"Booking #{booking.pk} is already cancelled; nothing to do." in _messages(again)
    assert _events("booking.cancel", booking) == 1
    assert Refund.objects.filter(payment=payment).count() == 1


def test_cancel_with_more_than_was_paid_shows_the_service_message_and_changes_nothing(client):
    booking = booking_at(S.ACCEPTED)
    client.force_login(_operator(booking.partner))

    response = client.post(
        _url("cancel", booking), {"reason": "Oops.", "refund": "amount", "refund_amount": "100.01"}, follow=True
    )

    booking.refresh_from_db()
    payment = Payment.objects.get(booking=booking)
    assert booking.status == S.ACCEPTED
    assert payment.refunded_amount == Decimal("0.00")
    assert not LedgerTransaction.objects.filter(kind="refund", booking=booking).exists()
    assert any("exceeds the 100.00 EUR left to refund" in m for m in _messages(response))
    assert _events("booking.cancel", booking) == 0


def test_cancel_with_another_amount_but_none_given_is_refused(client):
    booking = booking_at(S.ACCEPTED)
    client.force_login(_operator(booking.partner))

    response = client.post(_url("cancel", booking), {"reason": "Oops.", "refund": "amount"}, follow=True)

    booking.refresh_from_db()
    assert booking.status == S.ACCEPTED
    assert "Enter the refund amount, or choose the policy refund." in _messages(response)


@pytest.mark.parametrize("step", ["accept", "decline", "complete", "cancel"])
def test_a_booking_of_another_partner_is_404(client, step):
    booking = booking_at(S.AUTHORIZED)
    client.force_login(_operator(PartnerFactory()))

    assert client.get(_url(step, booking)).status_code == 404
    assert client.post(_url(step, booking), {"reason": "x", "refund": "policy"}).status_code == 404
    booking.refresh_from_db()
    assert booking.status == S.AUTHORIZED


def test_the_buttons_show_only_to_operators(client):
    booking = booking_at(S.AUTHORIZED)
    viewer = operator_with("view_booking", scope=booking.partner)
    change_url = reverse("admin:bookings_booking_change", args=[booking.pk])

    client.force_login(viewer)
    page = client.get(change_url).content.decode()
    assert all(_url(step, booking) not in page for step in ("accept", "decline", "complete", "cancel"))
    assert client.post(_url("accept", booking)).status_code == 403
    booking.refresh_from_db()
    assert booking.status == S.AUTHORIZED

    # an operator sees the buttons an authorized booking's state allows (it cannot be completed yet)
    client.force_login(_operator(booking.partner))
    page = client.get(change_url).content.decode()
    shown = {step for step in ("accept", "decline", "complete", "cancel") if _url(step, booking) in page}
    assert shown == {"accept", "decline", "cancel"}


def test_the_changelist_shows_state_and_money_in_a_fixed_number_of_queries(client):
    booking = booking_at(S.ACCEPTED)
    client.force_login(_operator(booking.partner))
    url = reverse("admin:bookings_booking_changelist")

    with CaptureQueriesContext(connection) as one:
        page = client.get(url)
    assert "100.00 EUR" in page.content.decode()
    assert "Accepted" in page.content.decode()
    more = [booking_at(S.REQUESTED, listing__partner=booking.partner) for _ in range(3)]
    with CaptureQueriesContext(connection) as four:
        page = client.get(url)

    assert all(reverse("admin:bookings_booking_change", args=[b.pk]) in page.content.decode() for b in more)
    assert len(four) == len(one), "\n".join(q["sql"] for q in four.captured_queries)
