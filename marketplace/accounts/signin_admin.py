"""Sign-in attempts in the operations admin (django-axes's rows, in unfold's look; axes's own admin
is off, AXES_ENABLE_ADMIN = False).

Both lists are read-only. Deleting an attempt row clears that lockout early: it needs
`axes.delete_accessattempt` (superusers and the Operations lead group).
"""

from axes.models import AccessAttempt, AccessLog
from django.conf import settings
from django.contrib import admin
from unfold.admin import ModelAdmin
from unfold.decorators import display


class ReadOnlyAdmin(ModelAdmin):
    """Nobody adds or edits these rows: axes writes them."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(AccessAttempt)
class AccessAttemptAdmin(ReadOnlyAdmin):
    list_display = ["username", "ip_address", "path_info", "failures_since_start", "attempt_time", "display_locked"]
    list_filter = ["path_info"]
    search_fields = ["username", "ip_address"]
    date_hierarchy = "attempt_time"
    ordering = ["-attempt_time"]
    fields = ["username", "ip_address", "user_agent", "path_info", "failures_since_start", "attempt_time"]
    readonly_fields = fields
    show_full_result_count = False

    @display(description="Pair locked", boolean=True)
    def display_locked(self, obj) -> bool:
        # This row's own pair; an IP can also be locked by the sum of its rows (SIGNIN_IP_FAILURE_LIMIT).
        return obj.failures_since_start >= settings.SIGNIN_FAILURE_LIMIT

    def has_delete_permission(self, request, obj=None):
        return request.user.has_perm("axes.delete_accessattempt")


@admin.register(AccessLog)
class AccessLogAdmin(ReadOnlyAdmin):
    list_display = ["username", "ip_address", "path_info", "attempt_time", "logout_time"]
    search_fields = ["username", "ip_address"]
    date_hierarchy = "attempt_time"
    ordering = ["-attempt_time"]
    fields = ["username", "ip_address", "user_agent", "path_info", "attempt_time", "logout_time"]
    readonly_fields = fields
    show_full_result_count = False

    def has_delete_permission(self, request, obj=None):
        return False
