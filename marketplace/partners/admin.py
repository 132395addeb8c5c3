from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import Http404
from guardian.admin import AdminGroupObjectPermissionsForm, AdminUserObjectPermissionsForm, GuardedModelAdminMixin
from guardian.shortcuts import get_group_perms, get_user_perms
from unfold.admin import ModelAdmin, TabularInline
from unfold.contrib.filters.admin import BooleanRadioFilter, ChoicesDropdownFilter
from unfold.decorators import display

from marketplace.core.admin import TimelineMixin
from marketplace.core.admin_filters import DayRangeFilter
from marketplace.partners.models import Partner, PartnerMembership, PayoutAccount
from marketplace.partners.resources import PartnerExportResource, PartnerImportResource
from marketplace.partners.selectors import partner_for_user
from marketplace.partners.services import SCOPE_PERMISSION, partner_scope_grant, partner_scope_revoke
from marketplace.transfers.admin import ScopedImportExportMixin

GRANT_PERMISSION = "partners.grant_partner_scope"
SCOPE_CODENAME = SCOPE_PERMISSION.split(".")[-1]


class MembershipInline(TabularInline):
    model = PartnerMembership
    extra = 0
    autocomplete_fields = ["user"]


class PayoutAccountInline(TabularInline):
    model = PayoutAccount
    extra = 0


class _ScopeFormMixin:
    """Guardian's object-permission form, narrowed to the one scope permission and saved through
    the partner scope services, so every grant and revoke is written to the audit log."""

    actor = None

    def are_obj_perms_required(self) -> bool:
        return False  # clearing the box revokes the scope

    def get_obj_perms_field_choices(self):
        return [(c, label) for c, label in super().get_obj_perms_field_choices() if c == SCOPE_CODENAME]

    def save_obj_perms(self) -> None:
        grantee = self.grantee()
        wanted = SCOPE_CODENAME in set(self.cleaned_data[self.get_obj_perms_field_name()])
        has = SCOPE_CODENAME in set(self.current_perms(grantee))
        if wanted and not has:
            partner_scope_grant(partner=self.obj, grantee=grantee, actor=self.actor)
        elif has and not wanted:
            partner_scope_revoke(partner=self.obj, grantee=grantee, actor=self.actor)


class ScopeUserForm(_ScopeFormMixin, AdminUserObjectPermissionsForm):
    def grantee(self):
        return self.user

    def current_perms(self, grantee):
        return get_user_perms(grantee, self.obj)


class ScopeGroupForm(_ScopeFormMixin, AdminGroupObjectPermissionsForm):
    def grantee(self):
        return self.group

    def current_perms(self, grantee):
        return get_group_perms(grantee, self.obj)


@admin.register(Partner)
class PartnerAdmin(ScopedImportExportMixin, TimelineMixin, GuardedModelAdminMixin, ModelAdmin):
    """Partners, with "Object permissions" to grant staff users and groups the partner's scope.

    Granting is for holders of `partners.grant_partner_scope` (Operations lead, Finance); each
    grant and revoke goes through `partner_scope_grant` / `partner_scope_revoke` (audited).
    """

    import_resource_class = PartnerImportResource
    export_resource_class = PartnerExportResource

    list_display = ["id", "name", "slug", "kind", "display_status", "risk_flag", "contact_email", "created_at"]
    list_filter = [
        ("status", ChoicesDropdownFilter),
        ("kind", ChoicesDropdownFilter),
        ("risk_flag", BooleanRadioFilter),
        ("created_at", DayRangeFilter),
    ]
    list_filter_submit = True
    # Partners are few (hundreds), so substring search is cheap. The partner filters of the other
    # changelists search here too (their autocomplete), through partner_for_user.
    search_fields = ["name", "slug", "=contact_email"]
    search_help_text = "Name, slug, or contact email address."
    prepopulated_fields = {"slug": ["name"]}
    inlines = [MembershipInline, PayoutAccountInline]

    def get_queryset(self, request):
        return partner_for_user(request.user)

    def _get_obj_does_not_exist_redirect(self, request, opts, object_id):
        # Another partner's page is indistinguishable from a missing one: 404, as in every scoped admin.
        raise Http404(f"No partner with id {object_id!r} in your scope.")

    @display(description="Status", label={"Active": "success", "Suspended": "danger"}, ordering="status")
    def display_status(self, obj):
        return obj.get_status_display()

    # Guardian's views ask has_change_permission; for them, the question is "may grant scope?".
    def _granting(self, request):
        if not request.user.has_perm(GRANT_PERMISSION):
            raise PermissionDenied("You may not grant or revoke partner scope.")
        request._granting_partner_scope = True

    def has_change_permission(self, request, obj=None):
        if getattr(request, "_granting_partner_scope", False):
            return True
        return super().has_change_permission(request, obj)

    def obj_perms_manage_view(self, request, object_pk):
        self._granting(request)
        return super().obj_perms_manage_view(request, object_pk)

    def obj_perms_manage_user_view(self, request, object_pk, user_id):
        self._granting(request)
        return super().obj_perms_manage_user_view(request, object_pk, user_id)

    def obj_perms_manage_group_view(self, request, object_pk, group_id):
        self._granting(request)
        return super().obj_perms_manage_group_view(request, object_pk, group_id)

    def get_obj_perms_manage_user_form(self, request):
        return type("ScopeUserForm", (ScopeUserForm,), {"actor": request.user})

    def get_obj_perms_manage_group_form(self, request):
        return type("ScopeGroupForm", (ScopeGroupForm,), {"actor": request.user})
