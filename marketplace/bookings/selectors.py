"""Booking reads. `booking_for_user` is the one scope for bookings, used by every door."""

from django.db.models import Q

from marketplace.bookings.models import Booking
from marketplace.catalog.selectors import category_scope_q
from marketplace.partners.selectors import can_operate, partner_scope_q, scope_is_global


def booking_for_user(user):
    """Bookings a staff user may see and act on, through partner or category grants."""
    if not can_operate(user):
        return Booking.objects.none()
    if scope_is_global(user):
        return Booking.objects.all()
    return Booking.objects.filter(partner_scope_q(user, "partner") | category_scope_q(user, "category"))


def booking_list_for_party(user):
    """The bookings a client or provider is party to (the public API's scope)."""
    return Booking.objects.filter(Q(client=user) | Q(provider=user))
