"""Manual balance adjustments in the admin: Finance adds one with a reason (the service posts it, or
holds it for a second person above the threshold); a second person approves or rejects it."""

from django import forms
from django.conf import settings
from django.contrib import admin
from unfold.contrib.filters.admin import ChoicesDropdownFilter
from unfold.decorators import display
from unfold.enums import ActionVariant

from marketplace.core.admin import ServiceFormMixin, Step, WorkflowAdmin, step_action
from marketplace.core.admin_filters import DayRangeFilter, ScopedAutocompleteFilter, search_by_shape
from marketplace.partners.selectors import partner_for_user
from marketplace.payouts import adjustments
from marketplace.payouts.models import BalanceAdjustment
from marketplace.payouts.selectors import adjustment_for_user

ST = BalanceAdjustment.Status


def _waiting(obj):
    return obj.status == ST.AWAITING_APPROVAL


class AdjustmentForm(forms.ModelForm):
    currency = forms.ChoiceField(choices=[])

    class Meta:
        model = BalanceAdjustment
        fields = ["partner", "amount", "currency", "reason"]
        help_texts = {"amount": "Positive credits the partner (paid with their next payout); negative debits them."}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["currency"].choices = [(c, c) for c in settings.MARKETPLACE_CURRENCIES]


@admin.register(BalanceAdjustment)
class BalanceAdjustmentAdmin(ServiceFormMixin, WorkflowAdmin):
    scope = staticmethod(adjustment_for_user)
    form = AdjustmentForm
    list_display = ["id", "display_status", "partner", "display_amount", "requested_by", "approved_by", "created_at"]
    list_filter = [
        ("status", ChoicesDropdownFilter),
        ("partner", ScopedAutocompleteFilter),
        ("created_at", DayRangeFilter),
    ]
    list_filter_submit = True
    list_select_related = ("partner", "requested_by", "approved_by")
    search_fields = ["=id", "^partner__name"]
    search_help_text = "Adjustment id, or the start of the partner's name."
    ordering = ("-created_at", "-id")
    autocomplete_fields = ["partner"]
    actions_detail = ["approve", "reject"]
    step_offered = {"approve": _waiting, "reject": _waiting}

    def get_search_results(self, request, queryset, search_term):
        return search_by_shape(queryset, search_term, number=("pk",), text=("partner__name__istartswith",))

    def has_add_permission(self, request):
        return request.user.has_perm("payouts.add_balanceadjustment")

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["partner", "amount", "currency", "reason"]
        return ["partner", "amount", "currency", "reason", "status", "requested_by", "approved_by", "decided_at"]

    def get_readonly_fields(self, request, obj=None):
        return [] if obj is None else self.get_fields(request, obj)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "partner":
            kwargs["queryset"] = partner_for_user(request.user)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def form_save_service(self, request, form, change):
        data = form.cleaned_data
        return adjustments.adjustment_create(
            partner=data["partner"],
            amount=data["amount"],
            currency=data["currency"],
            reason=data["reason"],
            actor=request.user,
        )

    @display(
        description="Status",
        label={"Awaiting approval": "warning", "Posted": "success", "Rejected": "danger"},
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
            title="Approve and post",
            call=lambda adjustment, actor, data: adjustments.adjustment_approve(adjustment=adjustment, actor=actor),
            success="{obj} is posted to the ledger.",
            done_state=ST.POSTED,
        ),
        icon="check_circle",
        permissions=["payouts.approve_balanceadjustment"],
    )

    reject = step_action(
        "reject",
        Step(
            title="Reject",
            call=lambda adjustment, actor, data: adjustments.adjustment_reject(
                adjustment=adjustment, actor=actor, reason=data["reason"]
            ),
            success="{obj} is rejected; nothing was posted.",
            reason="required",
            done_state=ST.REJECTED,
            danger=True,
        ),
        icon="block",
        permissions=["payouts.approve_balanceadjustment"],
        variant=ActionVariant.DANGER,
    )
