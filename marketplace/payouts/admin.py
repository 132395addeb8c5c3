import json

from django.contrib import admin
from django.utils.html import format_html
from unfold.admin import TabularInline
from unfold.decorators import display

from marketplace.core.admin import ScopedReadOnlyAdmin
from marketplace.partners.selectors import scope_is_global
from marketplace.payouts.models import Payout, PayoutAttempt, PayoutRun
from marketplace.payouts.selectors import payout_for_user

STATE_COLOURS = {
    "Paid": "success",
    "Approved": "info",
    "Submitted": "info",
    "Failed": "danger",
    "On hold": "warning",
    "Awaiting approval": "warning",
}


class PayoutAttemptInline(TabularInline):
    """Each submission to the gateway: its key, answer, and when an unanswered one is asked again."""

    model = PayoutAttempt
    fields = ["number", "idempotency_key", "status", "tries", "next_try_at", "gateway_reference", "error"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = False

    # Whoever may see the payout (its admin checked permission and scope) sees its attempts.
    def has_view_permission(self, request, obj=None):
        return True

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Payout)
class PayoutAdmin(ScopedReadOnlyAdmin):
    scope = staticmethod(payout_for_user)
    list_display = [
        "id",
        "display_status",
        "partner",
        "amount",
        "currency",
        "hold_until",
        "attempt_count",
        "next_retry_at",
        "failure_reason",
        "run",
    ]
    list_filter = ["status"]
    list_select_related = ("partner",)
    ordering = ("-created_at", "-id")
    inlines = [PayoutAttemptInline]

    @display(description="Status", label=STATE_COLOURS, ordering="status")
    def display_status(self, obj):
        return obj.get_status_display()


@admin.register(PayoutRun)
class PayoutRunAdmin(ScopedReadOnlyAdmin):
    """What each payout run gathered, submitted and could not pay (held, disputed, awaiting a person)."""

    list_display = [
        "id",
        "started_at",
        "display_status",
        "bookings",
        "payouts_created",
        "amount_created",
        "submitted",
        "retried",
        "resumed_attempts",
        "held",
        "needs_approval",
        "disputed_bookings",
    ]
    list_filter = ["status"]
    ordering = ("-started_at", "-id")
    readonly_fields = ["display_report"]

    # A run spans every partner: only unscoped staff (finance, leads) read runs.
    def has_module_permission(self, request):
        return scope_is_global(request.user) and request.user.has_perm("payouts.view_payoutrun")

    def has_view_permission(self, request, obj=None):
        return self.has_module_permission(request)

    @display(
        description="Status",
        label={"Finished": "success", "Running": "info", "Failed": "danger", "Interrupted": "warning"},
        ordering="status",
    )
    def display_status(self, obj):
        return obj.get_status_display()

    @display(description="Report")
    def display_report(self, obj):
        return format_html("<pre>{}</pre>", json.dumps(obj.report, indent=2))
