from django.contrib import admin

from marketplace.core.admin import ScopedReadOnlyAdmin
from marketplace.ledger.models import LedgerEntry
from marketplace.partners.selectors import scope_is_global


@admin.register(LedgerEntry)
class LedgerEntryAdmin(ScopedReadOnlyAdmin):
    list_display = ["id", "transaction", "account", "partner", "amount", "currency", "created_at"]
    list_filter = ["account"]
    list_select_related = ("transaction", "partner")
    ordering = ("-id",)

    # Ledger entries span every partner: only unscoped staff (finance, leads) read them.
    def has_module_permission(self, request):
        return scope_is_global(request.user) and request.user.has_perm("ledger.view_ledgerentry")

    def has_view_permission(self, request, obj=None):
        return self.has_module_permission(request)
