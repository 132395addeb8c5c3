from django.contrib import admin
from unfold.contrib.filters.admin import RelatedDropdownFilter, TextFilter

from marketplace.accounts.selectors import staff_timeline_q
from marketplace.audit.models import Event
from marketplace.core.admin import ScopedReadOnlyAdmin
from marketplace.core.admin_filters import DayRangeFilter, ScopedAutocompleteFilter, search_by_shape
from marketplace.partners.selectors import scope_is_global


class VerbFilter(TextFilter):
    """One verb, typed exactly (`booking.accepted`): equality reads audit_event_verb_idx, where a
    list of the verbs in use would be a `SELECT DISTINCT verb` over the whole log."""

    title = "verb"
    parameter_name = "verb"

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(verb=self.value().strip())
        return queryset


@admin.register(Event)
class EventAdmin(ScopedReadOnlyAdmin):
    list_display = ["created_at", "verb", "actor", "target_type", "target_id", "from_state", "to_state"]
    list_filter = [
        VerbFilter,
        # Content types are a few dozen rows: listing them all is cheap.
        ("target_type", RelatedDropdownFilter),
        ("actor", ScopedAutocompleteFilter),
        ("created_at", DayRangeFilter),
    ]
    list_filter_submit = True
    # What get_search_results tries, by the term's shape: the event id, the actor's exact email, the
    # exact verb. The log is large and append-only: no substring search. (A target's id alone has
    # no index, it leads with the target type: an object's events are on its own page.)
    search_fields = ["=id", "=actor__email", "=verb"]
    search_help_text = "Event id, the actor's email address, or a verb exactly."
    list_select_related = ("actor", "target_type")
    ordering = ("-created_at", "-id")

    # The whole audit log spans every partner, so only unscoped staff (leads, finance) read it here;
    # scoped staff see an object's own events on its page.
    def has_module_permission(self, request):
        return scope_is_global(request.user) and request.user.has_perm("audit.view_event")

    def has_view_permission(self, request, obj=None):
        return self.has_module_permission(request)

    def get_queryset(self, request):
        # Staff members' timelines (what they exported) only for holders of view_staff_timeline.
        queryset = super().get_queryset(request)
        if not request.user.has_perm("accounts.view_staff_timeline"):
            queryset = queryset.exclude(staff_timeline_q())
        return queryset

    def get_search_results(self, request, queryset, search_term):
        return search_by_shape(queryset, search_term, number=("pk",), email=("actor__email",), text=("verb",))
