"""Double-blind reviews: each party rates the other; both publish together."""

from django.db import IntegrityError, transaction
from django.utils import timezone

from marketplace.audit.services import event_record
from marketplace.bookings.models import Booking
from marketplace.bookings.services import TRANSITIONS as BOOKING_TRANSITIONS
from marketplace.bookings.services import booking_close
from marketplace.core.exceptions import InvalidInput, NotPermitted, TransitionNotAllowed
from marketplace.core.transitions import guard, lock
from marketplace.reviews.models import Review

REVIEWABLE = (Booking.Status.COMPLETED, Booking.Status.RESOLVED)


def review_submit(*, booking: Booking, author, rating: int, comment: str = "") -> Review:
    """Submit a review within the window. When both parties have reviewed, both are published."""
    if not (1 <= int(rating) <= 5):
        raise InvalidInput("A rating is from 1 to 5.")
    with transaction.atomic():
        booking = lock(Booking, booking.pk)
        if author.pk == booking.client_id:
            role, subject_id = Review.Role.CLIENT, booking.provider_id
        elif author.pk == booking.provider_id:
            role, subject_id = Review.Role.PROVIDER, booking.client_id
        else:
            raise NotPermitted(f"You are not a party to booking #{booking.pk}.")
        if booking.status not in REVIEWABLE:
            raise TransitionNotAllowed(booking, "review")
        if booking.review_window_ends_at and booking.review_window_ends_at < timezone.now():
            raise TransitionNotAllowed(booking, "review", detail="The review window has closed.")
        try:
            with transaction.atomic():
                review = Review.objects.create(
                    booking=booking,
                    author=author,
                    subject_id=subject_id,
                    author_role=role,
                    rating=int(rating),
                    comment=comment,
                )
        except IntegrityError as exc:
            raise InvalidInput("You have already reviewed this booking.") from exc
        event_record(verb="review.submitted", actor=author, target=review, data={"booking": booking.pk})
        if Review.objects.filter(booking=booking).count() == 2:
            review_publish_for_booking(booking=booking)
            review.refresh_from_db()
    return review


def review_publish_for_booking(*, booking: Booking) -> int:
    """Publish every unpublished review of a booking at once. Returns how many were published."""
    count = Review.objects.filter(booking=booking, published_at__isnull=True).update(published_at=timezone.now())
    if count:
        event_record(verb="review.published", target=booking, data={"count": count})
    return count


def review_window_close(*, booking: Booking) -> Booking:
    """The timer: the review window is over; close the booking and publish what reviews there are.

    Refuses, writing nothing, a booking that cannot close or whose window is still open.
    """
    with transaction.atomic():
        booking = lock(Booking, booking.pk)
        guard(booking, BOOKING_TRANSITIONS, "close")
        ends_at = booking.review_window_ends_at
        if ends_at and ends_at > timezone.now():
            raise InvalidInput(f"The review window of booking #{booking.pk} is open until {ends_at:%Y-%m-%d %H:%M}.")
        booking = booking_close(booking=booking, actor=None)
        review_publish_for_booking(booking=booking)
    return booking
