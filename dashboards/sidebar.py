"""The operations sidebar: who sees which entry, and the pending counts on the queues.

Each badge is one query over the user's scope (the `<model>_for_user` selectors), counting at most
BADGE_CAP rows (`SELECT COUNT(*) FROM (... LIMIT 100)`), so a badge never counts a whole large
table: past the cap it shows "99+". Permission callbacks take the request and return a bool.
"""

from marketplace.bookings.models import Booking
from marketplace.bookings.selectors import booking_for_user
from marketplace.catalog.selectors import listing_moderation_queue
from marketplace.disputes.models import OPEN_STATES
from marketplace.disputes.selectors import dispute_for_user
from marketplace.partners.selectors import scope_is_global
from marketplace.payouts.models import Payout
from marketplace.payouts.selectors import payout_awaiting_approval_for, payout_for_user

BADGE_CAP = 100


def _capped(queryset) -> str:
    count = queryset.order_by()[:BADGE_CAP].count()
    if not count:
        return ""
    return f"{BADGE_CAP - 1}+" if count >= BADGE_CAP else str(count)


# --- Badges ---------------------------------------------------------------------------------


def listings_to_review(request) -> str:
    return _capped(listing_moderation_queue(request.user))


def bookings_to_accept(request) -> str:
    return _capped(booking_for_user(request.user).filter(status=Booking.Status.AUTHORIZED))


def disputes_open(request) -> str:
    return _capped(dispute_for_user(request.user).filter(status__in=OPEN_STATES))


def disputes_mine(request) -> str:
    return _capped(dispute_for_user(request.user).filter(assignee=request.user, status__in=OPEN_STATES))


def payouts_to_approve(request) -> str:
    return _capped(payout_awaiting_approval_for(request.user))


def payouts_failed(request) -> str:
    return _capped(payout_for_user(request.user).filter(status=Payout.Status.FAILED))


# --- Who sees what ---------------------------------------------------------------------------


def _perm(codename: str):
    def check(request) -> bool:
        return request.user.has_perm(codename)

    check.__name__ = f"has_{codename.replace('.', '_')}"
    return check


def _global_perm(codename: str):
    def check(request) -> bool:
        return scope_is_global(request.user) and request.user.has_perm(codename)

    check.__name__ = f"has_global_{codename.replace('.', '_')}"
    return check


def is_superuser(request) -> bool:
    return request.user.is_superuser


view_listing = _perm("catalog.view_listing")
view_category = _perm("catalog.view_category")
view_booking = _perm("bookings.view_booking")
view_dispute = _perm("disputes.view_dispute")
view_payout = _perm("payouts.view_payout")
view_partner = _perm("partners.view_partner")
view_api_keys = _perm("partners.view_partnerapikey")
view_user = _perm("accounts.view_user")
view_group = _perm("auth.view_group")
view_signin_attempts = _perm("axes.view_accessattempt")
view_payout_runs = _global_perm("payouts.view_payoutrun")
view_adjustments = _perm("payouts.view_balanceadjustment")
approve_refunds = _perm("disputes.approve_refund")
view_events = _global_perm("audit.view_event")
view_ledger = _global_perm("ledger.view_ledgerentry")
view_reconciliation = _global_perm("ledger.view_reconciliationcheck")
view_outbox = _perm("notifications.view_emailoutbox")
use_wagtail = _perm("wagtailadmin.access_admin")


def use_transfers(request) -> bool:
    """Imports and exports: anyone who may run one sees their own jobs."""
    user = request.user
    return user.has_perm("transfers.import_data") or user.has_perm("transfers.export_data")
