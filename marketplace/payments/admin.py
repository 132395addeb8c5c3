"""Refund requests waiting for a second person: the list, and approve or reject on each one's page."""

from django.contrib import admin
from unfold.contrib.filters.admin import ChoicesDropdownFilter
from unfold.decorators import display
from unfold.enums import ActionVariant

from marketplace.core.admin import Step, WorkflowAdmin, step_action
from marketplace.core.admin_filters import DayRangeFilter, search_by_shape
from marketplace.payments.models import RefundRequest
from marketplace.payments.selectors import refund_request_for_user
from marketplace.payments.services import refunds

RR = RefundRequest.Status
APPROVE = refunds.APPROVE_PERMISSION


def _waiting(request_):
    return request_.status == RR.AWAITING_APPROVAL


@admin.register(RefundRequest)
class RefundRequestAdmin(WorkflowAdmin):
    scope = staticmethod(refund_request_for_user)
    list_display = ["id", "display_status", "display_amount", "door", "payment", "requested_by", "created_at"]
    list_filter = [("status", ChoicesDropdownFilter), ("door", ChoicesDropdownFilter), ("created_at", DayRangeFilter)]
    list_filter_submit = True
    list_select_related = ("payment", "requested_by")
    search_fields = ["=id"]
    search_help_text = "Refund request id."
    ordering = ("-created_at", "-id")
    fields = [
        "payment",
        "amount",
        "currency",
        "door",
        "reason",
        "status",
        "requested_by",
        "decided_by",
        "decided_at",
        "refund",
    ]
    readonly_fields = fields
    actions_detail = ["approve", "reject"]
    step_offered = {"approve": _waiting, "reject": _waiting}

    # Who decides on refunds (`disputes.approve_refund`: leads, Finance) reads the requests; each
    # request is still read through the booking's scope.
    def has_module_permission(self, request):
        return request.user.has_perm(APPROVE)

    def has_view_permission(self, request, obj=None):
        return request.user.has_perm(APPROVE)

    def get_search_results(self, request, queryset, search_term):
        return search_by_shape(queryset, search_term, number=("pk",))

    @display(
        description="Status",
        label={"Awaiting approval": "warning", "Refunded": "success", "Rejected": "danger"},
        ordering="status",
    )
    def display_status(self, obj):
        return obj.get_status_display()

    @display(description="Amount", ordering="amount")
    def display_amount(self, obj):
        return f"{obj.amount} {obj.currency}"

    approve = step_action(
        "approve",
        Step(
            title="Approve and refund",
            call=lambda request_, actor, data: refunds.refund_request_approve(request=request_, actor=actor),
            success="{obj} is made.",
            done_state=RR.REFUNDED,
        ),
        icon="check_circle",
        permissions=[APPROVE],
    )

    reject = step_action(
        "reject",
        Step(
            title="Reject",
            call=lambda request_, actor, data: refunds.refund_request_reject(
                request=request_, actor=actor, reason=data["reason"]
            ),
            success="{obj}: nothing was refunded.",
            reason="required",
            done_state=RR.REJECTED,
            danger=True,
        ),
        icon="block",
        permissions=[APPROVE],
        variant=ActionVariant.DANGER,
    )
