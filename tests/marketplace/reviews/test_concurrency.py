"""Review submissions and the review window's close, fired at once from two database connections
(STYLE.md, Tests): the second call is seen waiting on the booking's row lock (pg_stat_activity)
while the first still holds it, so the transactions really overlapped. One review per party, the
double-blind pair published together once, and a review written just before the window closed is
published by the close, never left hidden on a closed booking."""

from datetime import timedelta

import pytest
from django.utils import timezone

from marketplace.audit.models import Event
from marketplace.bookings.models import Booking
from marketplace.core.exceptions import InvalidInput, TransitionNotAllowed
from marketplace.reviews.models import Review
from marketplace.reviews.services import review_submit, review_window_close
from tests.concurrency import run_overlapping
from tests.factories.states import booking_at

pytestmark = pytest.mark.django_db(transaction=True)

S = Booking.Status


class _Clock:
    """Stands in for `timezone` in marketplace.reviews.services: a now() the test moves on."""

    def __init__(self, now):
        self.value = now

    def now(self):
        return self.value


def _events(booking: Booking, verb: str) -> int:
    return Event.objects.filter(verb=verb, target_id=str(booking.pk)).count()


def _window_over(booking: Booking) -> Booking:
    Booking.objects.filter(pk=booking.pk).update(review_window_ends_at=timezone.now() - timedelta(seconds=1))
    booking.refresh_from_db()
    return booking


def test_review_submit_twice_at_once_by_the_same_party_keeps_one_review():
    # given a completed booking
    booking = booking_at(S.COMPLETED)
    client = booking.client

    # when the client's review is sent a second time while the first still holds the booking
    overlap = run_overlapping(
        lambda: review_submit(booking=booking, author=client, rating=4, comment="On time."),
        lambda: review_submit(booking=booking, author=client, rating=4, comment="On time."),
    )

    # then the second was seen waiting on the booking's row lock, then refused as a duplicate
    assert overlap.wait.waiting_for == ("Lock", "SELECT", "bookings_booking")
    winner, loser = overlap.one_winner()
    assert (winner.index, loser.index) == (0, 1)
    assert isinstance(loser.error, InvalidInput)
    assert loser.error.message == "You have already reviewed this booking."
    assert list(Review.objects.values_list("pk", "author_id", "published_at")) == [(winner.value.pk, client.pk, None)]
    assert Event.objects.filter(verb="review.submitted").count() == 1


def test_review_submit_by_both_parties_at_once_publishes_both_once():
    # given a completed booking
    booking = booking_at(S.COMPLETED)
    client, provider = booking.client, booking.provider

    # when the provider reviews while the client's review still holds the booking
    overlap = run_overlapping(
        lambda: review_submit(booking=booking, author=client, rating=4),
        lambda: review_submit(booking=booking, author=provider, rating=5),
    )

    # then the provider's waited on the booking's row lock, so it saw the client's review and
    # published both together (unlocked, each would have seen one review and published neither)
    assert overlap.wait.waiting_for == ("Lock", "SELECT", "bookings_booking")
    assert overlap.errors == []
    published = set(Review.objects.values_list("published_at", flat=True))
    assert len(published) == 1 and None not in published
    assert Review.objects.count() == 2
    assert _events(booking, "review.published") == 1
    assert Event.objects.get(verb="review.published", target_id=str(booking.pk)).data == {"count": 2}


def test_review_submit_then_window_close_overlapping_publishes_the_review(monkeypatch):
    # given a completed booking, one minute before its review window ends
    booking = booking_at(S.COMPLETED)
    client = booking.client
    ends_at = booking.review_window_ends_at
    clock = _Clock(ends_at - timedelta(minutes=1))
    monkeypatch.setattr("marketplace.reviews.services.timezone", clock)

    def submit_until_the_window_ends():
        # the submission is checked inside the window and commits after it has ended
        review = review_submit(booking=booking, author=client, rating=3, comment="Late but fine.")
        clock.value = ends_at + timedelta(seconds=1)
        return review

    # when the window-close timer fires while the submission still holds the booking
    overlap = run_overlapping(submit_until_the_window_ends, lambda: review_window_close(booking=booking))

    # then the close waited on the booking's row lock, then closed it and published the late review
    assert overlap.wait.waiting_for == ("Lock", "SELECT", "bookings_booking")
    assert overlap.errors == []
    booking.refresh_from_db()
    assert booking.status == S.CLOSED
    assert list(Review.objects.values_list("author_id", "published_at")) == [
        (client.pk, ends_at + timedelta(seconds=1))
    ]
    assert Event.objects.get(verb="review.published", target_id=str(booking.pk)).data == {"count": 1}


def test_review_window_close_then_submit_overlapping_refuses_the_review():
    # given a completed booking whose review window has ended
    booking = _window_over(booking_at(S.COMPLETED))
    client = booking.client

    # when the client reviews while the window-close timer still holds the booking
    overlap = run_overlapping(
        lambda: review_window_close(booking=booking),
        lambda: review_submit(booking=booking, author=client, rating=3),
    )

    # then the review waited on the booking's row lock, then found the booking closed
    assert overlap.wait.waiting_for == ("Lock", "SELECT", "bookings_booking")
    winner, loser = overlap.one_winner()
    assert (winner.index, loser.index) == (0, 1)
    assert isinstance(loser.error, TransitionNotAllowed)
    assert loser.error.message == f"Booking #{booking.pk} is 'closed': cannot review."
    assert Booking.objects.get(pk=booking.pk).status == S.CLOSED
    assert Review.objects.count() == 0


def test_review_window_close_twice_at_once_closes_once():
    # given a completed booking whose review window has ended, with the client's review hidden
    booking = booking_at(S.COMPLETED)
    review_submit(booking=booking, author=booking.client, rating=5)
    booking = _window_over(booking)

    # when the timer fires twice (a redelivered task), the second while the first holds the booking
    overlap = run_overlapping(
        lambda: review_window_close(booking=booking),
        lambda: review_window_close(booking=booking),
    )

    # then the second waited on the booking's row lock, then was refused: closed and published once
    assert overlap.wait.waiting_for == ("Lock", "SELECT", "bookings_booking")
    winner, loser = overlap.one_winner()
    assert (winner.index, loser.index) == (0, 1)
    assert isinstance(loser.error, TransitionNotAllowed)
    assert loser.error.message == f"Booking #{booking.pk} is 'closed': cannot close."
    assert Booking.objects.get(pk=booking.pk).status == S.CLOSED
    assert (_events(booking, "booking.close"), _events(booking, "review.published")) == (1, 1)
    assert Review.objects.filter(published_at__isnull=True).count() == 0
