"""Dispute reads. `dispute_for_user` is the one scope for disputes: partner and category grants,
plus the single disputes assigned (granted) to the user."""

from django.db.models import Q

from marketplace.catalog.selectors import category_scope_q
from marketplace.disputes.models import OPEN_STATES, Dispute, DisputeGroupObjectPermission, DisputeUserObjectPermission
from marketplace.partners.selectors import can_operate, granted_ids, partner_scope_q, scope_is_global


def dispute_grant_q(user) -> Q:
    """Single disputes granted to the user (assignment grants `handle_dispute` on the dispute)."""
    direct, via_group = granted_ids(
        user, DisputeUserObjectPermission, DisputeGroupObjectPermission, app_label="disputes", codename="handle_dispute"
    )
    return Q(pk__in=direct) | Q(pk__in=via_group)


def dispute_for_user(user):
    if not can_operate(user):
        return Dispute.objects.none()
    if scope_is_global(user):
        return Dispute.objects.all()
    return Dispute.objects.filter(
        partner_scope_q(user, "partner") | category_scope_q(user, "booking__category") | dispute_grant_q(user)
    )


def dispute_assigned_to(user):
    """'My work': open disputes assigned to the user, oldest first."""
    return dispute_for_user(user).filter(assignee=user, status__in=OPEN_STATES).order_by("created_at", "pk")
