from django import forms
from django.contrib import admin
from unfold.contrib.filters.admin import ChoicesDropdownFilter, RangeNumericFilter
from unfold.decorators import action, display
from unfold.enums import ActionVariant
from unfold.widgets import UnfoldAdminDecimalFieldWidget, UnfoldAdminRadioSelectWidget

from marketplace.bookings import services
from marketplace.bookings.models import Booking
from marketplace.bookings.resources import BookingExportResource
from marketplace.bookings.selectors import booking_for_user
from marketplace.core.admin import Step, WorkflowAdmin, offered_in, step_action
from marketplace.core.admin_filters import DayRangeFilter, ScopedAutocompleteFilter, search_by_shape
from marketplace.core.exceptions import InvalidInput
from marketplace.ledger.selectors import booking_money
from marketplace.payments.services import checkout, refunds
from marketplace.transfers.admin import ScopedExportMixin

S = Booking.Status
OPERATE = "bookings.operate_booking"

STATE_COLOURS = {
    S.REQUESTED.label: "info",
    S.PENDING_PAYMENT.label: "warning",
    S.AUTHORIZED.label: "warning",
    S.ACCEPTED.label: "info",
    S.IN_PROGRESS.label: "info",
    S.COMPLETED.label: "success",
    S.CLOSED.label: "success",
    S.RESOLVED.label: "success",
    S.DISPUTED.label: "danger",
    S.DECLINED.label: "danger",
    S.EXPIRED.label: "danger",
    S.CANCELLED.label: "danger",
}


@admin.register(Booking)
class BookingAdmin(ScopedExportMixin, WorkflowAdmin):
    export_resource_class = BookingExportResource
    scope = staticmethod(booking_for_user)
    list_display = [
        "id",
        "display_status",
        "listing",
        "client",
        "partner",
        "display_amount",
        "display_platform_fee",
        "starts_at",
        "created_at",
    ]
    # A million rows: no filter lists the table's distinct values (partners, categories, listings
    # and clients are chosen through their admins' autocomplete, in the user's scope).
    list_filter = [
        ("status", ChoicesDropdownFilter),
        ("partner", ScopedAutocompleteFilter),
        ("category", ScopedAutocompleteFilter),
        ("listing", ScopedAutocompleteFilter),
        ("client", ScopedAutocompleteFilter),
        ("amount", RangeNumericFilter),
        ("starts_at", DayRangeFilter),
        ("created_at", DayRangeFilter),
    ]
    list_filter_submit = True
    # What get_search_results tries, by the term's shape: the booking id (the primary key), the
    # client's exact email (the unique index, then booking_client_idx), the start of the listing's
    # title. Never a substring search over the bookings: at this size that is a full scan.
    search_fields = ["=id", "=client__email", "^listing__title"]
    search_help_text = "Booking id, client's email address, or the start of the listing's title."
    list_select_related = ("listing", "client", "partner")
    ordering = ("-created_at", "-id")
    actions_detail = ["accept", "decline", "complete", "cancel", "refund"]
    step_offered = {
        **{name: offered_in(services.TRANSITIONS, name) for name in services.TRANSITIONS},
        # A manual refund applies to money captured and kept: a booking that has run its course.
        "refund": offered_in(services.TRANSITIONS, "dispute", "close"),
    }

    def get_search_results(self, request, queryset, search_term):
        return search_by_shape(
            queryset, search_term, number=("pk",), email=("client__email",), text=("listing__title__istartswith",)
        )

    def change_page_panels(self, request, obj) -> dict:
        return {"money": booking_money(obj.pk)}

    @display(description="Status", label=STATE_COLOURS, ordering="status")
    def display_status(self, obj):
        return obj.get_status_display()

    @display(description="Amount", ordering="amount")
    def display_amount(self, obj):
        return f"{obj.amount} {obj.currency}"

    @display(description="Platform fee", ordering="platform_fee")
    def display_platform_fee(self, obj):
        return f"{obj.platform_fee} {obj.currency}"

    # Each step: a button (shown to operators), a confirmation page, one service call. The service
    # checks the state and the operator's scope and says why a step does not apply now.
    accept = step_action(
        "accept",
        Step(
            title="Accept",
            call=lambda booking, actor, data: checkout.booking_accept(booking=booking, actor=actor),
            success="{obj} is accepted; the payment is captured.",
            done_state=S.ACCEPTED,
        ),
        icon="check_circle",
        permissions=[OPERATE],
    )

    decline = step_action(
        "decline",
        Step(
            title="Decline",
            call=lambda booking, actor, data: checkout.booking_decline(
                booking=booking, actor=actor, reason=data["reason"]
            ),
            success="{obj} is declined; any authorisation is released.",
            reason="required",
            done_state=S.DECLINED,
        ),
        icon="do_not_disturb_on",
        permissions=[OPERATE],
    )

    complete = step_action(
        "complete",
        Step(
            title="Complete",
            call=lambda booking, actor, data: services.booking_complete(
                booking=booking, actor=actor, reason=data["reason"]
            ),
            success="{obj} is completed.",
            reason="optional",
            done_state=S.COMPLETED,
        ),
        icon="task_alt",
        permissions=[OPERATE],
    )

    @action(
        description="Cancel booking",
        icon="block",
        permissions=[OPERATE],
        url_path="cancel",
        variant=ActionVariant.DANGER,
    )
    def cancel(self, request, object_id):
        booking = self.get_object(request, object_id)
        policy = checkout.booking_cancellation_refund(booking=booking) if booking is not None else None
        currency = booking.currency if booking is not None else ""

        def call(booking, actor, data):
            amount = data["refund_amount"] if data["refund"] == "amount" else None
            if data["refund"] == "amount" and amount is None:
                raise InvalidInput("Enter the refund amount, or choose the policy refund.")
            return checkout.booking_cancel(booking=booking, actor=actor, reason=data["reason"], refund_amount=amount)

        return self.workflow(
            request,
            object_id,
            Step(
                title="Cancel booking",
                call=call,
                success="{obj} is cancelled.",
                reason="required",
                fields={
                    "refund": forms.ChoiceField(
                        label="Refund to the client",
                        choices=[
                            ("policy", f"The cancellation policy's refund: {policy} {currency}"),
                            ("amount", "Another amount (at most what is left on the payment)"),
                        ],
                        initial="policy",
                        widget=UnfoldAdminRadioSelectWidget,
                    ),
                    "refund_amount": forms.DecimalField(
                        label=f"Refund amount ({currency})",
                        required=False,
                        min_value=0,
                        max_digits=12,
                        decimal_places=2,
                        widget=UnfoldAdminDecimalFieldWidget,
                    ),
                },
                done_state=S.CANCELLED,
                danger=True,
            ),
        )

    def has_refund_payment_permission(self, request, object_id=None):
        # Operators and whoever decides on refunds (Finance); the service checks scope and threshold.
        return request.user.has_perm(OPERATE) or request.user.has_perm(refunds.APPROVE_PERMISSION)

    @action(description="Refund", icon="currency_exchange", permissions=["refund_payment"], url_path="refund")
    def refund(self, request, object_id):
        """Refund part of the captured payment by hand (Finance, leads): the one refund rule applies, so
        an amount above the second-approval threshold waits for a second person."""
        booking = self.get_object(request, object_id)
        currency = booking.currency if booking is not None else ""

        def call(booking, actor, data):
            return refunds.refund_manual(
                payment=booking.payment, amount=data["amount"], actor=actor, reason=data["reason"]
            )

        return self.workflow(
            request,
            object_id,
            Step(
                title="Refund",
                call=call,
                success="{obj}.",
                reason="required",
                fields={
                    "amount": forms.DecimalField(
                        label=f"Amount to refund ({currency})",
                        min_value=0,
                        max_digits=12,
                        decimal_places=2,
                        widget=UnfoldAdminDecimalFieldWidget,
                    ),
                },
            ),
        )
