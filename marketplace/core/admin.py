"""Shared admin base: every marketplace changelist reads through its model's scope selector."""

from django.http import Http404
from unfold.admin import ModelAdmin


class ScopedReadOnlyAdmin(ModelAdmin):
    """A read-only admin whose rows come from `scope(user)`, the model's `<model>_for_user` selector.

    Writes go through the services (admin actions, added with the workflows), never through the
    change form, so the form is read-only and add/delete are off.
    """

    scope = None  # a callable user -> queryset
    list_select_related = ()
    show_full_result_count = False

    def get_queryset(self, request):
        qs = type(self).scope(request.user) if type(self).scope else super().get_queryset(request)
        if self.list_select_related:
            qs = qs.select_related(*self.list_select_related)
        return qs.order_by(*(self.ordering or ("-pk",)))

    def _get_obj_does_not_exist_redirect(self, request, opts, object_id):
        # Django redirects to the changelist for a missing object; an object outside the user's
        # scope is indistinguishable from a missing one, and both answer 404.
        raise Http404(f"No {opts.verbose_name} with id {object_id!r} in your scope.")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


# django-q2's tasks, failures and schedules in the unfold theme.
from marketplace.core import q_admin  # noqa: E402, F401
