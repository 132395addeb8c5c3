"""Payout reads. `payout_for_user` is the one scope for payouts: partner grants only, since a
payout spans the partner's categories."""

from decimal import Decimal

from marketplace.core.money import ZERO
from marketplace.partners.selectors import can_operate, partner_scope_q, scope_is_global, scope_selector
from marketplace.payouts.balances import partner_balances
from marketplace.payouts.models import BalanceAdjustment, Payout


@scope_selector
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


def payout_run_preview(*, now=None) -> dict[tuple[int, str], tuple[int, Decimal]]:
    """What a payout run would pay now, per (partner, currency): (bookings, amount). Computed with the
    ORM from the ledger and the payable definition (`balances.py`), apart from the run's SQL."""
    return {
        key: (balance.mature_bookings, balance.payable_now)
        for key, balance in sorted(partner_balances(now=now).items())
        if balance.payable_now > ZERO
    }


@scope_selector
def adjustment_for_user(user):
    """Balance adjustments of the partners in the user's scope (as payouts: partner grants only)."""
    if not can_operate(user):
        return BalanceAdjustment.objects.none()
    if scope_is_global(user):
        return BalanceAdjustment.objects.all()
    return BalanceAdjustment.objects.filter(partner_scope_q(user, "partner"))
