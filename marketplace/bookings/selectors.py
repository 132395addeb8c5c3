"""Booking reads. `booking_for_user` is the one scope for bookings, used by every door."""

from django.db.models import Q

from marketplace.bookings.models import Booking
from marketplace.catalog.selectors import granted_category_ids
from marketplace.partners.selectors import (
    can_operate,
    granted_partner_ids,
    granted_rows_q,
    scope_is_global,
    scope_selector,
)


@scope_selector
def booking_for_user(user):
    """Bookings a staff user may see and act on, through partner or category grants.

    One semi-join on the booking's id against the union of the grant kinds' rows (`granted_rows_q`),
    so that PostgreSQL sizes the scope from the grant tables (at 1M bookings an agent's pages cost
    what their partner's rows cost, see BENCHMARKS.md); the same rows as the OR of the grants.
    """
    if not can_operate(user):
        return Booking.objects.none()
    if scope_is_global(user):
        return Booking.objects.all()
    return Booking.objects.filter(granted_rows_q(Booking, *booking_grant_branches(user)))


def booking_grant_branches(user) -> list[Q]:
    """A scoped user's bookings by kind of grant (partner directly, through a group, category):
    each a plain `IN (subquery)` over the grant tables. `booking_for_user` is their union; a reader
    of one column of them (the people of the scope, `user_for_user`) unions the branches itself
    rather than nesting the bookings' own union, which PostgreSQL would join row by row to it."""
    direct, via_group = granted_partner_ids(user)
    return [Q(partner__in=direct), Q(partner__in=via_group), Q(category__in=granted_category_ids(user))]


def booking_list_for_party(user):
    """The bookings a client or provider is party to (the public API's scope)."""
    return Booking.objects.filter(Q(client=user) | Q(provider=user))
