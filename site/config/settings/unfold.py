"""django-unfold configuration for the operations admin. Callbacks are dotted paths."""

from django.urls import reverse, reverse_lazy

from config.env import env

SIDEBAR = "dashboards.sidebar"
OPEN_STATES = ["opened", "awaiting_response", "under_review", "escalated"]  # marketplace.disputes.models


def _link(url_name: str, query: str):
    """A lazily reversed admin URL with a query string; "{user}" becomes the signed-in user's id."""

    def build(request):
        return reverse(url_name) + query.replace("{user}", str(request.user.pk))

    return build


def _item(title: str, icon: str, url_name: str, query: str = "", *, badge=None, permission=None) -> dict:
    item = {
        "title": title,
        "icon": icon,
        "link": _link(url_name, query) if query else reverse_lazy(url_name),
    }
    if badge:
        item["badge"] = f"{SIDEBAR}.{badge}"
    if permission:
        item["permission"] = f"{SIDEBAR}.{permission}"
    return item


def _group(title: str, *items: dict) -> dict:
    return {"title": title, "separator": True, "collapsible": False, "items": list(items)}


UNFOLD = {
    "SITE_TITLE": "Marketplace operations",
    "SITE_HEADER": "Marketplace operations",
    "SITE_SYMBOL": "storefront",
    "ENVIRONMENT": "dashboards.admin_callbacks.environment_callback",
    "DASHBOARD_CALLBACK": "dashboards.admin_callbacks.dashboard_callback",
    "COMMAND": {"search_models": True, "show_history": True},
    "SIDEBAR": {
        "show_search": True,
        "show_all_applications": True,
        # Organised around the work, not the models. Badges and permissions: dashboards/sidebar.py.
        "navigation": [
            {
                "title": "Today",
                "items": [{"title": "My work", "icon": "inbox", "link": reverse_lazy("my-work")}],
            },
            _group(
                "Moderation queue",
                _item(
                    "Waiting for review",
                    "fact_check",
                    "admin:catalog_listing_changelist",
                    "?status__exact=pending_review",
                    badge="listings_to_review",
                    permission="view_listing",
                ),
            ),
            _group(
                "Bookings",
                _item(
                    "Waiting for acceptance",
                    "hourglass_top",
                    "admin:bookings_booking_changelist",
                    "?status__exact=authorized",
                    badge="bookings_to_accept",
                    permission="view_booking",
                ),
                _item("All bookings", "event", "admin:bookings_booking_changelist", permission="view_booking"),
            ),
            _group(
                "Disputes",
                _item(
                    "Assigned to me",
                    "person_check",
                    "admin:disputes_dispute_changelist",
                    "?assignee__id__exact={user}",
                    badge="disputes_mine",
                    permission="view_dispute",
                ),
                _item(
                    "Open disputes",
                    "gavel",
                    "admin:disputes_dispute_changelist",
                    "?status__in=" + ",".join(OPEN_STATES),
                    badge="disputes_open",
                    permission="view_dispute",
                ),
            ),
            _group(
                "Payouts",
                _item(
                    "Waiting for approval",
                    "approval",
                    "admin:payouts_payout_changelist",
                    "?status__exact=awaiting_approval",
                    badge="payouts_to_approve",
                    permission="view_payout",
                ),
                _item(
                    "Failed",
                    "error",
                    "admin:payouts_payout_changelist",
                    "?status__exact=failed",
                    badge="payouts_failed",
                    permission="view_payout",
                ),
                _item("All payouts", "payments", "admin:payouts_payout_changelist", permission="view_payout"),
                _item("Payout runs", "autorenew", "admin:payouts_payoutrun_changelist", permission="view_payout_runs"),
                _item(
                    "Balance adjustments",
                    "balance",
                    "admin:payouts_balanceadjustment_changelist",
                    permission="view_adjustments",
                ),
                _item(
                    "Refund requests",
                    "currency_exchange",
                    "admin:payments_refundrequest_changelist",
                    "?status__exact=awaiting_approval",
                    permission="approve_refunds",
                ),
            ),
            _group(
                "Partners",
                _item("Partners", "storefront", "admin:partners_partner_changelist", permission="view_partner"),
                _item("API keys", "key", "admin:partners_partnerapikey_changelist", permission="view_api_keys"),
            ),
            _group(
                "People",
                _item("Users", "group", "admin:accounts_user_changelist", permission="view_user"),
                _item("Staff groups", "badge", "admin:auth_group_changelist", permission="view_group"),
                _item(
                    "Sign-in attempts",
                    "lock_person",
                    "admin:axes_accessattempt_changelist",
                    permission="view_signin_attempts",
                ),
            ),
            _group(
                "Catalogue",
                _item("Listings", "list_alt", "admin:catalog_listing_changelist", permission="view_listing"),
                _item("Categories", "account_tree", "admin:catalog_category_changelist", permission="view_category"),
            ),
            {
                "title": "Content",
                "items": [
                    {
                        "title": "Wagtail CMS",
                        "icon": "article",
                        "link": reverse_lazy("wagtailadmin_home"),
                        "permission": f"{SIDEBAR}.use_wagtail",
                    },
                ],
            },
            _group(
                "Tasks",
                _item(
                    "Imports and exports",
                    "import_export",
                    "admin:transfers_transferjob_changelist",
                    permission="use_transfers",
                ),
                _item("Successful tasks", "task_alt", "admin:django_q_success_changelist", permission="is_superuser"),
                _item("Failed tasks", "report", "admin:django_q_failure_changelist", permission="is_superuser"),
                _item("Schedules", "schedule", "admin:django_q_schedule_changelist", permission="is_superuser"),
                _item(
                    "Email outbox",
                    "outgoing_mail",
                    "admin:notifications_emailoutbox_changelist",
                    permission="view_outbox",
                ),
            ),
            _group(
                "Audit",
                _item("Audit log", "history", "admin:audit_event_changelist", permission="view_events"),
                _item(
                    "Ledger entries", "account_balance", "admin:ledger_ledgerentry_changelist", permission="view_ledger"
                ),
                _item(
                    "Reconciliation checks",
                    "balance",
                    "admin:ledger_reconciliationcheck_changelist",
                    permission="view_reconciliation",
                ),
            ),
        ],
    },
}
DASHBOARD_ENVIRONMENT = env.str("DJANGO_ENVIRONMENT", default="development")
