"""The booking state machine.

Transitions without money live here. The ones that move money (authorize, accept, decline,
expire, cancel) are workflows in `marketplace.payments.services.checkout`, and the dispute
ones in `marketplace.disputes.services`; both apply the transition through
`booking_apply_transition` on a booking row they have already locked.
"""

from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from marketplace.audit.services import event_record
from marketplace.bookings.models import Booking
from marketplace.bookings.selectors import booking_for_user
from marketplace.catalog.models import Category, Listing
from marketplace.core.exceptions import InvalidInput, NotPermitted
from marketplace.core.money import fee_and_share, quantize
from marketplace.core.transitions import guard, lock
from marketplace.notifications.services import notify
from marketplace.partners.services import partner_require_open

S = Booking.Status

# transition -> (states it may start from, state it leads to)
TRANSITIONS: dict[str, tuple[set[str], str]] = {
    "request_payment": ({S.REQUESTED}, S.PENDING_PAYMENT),
    "authorize": ({S.PENDING_PAYMENT}, S.AUTHORIZED),
    "accept": ({S.AUTHORIZED}, S.ACCEPTED),
    "decline": ({S.REQUESTED, S.PENDING_PAYMENT, S.AUTHORIZED}, S.DECLINED),
    "expire": ({S.PENDING_PAYMENT, S.AUTHORIZED}, S.EXPIRED),
    "cancel": ({S.REQUESTED, S.PENDING_PAYMENT, S.AUTHORIZED, S.ACCEPTED}, S.CANCELLED),
    "start": ({S.ACCEPTED}, S.IN_PROGRESS),
    "complete": ({S.ACCEPTED, S.IN_PROGRESS}, S.COMPLETED),
    "dispute": ({S.COMPLETED}, S.DISPUTED),
    "resolve": ({S.DISPUTED}, S.RESOLVED),
    "withdraw_dispute": ({S.DISPUTED}, S.COMPLETED),
    "close": ({S.COMPLETED, S.RESOLVED}, S.CLOSED),
}
# The timestamp each transition stamps, if any.
_STAMPS = {
    "authorize": "authorized_at",
    "accept": "accepted_at",
    "start": "started_at",
    "complete": "completed_at",
    "cancel": "cancelled_at",
    "close": "closed_at",
}


def booking_apply_transition(
    *, booking: Booking, actor, transition: str, reason: str = "", data: dict | None = None, notify_parties=True
) -> Booking:
    """Move an already locked booking along `transition`: guard, save, audit, notify.

    Callers hold the row lock (`lock(Booking, pk)`) inside their own transaction.
    """
    target = guard(booking, TRANSITIONS, transition)
    from_state = booking.status
    now = timezone.now()
    booking.status = target
    fields = ["status", "updated_at"]
    if stamp := _STAMPS.get(transition):
        setattr(booking, stamp, now)
        fields.append(stamp)
    if transition == "authorize":
        booking.expires_at = now + timedelta(hours=settings.MARKETPLACE_ACCEPT_EXPIRY_HOURS)
        fields.append("expires_at")
    elif transition in ("accept", "decline", "expire", "cancel"):
        booking.expires_at = None
        fields.append("expires_at")
    if transition == "cancel":
        booking.cancellation_reason = reason
        fields.append("cancellation_reason")
    if transition == "complete":
        booking.review_window_ends_at = now + timedelta(days=settings.MARKETPLACE_REVIEW_WINDOW_DAYS)
        booking.dispute_window_ends_at = now + timedelta(days=settings.MARKETPLACE_DISPUTE_WINDOW_DAYS)
        fields += ["review_window_ends_at", "dispute_window_ends_at"]
    booking.save(update_fields=fields)
    event_record(
        verb=f"booking.{transition}",
        actor=actor,
        target=booking,
        from_state=from_state,
        to_state=target,
        reason=reason,
        data=data,
    )
    if notify_parties:
        title = f"Booking #{booking.pk} is now {booking.get_status_display().lower()}"
        for user in (booking.client, booking.provider):
            if actor is None or user.pk != actor.pk:
                notify(user=user, verb=f"booking.{transition}", target=booking, title=title, body=reason)
    return booking


def booking_create(*, listing: Listing, client, starts_at: datetime, ends_at: datetime, note: str = "") -> Booking:
    """Book a published service listing from now on. The price and the commission are fixed now."""
    if starts_at < timezone.now():
        raise InvalidInput("A booking cannot start in the past.")
    if listing.kind != Listing.Kind.SERVICE or listing.status != Listing.Status.PUBLISHED:
        raise InvalidInput(f"Listing #{listing.pk} is not a published service and cannot be booked.")
    if listing.owner_id == client.pk:
        raise InvalidInput("You cannot book your own listing.")
    return _booking_insert(
        listing=listing,
        client=client,
        provider=listing.owner,
        partner_id=listing.partner_id,
        amount=listing.price,
        starts_at=starts_at,
        ends_at=ends_at,
        note=note,
        actor=client,
    )


def booking_create_for_hire(*, listing: Listing, client, provider, partner, amount, starts_at, ends_at) -> Booking:
    """Create the booking that hiring a job applicant leads to (called by the jobs workflow)."""
    return _booking_insert(
        listing=listing,
        client=client,
        provider=provider,
        partner_id=partner.pk,
        amount=amount,
        starts_at=starts_at,
        ends_at=ends_at,
        note="",
        actor=client,
    )


def _booking_insert(*, listing, client, provider, partner_id, amount, starts_at, ends_at, note, actor) -> Booking:
    if ends_at <= starts_at:
        raise InvalidInput("A booking must end after it starts.")
    amount = quantize(amount)
    if amount < 0:
        raise InvalidInput("The amount cannot be negative.")
    with transaction.atomic():
        # Neither the partner paid nor the listing's (a job's integrator) may be suspended.
        for pid in sorted({partner_id, listing.partner_id}):
            partner_require_open(partner_id=pid, doing="a new booking")
        # The category's rate as it is now (read fresh, not from the listing object the caller holds),
        # and the fee from it by the one formula. The booking keeps both: a later change of the rate
        # (category_commission_set) applies to new bookings only.
        rate = Category.objects.filter(pk=listing.category_id).values_list("commission_rate", flat=True).get()
        platform_fee, _provider_share = fee_and_share(amount, rate)
        booking = Booking.objects.create(
            listing=listing,
            client=client,
            provider=provider,
            partner_id=partner_id,
            category_id=listing.category_id,
            starts_at=starts_at,
            ends_at=ends_at,
            amount=amount,
            platform_fee=platform_fee,
            commission_rate=rate,
            currency=listing.currency,
            note=note,
        )
        event_record(verb="booking.created", actor=actor, target=booking, to_state=booking.status)
        notify(user=provider, verb="booking.created", target=booking, title=f"New booking request #{booking.pk}")
    return booking


def booking_request_payment(*, booking: Booking, actor) -> Booking:
    """Ask the client to pay; the booking expires if no payment is authorised in time."""
    with transaction.atomic():
        booking = lock(Booking, booking.pk)
        _require_party_or_operator(booking, actor)
        guard(booking, TRANSITIONS, "request_payment")
        booking.expires_at = timezone.now() + timedelta(minutes=settings.MARKETPLACE_PAYMENT_EXPIRY_MINUTES)
        booking.save(update_fields=["expires_at"])
        return booking_apply_transition(booking=booking, actor=actor, transition="request_payment")


def booking_start(*, booking: Booking, actor) -> Booking:
    """The provider (or an operator) starts the work."""
    with transaction.atomic():
        booking = lock(Booking, booking.pk)
        _require_provider_or_operator(booking, actor)
        return booking_apply_transition(booking=booking, actor=actor, transition="start")


def booking_complete(*, booking: Booking, actor=None, reason: str = "") -> Booking:
    """Mark the work done: by the provider, an operator, or the timer after end + grace (actor None)."""
    with transaction.atomic():
        booking = lock(Booking, booking.pk)
        if actor is not None:
            _require_provider_or_operator(booking, actor)
        return booking_apply_transition(booking=booking, actor=actor, transition="complete", reason=reason)


def booking_close(*, booking: Booking, actor=None) -> Booking:
    """Close a booking. The review-window timer calls `reviews.services.review_window_close`, which
    closes the booking through here and publishes the double-blind reviews in the same transaction."""
    with transaction.atomic():
        booking = lock(Booking, booking.pk)
        return booking_apply_transition(booking=booking, actor=actor, transition="close", notify_parties=False)


def booking_is_operator(*, booking: Booking, actor) -> bool:
    """An operator of this booking: `bookings.operate_booking` and the booking in their scope."""
    return (
        actor is not None
        and actor.has_perm("bookings.operate_booking")
        and booking_for_user(actor).filter(pk=booking.pk).exists()
    )


def _require_party_or_operator(booking: Booking, actor) -> None:
    if actor.pk in (booking.client_id, booking.provider_id) or booking_is_operator(booking=booking, actor=actor):
        return
    raise NotPermitted(f"You are not a party to booking #{booking.pk}.")


def _require_provider_or_operator(booking: Booking, actor) -> None:
    if actor.pk == booking.provider_id or booking_is_operator(booking=booking, actor=actor):
        return
    raise NotPermitted(f"Only the provider or an operator can start or complete booking #{booking.pk}.")
