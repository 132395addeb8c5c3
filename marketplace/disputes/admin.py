from datetime import timedelta

from django import forms
from django.conf import settings
from django.contrib import admin
from django.contrib.auth.models import Permission
from django.db.models import Q
from django.utils import timezone
from unfold.contrib.filters.admin import ChoicesDropdownFilter, RadioFilter, RangeNumericFilter
from unfold.decorators import action, display
from unfold.enums import ActionVariant
from unfold.widgets import (
    UnfoldAdminDecimalFieldWidget,
    UnfoldAdminRadioSelectWidget,
    UnfoldAdminSelectWidget,
    UnfoldAdminSplitDateTimeWidget,
    UnfoldAdminTextInputWidget,
)

from marketplace.accounts.models import User
from marketplace.core.admin import Step, WorkflowAdmin, offered_in, step_action
from marketplace.core.admin_filters import DayRangeFilter, ScopedAutocompleteFilter, search_by_shape
from marketplace.disputes import services
from marketplace.disputes.models import Dispute
from marketplace.disputes.resources import DisputeExportResource
from marketplace.disputes.selectors import dispute_for_user
from marketplace.ledger.selectors import booking_money
from marketplace.transfers.admin import ScopedExportMixin

S = Dispute.Status
HANDLE = services.HANDLE_PERMISSION
RESOLVE = services.RESOLVE_PERMISSION
ASSIGN = "disputes.assign_dispute"
APPROVE = "disputes.approve_refund"

STATE_COLOURS = {
    S.OPENED.label: "info",
    S.AWAITING_RESPONSE.label: "warning",
    S.UNDER_REVIEW.label: "info",
    S.ESCALATED.label: "danger",
    S.RESOLVED_RELEASE.label: "success",
    S.RESOLVED_PARTIAL_REFUND.label: "success",
    S.RESOLVED_FULL_REFUND.label: "success",
    S.WITHDRAWN.label: "success",
    "Awaiting approval": "warning",
}
OUTCOME_CHOICES = [
    ("release", "Release the money to the provider"),
    ("partial_refund", "Refund part of the payment"),
    ("full_refund", "Refund all that is left on the payment"),
]


def dispute_handlers():
    """Active staff who may handle disputes (`disputes.change_dispute` directly or through a group)."""
    app_label, codename = HANDLE.split(".")
    permission = Permission.objects.filter(content_type__app_label=app_label, codename=codename)
    has_it = Q(is_superuser=True) | Q(user_permissions__in=permission) | Q(groups__permissions__in=permission)
    ids = User.objects.filter(has_it, is_active=True, is_staff=True).values("pk")
    return User.objects.filter(pk__in=ids).order_by("full_name", "email")


class HandlerChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj):
        return f"{obj.full_name} ({obj.email})" if obj.full_name else obj.email


class AssignmentFilter(RadioFilter):
    """The two questions the assignee autocomplete cannot ask: mine, and nobody's."""

    title = "assignment"
    parameter_name = "assignment"

    def lookups(self, request, model_admin):
        return [("mine", "Assigned to me"), ("none", "Unassigned")]

    def queryset(self, request, queryset):
        if self.value() == "mine":
            return queryset.filter(assignee=request.user)
        if self.value() == "none":
            return queryset.filter(assignee__isnull=True)
        return queryset


@admin.register(Dispute)
class DisputeAdmin(ScopedExportMixin, WorkflowAdmin):
    export_resource_class = DisputeExportResource
    scope = staticmethod(dispute_for_user)
    list_display = [
        "id",
        "display_status",
        "booking",
        "partner",
        "reason_code",
        "display_amount",
        "display_refund",
        "assignee",
        "sla_due_at",
        "created_at",
    ]
    list_filter = [
        AssignmentFilter,
        ("status", ChoicesDropdownFilter),
        ("reason_code", ChoicesDropdownFilter),
        ("partner", ScopedAutocompleteFilter),
        ("assignee", ScopedAutocompleteFilter),
        ("booking__amount", RangeNumericFilter),
        ("created_at", DayRangeFilter),
        ("sla_due_at", DayRangeFilter),
    ]
    list_filter_submit = True
    # What get_search_results tries, by the term's shape: the dispute's or its booking's id, the
    # opener's exact email, the start of the listing's title.
    search_fields = ["=id", "=booking__id", "=opened_by__email", "^booking__listing__title"]
    search_help_text = "Dispute or booking id, the email address of who opened it, or the start of the listing's title."
    list_select_related = ("booking", "partner", "assignee")
    ordering = ("created_at", "id")
    actions_detail = [
        "assign",
        "request_response",
        "start_review",
        "escalate",
        "resolve",
        "approve_resolution",
        "withdraw",
    ]
    step_offered = {
        "assign": lambda dispute: dispute.status in services.OPEN,
        "request_response": offered_in(services.TRANSITIONS, "request_response"),
        "start_review": offered_in(services.TRANSITIONS, "start_review"),
        "escalate": offered_in(services.TRANSITIONS, "escalate"),
        "resolve": offered_in(services.TRANSITIONS, "resolve_release", "resolve_partial_refund", "resolve_full_refund"),
        "approve_resolution": lambda dispute: bool(dispute.proposed_outcome),
        "withdraw": offered_in(services.TRANSITIONS, "withdraw"),
    }

    def get_search_results(self, request, queryset, search_term):
        return search_by_shape(
            queryset,
            search_term,
            number=("pk", "booking_id"),
            email=("opened_by__email",),
            text=("booking__listing__title__istartswith",),
        )

    def change_page_panels(self, request, obj) -> dict:
        return {"money": booking_money(obj.booking_id)}

    @display(description="Status", label=STATE_COLOURS, ordering="status")
    def display_status(self, obj):
        if obj.proposed_outcome:
            return "Awaiting approval"
        return obj.get_status_display()

    @display(description="Booking amount", ordering="booking__amount")
    def display_amount(self, obj):
        return f"{obj.booking.amount} {obj.booking.currency}"

    @display(description="Refund")
    def display_refund(self, obj):
        if obj.proposed_outcome:
            return f"{obj.proposed_refund} {obj.booking.currency} proposed"
        if obj.refund_amount is not None:
            return f"{obj.refund_amount} {obj.booking.currency}"
        return "-"

    # Each step: a button (shown to holders of the permission), a confirmation page, one service
    # call. The service checks the state and the scope and says why a step does not apply now.
    assign = step_action(
        "assign",
        Step(
            title="Assign",
            call=lambda dispute, actor, data: services.dispute_assign(
                dispute=dispute, actor=actor, assignee=data["assignee"]
            ),
            success="{obj} is assigned to {obj.assignee}.",
            fields={
                "assignee": HandlerChoiceField(
                    label="Agent",
                    queryset=dispute_handlers(),
                    widget=UnfoldAdminSelectWidget,
                ),
            },
        ),
        icon="person_add",
        permissions=[ASSIGN],
    )

    @action(description="Request a response", icon="forum", permissions=[HANDLE], url_path="request-response")
    def request_response(self, request, object_id):
        default_due = timezone.now() + timedelta(hours=settings.MARKETPLACE_DISPUTE_RESPONSE_HOURS)
        return self.workflow(
            request,
            object_id,
            Step(
                title="Request a response",
                call=lambda dispute, actor, data: services.dispute_request_response(
                    dispute=dispute, actor=actor, due_at=data["due_at"]
                ),
                success="{obj}: the other party is asked to respond by {obj.response_due_at:%Y-%m-%d %H:%M} UTC.",
                fields={
                    "due_at": forms.SplitDateTimeField(
                        label="Respond by (UTC)",
                        initial=default_due.replace(second=0, microsecond=0),
                        widget=UnfoldAdminSplitDateTimeWidget,
                    ),
                },
                done_state=S.AWAITING_RESPONSE,
            ),
        )

    start_review = step_action(
        "start_review",
        Step(
            title="Start review",
            call=lambda dispute, actor, data: services.dispute_start_review(dispute=dispute, actor=actor),
            success="{obj} is under review; the SLA clock has started.",
            done_state=S.UNDER_REVIEW,
        ),
        icon="rate_review",
        permissions=[HANDLE],
    )

    escalate = step_action(
        "escalate",
        Step(
            title="Escalate",
            call=lambda dispute, actor, data: services.dispute_escalate(
                dispute=dispute, actor=actor, reason=data["reason"]
            ),
            success="{obj} is escalated.",
            reason="required",
            done_state=S.ESCALATED,
        ),
        icon="priority_high",
        permissions=[HANDLE],
    )

    @action(description="Resolve", icon="gavel", permissions=[RESOLVE], url_path="resolve")
    def resolve(self, request, object_id):
        dispute = self.get_object(request, object_id)
        payment = getattr(dispute.booking, "payment", None) if dispute is not None else None
        refundable, currency = (payment.refundable, payment.currency) if payment is not None else ("0.00", "")
        outcome = request.POST.get("outcome", "")

        def call(dispute, actor, data):
            result = services.dispute_resolve(
                dispute=dispute,
                actor=actor,
                outcome=data["outcome"],
                reason_code=data["reason_code"],
                note=data["reason"],
                refund_amount=data["refund_amount"] if data["outcome"] == "partial_refund" else None,
            )
            # Above the threshold the service only records a proposal: say so, not "resolved".
            if result.proposed_outcome:
                step.success = f"{{obj}}: a refund of {result.proposed_refund} {currency} is proposed; "
                step.success += "a second person must approve it."
            else:
                step.success = f"{{obj}} is resolved: {result.get_status_display().lower()}."
            return result

        step = Step(
            title="Resolve",
            call=call,
            reason="optional",
            reason_label="Note (sent to both parties)",
            fields={
                "outcome": forms.ChoiceField(
                    label="Outcome", choices=OUTCOME_CHOICES, widget=UnfoldAdminRadioSelectWidget
                ),
                "reason_code": forms.CharField(label="Reason code", max_length=32, widget=UnfoldAdminTextInputWidget),
                "refund_amount": forms.DecimalField(
                    label=f"Partial refund amount ({currency})",
                    help_text=f"{refundable} {currency} is left on the payment. A refund above "
                    f"{settings.MARKETPLACE_REFUND_SECOND_APPROVAL_ABOVE.get(currency)} {currency} needs a second person's approval.",
                    required=False,
                    max_digits=12,
                    decimal_places=2,
                    widget=UnfoldAdminDecimalFieldWidget,
                ),
            },
            # A double click posts the same outcome twice: the second finds the dispute resolved.
            done_state=services.OUTCOMES[outcome][1] if outcome in services.OUTCOMES else None,
        )
        return self.workflow(request, object_id, step)

    @action(
        description="Approve the proposed resolution",
        icon="verified",
        permissions=[APPROVE],
        url_path="approve-resolution",
    )
    def approve_resolution(self, request, object_id):
        dispute = self.get_object(request, object_id)
        # Once approved, the proposal is gone and the dispute is resolved: that is what a second
        # click finds.
        done = None
        if dispute is not None and dispute.proposed_outcome:
            done = services.OUTCOMES[dispute.proposed_outcome][1]
        elif dispute is not None and dispute.approved_by_id:
            done = dispute.status
        title = "Approve the proposed resolution"
        if dispute is not None and dispute.proposed_outcome:
            currency = dispute.booking.currency
            title = f"Approve a refund of {dispute.proposed_refund} {currency} proposed by {dispute.proposed_by}"
        return self.workflow(
            request,
            object_id,
            Step(
                title=title,
                call=lambda dispute, actor, data: services.dispute_approve_resolution(dispute=dispute, actor=actor),
                success="{obj}: the refund is approved and the dispute resolved.",
                done_state=done,
            ),
        )

    withdraw = step_action(
        "withdraw",
        Step(
            title="Withdraw",
            call=lambda dispute, actor, data: services.dispute_withdraw(
                dispute=dispute, actor=actor, reason=data["reason"]
            ),
            success="{obj} is withdrawn; the booking is completed again and its payout hold released.",
            reason="required",
            done_state=S.WITHDRAWN,
            danger=True,
        ),
        icon="undo",
        permissions=[RESOLVE],
        variant=ActionVariant.DANGER,
    )
