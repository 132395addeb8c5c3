"""Double-blind reviews (marketplace/reviews/services.py): hidden until both parties reviewed or the
review window closed; one per party; parties only; inside the window only."""

from datetime import timedelta

import pytest
from django.utils import timezone

from marketplace.audit.models import Event
from marketplace.audit.selectors import event_list_for_object
from marketplace.bookings.models import Booking
from marketplace.core.exceptions import InvalidInput, NotPermitted, TransitionNotAllowed
from marketplace.reviews.models import Review
from marketplace.reviews.services import review_submit, review_window_close
from tests.factories import ClientFactory, StaffFactory
from tests.factories.states import booking_at

pytestmark = pytest.mark.django_db

S = Booking.Status


def _snapshot(booking: Booking) -> dict:
    row = Booking.objects.get(pk=booking.pk)
    return {
        "booking": (row.status, row.updated_at),
        "reviews": list(Review.objects.values_list("pk", "published_at")),
        "events": Event.objects.count(),
    }


def test_review_submit_first_review_stays_hidden():
    # given a completed booking
    booking = booking_at(S.COMPLETED)
    # when the client reviews first
    review = review_submit(booking=booking, author=booking.client, rating=4, comment="On time, tidy.")
    # then the review is stored about the provider, but not published
    review.refresh_from_db()
    assert (review.author_role, review.subject, review.rating, review.published_at) == (
        Review.Role.CLIENT,
        booking.provider,
        4,
        None,
    )
    event = event_list_for_object(obj=review).get()
    assert (event.verb, event.actor, event.data) == ("review.submitted", booking.client, {"booking": booking.pk})


def test_review_submit_second_review_publishes_both():
    # given the client has reviewed
    booking = booking_at(S.COMPLETED)
    first = review_submit(booking=booking, author=booking.client, rating=4)
    # when the provider reviews too
    second = review_submit(booking=booking, author=booking.provider, rating=5, comment="Clear brief.")
    # then both are published at the same moment
    first.refresh_from_db()
    assert (second.author_role, second.subject) == (Review.Role.PROVIDER, booking.client)
    assert first.published_at is not None
    assert second.published_at == first.published_at
    published = event_list_for_object(obj=booking).filter(verb="review.published").get()
    assert published.data == {"count": 2}


def test_review_submit_on_resolved_booking_is_allowed():
    # given a booking whose dispute was resolved
    booking = booking_at(S.RESOLVED)
    # when
    review = review_submit(booking=booking, author=booking.provider, rating=2)
    # then
    assert review.pk is not None and review.published_at is None


def _window_over(booking: Booking) -> Booking:
    """The timer's view: the review window ended a second ago."""
    Booking.objects.filter(pk=booking.pk).update(review_window_ends_at=timezone.now() - timedelta(seconds=1))
    booking.refresh_from_db()
    return booking


def test_review_window_close_closes_the_booking_and_publishes_a_lone_review():
    # given only the provider reviewed, and the window is over
    booking = booking_at(S.COMPLETED)
    review = review_submit(booking=booking, author=booking.provider, rating=5)
    booking = _window_over(booking)
    # when the review window timer fires
    review_window_close(booking=booking)
    # then the booking is closed and the lone review is published
    booking.refresh_from_db()
    review.refresh_from_db()
    assert (booking.status, review.published_at is not None) == (S.CLOSED, True)
    assert booking.closed_at is not None
    close = event_list_for_object(obj=booking).get(verb="booking.close")
    assert (close.from_state, close.to_state, close.actor) == (S.COMPLETED, S.CLOSED, None)
    assert event_list_for_object(obj=booking).get(verb="review.published").data == {"count": 1}


def test_review_window_close_without_reviews_closes_and_publishes_nothing():
    # given a completed booking whose review window is over
    booking = _window_over(booking_at(S.COMPLETED))
    # when
    review_window_close(booking=booking)
    # then
    booking.refresh_from_db()
    assert booking.status == S.CLOSED
    assert not event_list_for_object(obj=booking).filter(verb="review.published").exists()


@pytest.mark.parametrize("state", [S.ACCEPTED, S.IN_PROGRESS, S.DISPUTED, S.CLOSED])
def test_review_window_close_of_booking_that_cannot_close_writes_nothing(state):
    # given
    booking = booking_at(state)
    before = _snapshot(booking)
    # when
    with pytest.raises(TransitionNotAllowed, match=f"Booking #{booking.pk} is '{state}': cannot close."):
        review_window_close(booking=booking)
    # then
    assert _snapshot(booking) == before


def test_review_window_close_while_the_window_is_open_writes_nothing():
    # given a completed booking, reviewed by the client, whose review window is still open
    booking = booking_at(S.COMPLETED)
    review_submit(booking=booking, author=booking.client, rating=4)
    assert booking.review_window_ends_at > timezone.now()
    before = _snapshot(booking)
    # when the timer fires early
    with pytest.raises(InvalidInput) as raised:
        review_window_close(booking=booking)
    # then the booking stays completed and the lone review hidden
    assert str(raised.value) == (
        f"The review window of booking #{booking.pk} is open until {booking.review_window_ends_at:%Y-%m-%d %H:%M}."
    )
    assert _snapshot(booking) == before


@pytest.mark.parametrize("who", ["client", "provider"])
def test_review_submit_twice_by_the_same_party_is_refused(who):
    # given
    booking = booking_at(S.COMPLETED)
    author = getattr(booking, who)
    review_submit(booking=booking, author=author, rating=3)
    before = _snapshot(booking)
    # when
    with pytest.raises(InvalidInput) as raised:
        review_submit(booking=booking, author=author, rating=5)
    # then the first review stands, nothing is published
    assert str(raised.value) == "You have already reviewed this booking."
    assert _snapshot(booking) == before
    assert Review.objects.get().rating == 3


@pytest.mark.parametrize("stranger", [ClientFactory, StaffFactory], ids=["another-client", "staff"])
def test_review_submit_by_a_stranger_is_refused(stranger):
    # given
    booking = booking_at(S.COMPLETED)
    before = _snapshot(booking)
    # when
    with pytest.raises(NotPermitted) as raised:
        review_submit(booking=booking, author=stranger(), rating=1)
    # then
    assert str(raised.value) == f"You are not a party to booking #{booking.pk}."
    assert _snapshot(booking) == before


def test_review_submit_after_the_window_closed_is_refused():
    # given a completed booking whose review window ended a second ago
    booking = booking_at(S.COMPLETED)
    Booking.objects.filter(pk=booking.pk).update(review_window_ends_at=timezone.now() - timedelta(seconds=1))
    before = _snapshot(booking)
    # when
    with pytest.raises(TransitionNotAllowed) as raised:
        review_submit(booking=booking, author=booking.client, rating=4)
    # then
    assert str(raised.value) == f"Booking #{booking.pk} is 'completed': cannot review. The review window has closed."
    assert _snapshot(booking) == before


@pytest.mark.parametrize("state", [S.ACCEPTED, S.IN_PROGRESS, S.CANCELLED, S.DISPUTED, S.CLOSED])
def test_review_submit_outside_the_reviewable_states_is_refused(state):
    # given
    booking = booking_at(state)
    before = _snapshot(booking)
    # when
    with pytest.raises(TransitionNotAllowed) as raised:
        review_submit(booking=booking, author=booking.client, rating=4)
    # then
    assert str(raised.value) == f"Booking #{booking.pk} is '{state}': cannot review."
    assert _snapshot(booking) == before


@pytest.mark.parametrize("rating", [0, 6, -1])
def test_review_submit_rating_out_of_range_is_refused(rating):
    # given
    booking = booking_at(S.COMPLETED)
    # when / then
    with pytest.raises(InvalidInput, match="A rating is from 1 to 5."):
        review_submit(booking=booking, author=booking.client, rating=rating)
    assert Review.objects.count() == 0
