from django.contrib import admin

from marketplace.audit.models import Event
from marketplace.core.admin import ScopedReadOnlyAdmin
from marketplace.partners.selectors import scope_is_global


@admin.register(Event)
class EventAdmin(ScopedReadOnlyAdmin):
    list_display = ["created_at", "verb", "actor", "target_type", "target_id", "from_state", "to_state"]
    list_filter = ["verb"]
    list_select_related = ("actor", "target_type")
    ordering = ("-created_at", "-id")

    # The whole audit log spans every partner, so only unscoped staff (leads, finance) read it here;
    # scoped staff see an object's own events on its page.
    def has_module_permission(self, request):
        return scope_is_global(request.user) and request.user.has_perm("audit.view_event")

    def has_view_permission(self, request, obj=None):
        return self.has_module_permission(request)
