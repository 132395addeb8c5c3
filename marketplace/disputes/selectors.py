"""Dispute reads. `dispute_for_user` is the one scope for disputes: partner and category grants,
plus the single disputes assigned (granted) to the user."""

from django.db.models import Exists, OuterRef, Q

from marketplace.catalog.selectors import category_scope_q
from marketplace.disputes.models import OPEN_STATES, Dispute, DisputeGroupObjectPermission, DisputeUserObjectPermission
from marketplace.partners.selectors import can_operate, partner_scope_q, scope_is_global


def dispute_grant_q(user) -> Q:
    perm = {"permission__codename": "handle_dispute", "permission__content_type__app_label": "disputes"}
    direct = DisputeUserObjectPermission.objects.filter(user=user, content_object=OuterRef("pk"), **perm)
    via_group = DisputeGroupObjectPermission.objects.filter(group__user=user, content_object=OuterRef("pk"), **perm)
    return Q(Exists(direct)) | Q(Exists(via_group))


def dispute_for_user(user):
    if not can_operate(user):
        return Dispute.objects.none()
    if scope_is_global(user):
        return Dispute.objects.all()
    return Dispute.objects.filter(
        partner_scope_q(user, "partner") | category_scope_q(user, "booking__category__path") | dispute_grant_q(user)
    )


def dispute_assigned_to(user):
    """'My work': open disputes assigned to the user, oldest first."""
    return dispute_for_user(user).filter(assignee=user, status__in=OPEN_STATES).order_by("created_at", "pk")
