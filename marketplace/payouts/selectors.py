"""Payout reads. `payout_for_user` is the one scope for payouts: partner grants only, since a
payout spans the partner's categories."""

from marketplace.partners.selectors import can_operate, partner_scope_q, scope_is_global
from marketplace.payouts.models import Payout


def payout_for_user(user):
    if not can_operate(user):
        return Payout.objects.none()
    if scope_is_global(user):
        return Payout.objects.all()
    return Payout.objects.filter(partner_scope_q(user, "partner"))


def payout_awaiting_approval_for(user):
    """Payouts this user could approve: in scope, waiting, and not requested by them."""
    return (
        payout_for_user(user)
        .filter(status=Payout.Status.AWAITING_APPROVAL)
        .exclude(requested_by=user)
        .order_by("updated_at", "pk")
    )
