import json

from django.contrib import admin, messages
from django.db import transaction
from django.utils import timezone
from django.utils.html import format_html
from unfold.admin import TabularInline
from unfold.contrib.filters.admin import ChoicesDropdownFilter, RadioFilter, RangeNumericFilter
from unfold.decorators import action, display
from unfold.enums import ActionVariant

from marketplace.core.admin import ScopedReadOnlyAdmin, Step, WorkflowAdmin, offered_in, step_action
from marketplace.core.admin_filters import DayRangeFilter, ScopedAutocompleteFilter, search_by_shape
from marketplace.core.exceptions import ApplicationError, TransitionNotAllowed
from marketplace.partners.selectors import scope_is_global
from marketplace.payouts import services
from marketplace.payouts.models import Payout, PayoutAttempt, PayoutRun
from marketplace.payouts.resources import PayoutExportResource
from marketplace.payouts.selectors import payout_awaiting_approval_for, payout_for_user
from marketplace.transfers.admin import ScopedExportMixin

S = Payout.Status

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


class WaitingForMyApprovalFilter(RadioFilter):
    """Payouts the user could approve now: in scope, awaiting approval, not requested by them."""

    title = "approval"
    parameter_name = "approval"

    def lookups(self, request, model_admin):
        return [("mine", "Waiting for my approval")]

    def queryset(self, request, queryset):
        if self.value() == "mine":
            return queryset.filter(pk__in=payout_awaiting_approval_for(request.user).values("pk"))
        return queryset


@admin.register(Payout)
class PayoutAdmin(ScopedExportMixin, WorkflowAdmin):
    export_resource_class = PayoutExportResource
    scope = staticmethod(payout_for_user)
    list_display = [
        "id",
        "display_status",
        "partner",
        "amount",
        "carried",
        "currency",
        "hold_until",
        "requested_by",
        "attempt_count",
        "next_retry_at",
        "failure_reason",
        "run",
    ]
    list_filter = [
        WaitingForMyApprovalFilter,
        ("status", ChoicesDropdownFilter),
        # Chosen through the partners' autocomplete, which reads through the user's partner scope
        # (a RelatedOnlyFieldListFilter listed the payouts' distinct partners: a scan of the table).
        ("partner", ScopedAutocompleteFilter),
        ("amount", RangeNumericFilter),
        ("created_at", DayRangeFilter),
        ("hold_until", DayRangeFilter),
    ]
    list_filter_submit = True
    # What get_search_results tries, by the term's shape: the payout id, the requester's exact email,
    # the gateway's reference or the start of the partner's name.
    search_fields = ["=id", "=requested_by__email", "=gateway_reference", "^partner__name"]
    search_help_text = "Payout id, requester's email address, gateway reference, or the start of the partner's name."
    list_select_related = ("partner", "requested_by", "run")
    ordering = ("-created_at", "-id")
    inlines = [PayoutAttemptInline]
    actions = ["approve_selected"]
    actions_detail = ["hold", "release_hold", "request_approval", "approve", "reject", "retry", "cancel"]
    step_offered = {
        **{name: offered_in(services.TRANSITIONS, name) for name in services.TRANSITIONS},
        "release_hold": offered_in(services.TRANSITIONS, "release"),
    }

    def get_search_results(self, request, queryset, search_term):
        return search_by_shape(
            queryset,
            search_term,
            number=("pk",),
            email=("requested_by__email",),
            text=("gateway_reference", "partner__name__istartswith"),
        )

    @display(description="Status", label=STATE_COLOURS, ordering="status")
    def display_status(self, obj):
        return obj.get_status_display()

    # Who sees a button: the model permission only, whatever the payout's state, so that a second
    # click still reaches the service and is told "already". The service checks scope and state.
    def has_hold_payout_permission(self, request, object_id=None):
        return request.user.has_perm(services.HOLD_PERMISSION)

    def has_change_payout_permission(self, request, object_id=None):
        return request.user.has_perm(services.CHANGE_PERMISSION)

    def has_approve_payout_permission(self, request, object_id=None):
        return request.user.has_perm("payouts.approve_payout")

    # Each step: a button, a confirmation page, one service call. The service says why a step does
    # not apply in the payout's state.
    @action(description="Hold", icon="pause_circle", permissions=["hold_payout"], url_path="hold")
    def hold(self, request, object_id):
        # A payout already on hold keeps the extra hold: a second click changes nothing visible.
        return self.workflow(
            request,
            object_id,
            Step(
                title="Hold",
                call=lambda payout, actor, data: services.payout_hold(
                    payout=payout, actor=actor, reason=data["reason"]
                ),
                success="{obj} is on hold.",
                reason="required",
            ),
        )

    @action(description="Release hold", icon="play_circle", permissions=["hold_payout"], url_path="release-hold")
    def release_hold(self, request, object_id):
        # Released, the payout accrues until its hold period is over, then it is ready: that is
        # the state a second click finds.
        payout = self.get_object(request, object_id)
        released_to = S.READY if payout and payout.hold_until <= timezone.now() else S.ACCRUING
        return self.workflow(
            request,
            object_id,
            Step(
                title="Release hold",
                call=lambda payout, actor, data: services.payout_release_hold(
                    payout=payout, actor=actor, reason=data["reason"]
                ),
                success="{obj}: hold released.",
                reason="optional",
                done_state=released_to,
            ),
        )

    request_approval = step_action(
        "request_approval",
        Step(
            title="Request approval",
            call=lambda payout, actor, data: services.payout_request_approval(
                payout=payout, actor=actor, note=data["reason"]
            ),
            success="{obj} is awaiting a second person's approval.",
            reason="optional",
            reason_label="Note for the approver",
            done_state=S.AWAITING_APPROVAL,
        ),
        icon="send",
        permissions=["change_payout"],
    )

    approve = step_action(
        "approve",
        Step(
            title="Approve",
            call=lambda payout, actor, data: services.payout_approve(payout=payout, actor=actor),
            success="{obj} is approved.",
            done_state=S.APPROVED,
        ),
        icon="check_circle",
        permissions=["approve_payout"],
    )

    reject = step_action(
        "reject",
        Step(
            title="Reject",
            call=lambda payout, actor, data: services.payout_reject(payout=payout, actor=actor, reason=data["reason"]),
            success="{obj} is rejected: back to ready, its approval must be requested again.",
            reason="required",
            done_state=S.READY,
        ),
        icon="undo",
        permissions=["approve_payout"],
    )

    retry = step_action(
        "retry",
        Step(
            title="Retry",
            call=lambda payout, actor, data: services.payout_retry(payout=payout, actor=actor),
            success="{obj} is ready again; its next submission is a new attempt.",
            done_state=S.READY,
        ),
        icon="replay",
        permissions=["change_payout"],
    )

    cancel = step_action(
        "cancel",
        Step(
            title="Cancel payout",
            call=lambda payout, actor, data: services.payout_cancel(payout=payout, actor=actor, reason=data["reason"]),
            success="{obj} is cancelled; its bookings can be paid by a later payout.",
            reason="required",
            done_state=S.CANCELLED,
            danger=True,
        ),
        icon="block",
        permissions=["change_payout"],
        variant=ActionVariant.DANGER,
    )

    # The changelist action: Django hands it the selected rows of the scoped changelist queryset.
    @action(description="Approve selected payouts", permissions=["approve_payout"])
    def approve_selected(self, request, queryset):
        """Approve each payout in its own transaction; one refusal does not undo the others.

        Ends with one message: how many were approved, and each refused payout with the
        service's reason. Payouts found already approved (a second submission) are named apart.
        """
        approved, already, refused = [], [], []
        for payout in queryset.order_by("pk"):
            try:
                with transaction.atomic():
                    services.payout_approve(payout=payout, actor=request.user)
            except TransitionNotAllowed as exc:
                if exc.state == S.APPROVED:
                    already.append(payout.pk)
                else:
                    refused.append((payout.pk, exc.message))
            except ApplicationError as exc:
                refused.append((payout.pk, exc.message))
            else:
                approved.append(payout.pk)
        messages.add_message(request, _summary_level(approved, already, refused), _summary(approved, already, refused))


def _ids(pks) -> str:
    return ", ".join(f"#{pk}" for pk in pks)


def _summary(approved, already, refused) -> str:
    """E.g. "Approved 1 of 3 payouts: #5. Refused 2: #6 (You requested payout #6; ...); #7 (...)"."""
    total = len(approved) + len(already) + len(refused)
    parts = [
        f"Approved {len(approved)} of {total} payout{'s' if total != 1 else ''}"
        + (f": {_ids(approved)}." if approved else ".")
    ]
    if already:
        parts.append(f"Already approved, nothing to do: {_ids(already)}.")
    if refused:
        parts.append(f"Refused {len(refused)}: " + "; ".join(f"#{pk} ({reason})" for pk, reason in refused))
    return " ".join(parts)


def _summary_level(approved, already, refused) -> int:
    if refused:
        return messages.WARNING if approved else messages.ERROR
    return messages.SUCCESS if approved else messages.INFO


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
    list_filter = [("status", ChoicesDropdownFilter), ("started_at", DayRangeFilter)]
    list_filter_submit = True
    search_fields = ["=id"]  # runs are few; a run is found by its number
    search_help_text = "Run id."
    ordering = ("-started_at", "-id")
    readonly_fields = ["display_report"]

    # A run spans every partner: only unscoped staff (finance, leads) read runs.
    def has_module_permission(self, request):
        return scope_is_global(request.user) and request.user.has_perm("payouts.view_payoutrun")

    def has_view_permission(self, request, obj=None):
        return self.has_module_permission(request)

    def get_search_results(self, request, queryset, search_term):
        return search_by_shape(queryset, search_term, number=("pk",))

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


# Balance adjustments have their own admin module (payouts/adjustment_admin.py); importing it here
# registers it when Django autodiscovers admin modules.
from marketplace.payouts import adjustment_admin  # noqa: E402, F401
