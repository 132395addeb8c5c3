"""The email outbox for operations: what was sent, what failed, and what a person must check."""

from django.contrib import admin, messages
from unfold.contrib.filters.admin import ChoicesDropdownFilter
from unfold.decorators import action, display

from marketplace.core.admin import ScopedReadOnlyAdmin
from marketplace.core.admin_filters import DayRangeFilter, search_by_shape
from marketplace.core.exceptions import ApplicationError
from marketplace.notifications.models import EmailOutbox
from marketplace.notifications.services import email_outbox_mark_sent, email_outbox_retry


@admin.register(EmailOutbox)
class EmailOutboxAdmin(ScopedReadOnlyAdmin):
    list_display = ["id", "to", "subject", "template", "display_status", "attempts", "next_attempt_at", "created_at"]
    list_filter = [
        ("status", ChoicesDropdownFilter),
        ("created_at", DayRangeFilter),
        ("next_attempt_at", DayRangeFilter),
    ]
    list_filter_submit = True
    # What get_search_results tries, by the term's shape: the email id, the recipient's exact
    # address, the exact dedupe key (unique) or the start of the subject.
    search_fields = ["=id", "=to", "=dedupe_key", "^subject"]
    search_help_text = "Email id, the recipient's address, the dedupe key exactly, or the start of the subject."
    ordering = ("-created_at", "-id")
    readonly_fields = [f.name for f in EmailOutbox._meta.fields]
    actions = ["retry", "mark_sent"]

    @display(
        description="Status",
        label={"pending": "info", "sent": "success", "failed": "danger", "sending": "warning"},
        ordering="status",
    )
    def display_status(self, obj):
        return obj.status

    def get_search_results(self, request, queryset, search_term):
        return search_by_shape(
            queryset, search_term, number=("pk",), email=("to",), text=("dedupe_key", "subject__istartswith")
        )

    def has_retry_permission(self, request, obj=None):
        return request.user.has_perm("notifications.change_emailoutbox")

    def has_mark_sent_permission(self, request, obj=None):
        return request.user.has_perm("notifications.change_emailoutbox")

    def _each(self, request, queryset, service, done: str):
        count = 0
        for outbox in queryset.order_by("pk"):
            try:
                service(outbox=outbox, actor=request.user, reason="From the email outbox admin.")
                count += 1
            except ApplicationError as exc:
                self.message_user(request, str(exc), messages.WARNING)
        if count:
            self.message_user(request, f"{count} email(s) {done}.", messages.SUCCESS)

    @action(description="Send again (failed, or stuck and checked not to have gone out)", permissions=["retry"])
    def retry(self, request, queryset):
        self._each(request, queryset, email_outbox_retry, "queued again")

    @action(description="Mark as sent (stuck, and checked to have gone out)", permissions=["mark_sent"])
    def mark_sent(self, request, queryset):
        self._each(request, queryset, email_outbox_mark_sent, "marked as sent")
