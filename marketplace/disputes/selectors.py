"""Dispute reads. `dispute_for_user` is the one scope for disputes: partner and category grants,
plus the single disputes assigned (granted) to the user."""

from django.db.models import Q

from marketplace.bookings.models import Booking
from marketplace.catalog.selectors import granted_category_ids
from marketplace.disputes.models import OPEN_STATES, Dispute, DisputeGroupObjectPermission, DisputeUserObjectPermission
from marketplace.partners.selectors import can_operate, granted_q, partner_scope_q, scope_is_global, scope_selector


def dispute_grant_q(user) -> Q:
    """Single disputes granted to the user (assignment grants `handle_dispute` on the dispute)."""
    return granted_q(
        "pk",
        user,
        DisputeUserObjectPermission,
        DisputeGroupObjectPermission,
        app_label="disputes",
        codename="handle_dispute",
    )


def dispute_category_q(user) -> Q:
    """Disputes on bookings in the user's categories (and below).

    `booking_id IN (SELECT id FROM bookings WHERE category_id IN (<granted subtree>))`: the bookings
    are read inside the subquery through their category index, and PostgreSQL hashes them once;
    when the user has no category grant the subquery's hash join finds no category and reads no
    booking. Joining `booking__category` in the outer query instead joined every booking to every
    dispute for a branch that is empty for most agents. (Not `= ANY(ARRAY(...))`: for a broad
    category that array would hold a large share of all bookings.)
    """
    return Q(booking__in=Booking.objects.filter(category__in=granted_category_ids(user)).values("pk"))


@scope_selector
def dispute_for_user(user):
    if not can_operate(user):
        return Dispute.objects.none()
    if scope_is_global(user):
        return Dispute.objects.all()
    return Dispute.objects.filter(partner_scope_q(user, "partner") | dispute_category_q(user) | dispute_grant_q(user))


def dispute_assigned_to(user):
    """'My work': open disputes assigned to the user, oldest first."""
    return dispute_for_user(user).filter(assignee=user, status__in=OPEN_STATES).order_by("created_at", "pk")
