from django.contrib import admin

from marketplace.core.admin import ScopedReadOnlyAdmin
from marketplace.disputes.models import Dispute
from marketplace.disputes.selectors import dispute_for_user


@admin.register(Dispute)
class DisputeAdmin(ScopedReadOnlyAdmin):
    scope = staticmethod(dispute_for_user)
    list_display = ["id", "status", "booking", "partner", "reason_code", "assignee", "sla_due_at", "created_at"]
    list_filter = ["status", "reason_code"]
    list_select_related = ("booking", "partner", "assignee")
    ordering = ("created_at", "id")
