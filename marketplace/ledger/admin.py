import json

from django.contrib import admin
from django.utils.html import format_html
from unfold.contrib.filters.admin import BooleanRadioFilter, ChoicesDropdownFilter, RangeNumericFilter
from unfold.decorators import display

from marketplace.core.admin import ScopedReadOnlyAdmin
from marketplace.core.admin_filters import DayRangeFilter, ScopedAutocompleteFilter, search_by_shape
from marketplace.ledger.models import LedgerEntry, ReconciliationCheck
from marketplace.partners.selectors import scope_is_global


@admin.register(LedgerEntry)
class LedgerEntryAdmin(ScopedReadOnlyAdmin):
    list_display = ["id", "transaction", "account", "partner", "amount", "currency", "created_at"]
    list_filter = [
        ("account", ChoicesDropdownFilter),
        ("transaction__kind", ChoicesDropdownFilter),
        ("partner", ScopedAutocompleteFilter),
        ("amount", RangeNumericFilter),
        ("created_at", DayRangeFilter),
    ]
    list_filter_submit = True
    # What get_search_results tries, by the term's shape: the entry's or its transaction's id, the
    # transaction's idempotency key (unique) or source reference (indexed), exactly: the ledger is
    # the biggest table, so no substring search.
    search_fields = ["=id", "=transaction__id", "=transaction__idempotency_key", "=transaction__source"]
    search_help_text = "Entry or transaction id, or a transaction's idempotency key or source, exactly."
    list_select_related = ("transaction", "partner")
    ordering = ("-id",)

    # Ledger entries span every partner: only unscoped staff (finance, leads) read them.
    def has_module_permission(self, request):
        return scope_is_global(request.user) and request.user.has_perm("ledger.view_ledgerentry")

    def get_search_results(self, request, queryset, search_term):
        return search_by_shape(
            queryset,
            search_term,
            number=("pk", "transaction_id"),
            text=("transaction__idempotency_key", "transaction__source"),
        )

    def has_view_permission(self, request, obj=None):
        return self.has_module_permission(request)


@admin.register(ReconciliationCheck)
class ReconciliationCheckAdmin(ScopedReadOnlyAdmin):
    """The outcomes of the scheduled reconciliation, newest first; a failed check stands out in red."""

    list_display = ["ran_at", "display_state", "display_mismatches", "display_unbalanced", "duration"]
    list_filter = [("balanced", BooleanRadioFilter), ("ran_at", DayRangeFilter)]
    list_filter_submit = True
    search_fields = ["=id"]  # one check a night: found by date (the filter) or by its number
    search_help_text = "Check id."
    ordering = ("-ran_at", "-id")
    fields = ["ran_at", "display_state", "duration", "display_totals", "display_mismatch_list", "display_unbalanced"]
    readonly_fields = fields

    def has_module_permission(self, request):
        return scope_is_global(request.user) and request.user.has_perm("ledger.view_reconciliationcheck")

    def has_view_permission(self, request, obj=None):
        return self.has_module_permission(request)

    def get_search_results(self, request, queryset, search_term):
        return search_by_shape(queryset, search_term, number=("pk",))

    @display(description="State", label={"Balanced": "success", "Mismatch": "danger"}, ordering="balanced")
    def display_state(self, obj):
        return "Balanced" if obj.balanced else "Mismatch"

    @display(description="Mismatches")
    def display_mismatches(self, obj):
        return len(obj.mismatches)

    @display(description="Unbalanced transactions")
    def display_unbalanced(self, obj):
        return ", ".join(str(pk) for pk in obj.unbalanced_transaction_ids) or "-"

    @display(description="Totals")
    def display_totals(self, obj):
        return format_html("<pre>{}</pre>", json.dumps(obj.totals, indent=2))

    @display(description="Mismatch details")
    def display_mismatch_list(self, obj):
        return format_html("<pre>{}</pre>", json.dumps(obj.mismatches, indent=2)) if obj.mismatches else "-"
