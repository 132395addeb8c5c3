from django.contrib import admin

from marketplace.core.admin import ScopedReadOnlyAdmin
from marketplace.payouts.models import Payout
from marketplace.payouts.selectors import payout_for_user


@admin.register(Payout)
class PayoutAdmin(ScopedReadOnlyAdmin):
    scope = staticmethod(payout_for_user)
    list_display = ["id", "status", "partner", "amount", "currency", "hold_until", "requested_by", "approved_by"]
    list_filter = ["status"]
    list_select_related = ("partner", "requested_by", "approved_by")
    ordering = ("-created_at", "-id")
