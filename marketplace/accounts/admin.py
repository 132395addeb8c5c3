from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied
from unfold.admin import ModelAdmin
from unfold.contrib.filters.admin import BooleanRadioFilter, ChoicesDropdownFilter
from unfold.decorators import display
from unfold.forms import AdminPasswordChangeForm, UserChangeForm, UserCreationForm

from marketplace.accounts.access_admin import AuditedGroupAdminMixin, AuditedUserAdminMixin
from marketplace.accounts.models import User
from marketplace.accounts.resources import UserImportResource
from marketplace.accounts.second_factor_admin import SecondFactorResetMixin
from marketplace.accounts.selectors import staff_timeline_visible, user_for_user
from marketplace.accounts.signin_admin import AccessAttemptAdmin, AccessLogAdmin  # noqa: F401 (registers)
from marketplace.core.admin import TimelineMixin, not_in_scope, object_once
from marketplace.core.admin_filters import DayRangeFilter, search_by_shape
from marketplace.transfers.admin import ScopedImportMixin

# Autocomplete fields (`app_label.model.field`) that pick a member of staff: their choices are staff only.
STAFF_ONLY_AUTOCOMPLETE = {("disputes", "dispute", "assignee")}

admin.site.unregister(Group)


@admin.register(Group)
class GroupAdmin(AuditedGroupAdminMixin, ModelAdmin):
    search_fields = ["name"]
    filter_horizontal = ["permissions"]


@admin.register(User)
class UserAdmin(
    SecondFactorResetMixin, AuditedUserAdminMixin, ScopedImportMixin, TimelineMixin, DjangoUserAdmin, ModelAdmin
):
    import_resource_class = UserImportResource
    form = UserChangeForm
    add_form = UserCreationForm
    change_password_form = AdminPasswordChangeForm
    ordering = ["-date_joined"]
    list_display = ["email", "full_name", "display_role", "is_staff", "is_active", "email_verified_at", "date_joined"]
    list_filter = [
        ("role", ChoicesDropdownFilter),
        ("is_staff", BooleanRadioFilter),
        ("is_active", BooleanRadioFilter),
        ("date_joined", DayRangeFilter),
    ]
    list_filter_submit = True
    # What get_search_results tries, by the term's shape (users can be many, every client is one):
    # the user id, the start of the email address (the unique column's pattern index), the start
    # of the full name. Also what the owner, client and assignee filters' autocomplete searches.
    search_fields = ["=id", "^email", "^full_name"]
    search_help_text = "User id, the start of the email address, or the start of the name."
    show_full_result_count = False
    fieldsets = (
        (None, {"fields": ("email", "password")}),
        ("Profile", {"fields": ("full_name", "role", "email_verified_at")}),
        ("Permissions", {"fields": ("is_active", "is_staff", "is_superuser", "groups", "user_permissions")}),
        ("Dates", {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = ((None, {"classes": ("wide",), "fields": ("email", "role", "password1", "password2")}),)

    @display(
        description="Role",
        label={"Client": "info", "Worker": "info", "Service provider": "success", "Admin": "warning"},
        ordering="role",
    )
    def display_role(self, obj):
        return obj.get_role_display()

    def get_queryset(self, request):
        """The people in the user's scope (`user_for_user`): the list, change, history and password
        pages, raw-id popups, and every autocomplete on a user field (Django's autocomplete view
        reads this admin's queryset and search)."""
        ordering = self.get_ordering(request)
        return user_for_user(request.user).order_by(*ordering)

    def get_object(self, request, object_id, from_field=None):
        return object_once(request, self.model, object_id, from_field, super().get_object)

    def _get_obj_does_not_exist_redirect(self, request, opts, object_id):
        not_in_scope(opts, object_id)

    def history_view(self, request, object_id, extra_context=None):
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied  # the model permission first (403), then the scope (404)
        return super().history_view(request, object_id, extra_context)

    def timeline_visible(self, request, obj) -> bool:
        return staff_timeline_visible(viewer=request.user, person=obj)

    def get_search_results(self, request, queryset, search_term):
        queryset, duplicates = search_by_shape(
            queryset,
            search_term.lower(),  # so the case-sensitive email prefix meets the lower-cased addresses
            number=("pk",),
            email=("email__startswith",),  # addresses are stored lower-cased
            text=("email__startswith", "full_name__istartswith"),
        )
        params, view = request.GET, getattr(request.resolver_match, "url_name", None)
        source = (params.get("app_label"), params.get("model_name"), params.get("field_name"))
        if view == "autocomplete" and source in STAFF_ONLY_AUTOCOMPLETE:
            queryset = queryset.filter(is_staff=True, is_active=True)
        return queryset, duplicates
