from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import Http404
from guardian.admin import AdminGroupObjectPermissionsForm, AdminUserObjectPermissionsForm, GuardedModelAdminMixin
from guardian.shortcuts import get_group_perms, get_user_perms
from unfold.admin import ModelAdmin, TabularInline
from unfold.contrib.filters.admin import BooleanRadioFilter, ChoicesDropdownFilter
from unfold.decorators import action, display
from unfold.enums import ActionVariant
from unfold.widgets import UnfoldAdminEmailInputWidget, UnfoldAdminSelectWidget

from marketplace.accounts.models import User
from marketplace.core.admin import (
    DeclaredPermissionChecks,
    ServiceFormMixin,
    Step,
    TimelineMixin,
    WorkflowStepsMixin,
    offered_in,
    step_action,
)
from marketplace.core.admin_filters import DayRangeFilter
from marketplace.core.exceptions import InvalidInput
from marketplace.core.money import currency_check
from marketplace.partners import services
from marketplace.partners.models import Partner, PartnerMembership, PayoutAccount
from marketplace.partners.resources import PartnerExportResource, PartnerImportResource
from marketplace.partners.selectors import partner_for_user
from marketplace.partners.services import SCOPE_PERMISSION, partner_scope_grant, partner_scope_revoke
from marketplace.transfers.admin import ScopedImportExportMixin

GRANT_PERMISSION = "partners.grant_partner_scope"
SCOPE_CODENAME = SCOPE_PERMISSION.split(".")[-1]
RISK = services.RISK_PERMISSION
MEMBER_ADD = services.MEMBER_ADD_PERMISSION
MEMBER_CHANGE = services.MEMBER_CHANGE_PERMISSION
MEMBER_REMOVE = services.MEMBER_REMOVE_PERMISSION
S = Partner.Status


class MembershipInline(TabularInline):
    """The members, read-only: adding and removing members and changing their role are the
    "Members" steps above the form, each a service call with an audit event on the partner."""

    model = PartnerMembership
    extra = 0
    fields = ["user", "role", "created_at"]
    readonly_fields = fields
    can_delete = False

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("user")

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class PayoutAccountForm(forms.ModelForm):
    class Meta:
        model = PayoutAccount
        fields = ["gateway_reference", "currency", "holder_name", "verified_at"]

    def clean_currency(self):
        try:
            return currency_check(self.cleaned_data["currency"])
        except InvalidInput as exc:
            raise forms.ValidationError(exc.message) from None


class PayoutAccountInline(TabularInline):
    model = PayoutAccount
    form = PayoutAccountForm
    extra = 0


class MemberChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj):
        return f"{obj.user} ({obj.get_role_display().lower()})"


def _member_field(object_id) -> MemberChoiceField:
    """The partner's members to pick from (the partner itself is checked against the scope first)."""
    try:
        partner_id = int(object_id)
    except (TypeError, ValueError):
        partner_id = None
    members = PartnerMembership.objects.filter(partner_id=partner_id).select_related("user").order_by("user__email")
    return MemberChoiceField(label="Member", queryset=members, widget=UnfoldAdminSelectWidget)


def _role_field(label: str = "Role") -> forms.ChoiceField:
    return forms.ChoiceField(label=label, choices=PartnerMembership.Role.choices, widget=UnfoldAdminSelectWidget)


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
class PartnerAdmin(
    ScopedImportExportMixin, ServiceFormMixin, WorkflowStepsMixin, TimelineMixin, GuardedModelAdminMixin, ModelAdmin
):
    """Partners, with "Object permissions" to grant staff users and groups the partner's scope.

    The form edits the plain fields through `partner_create` / `partner_update`. Status, risk flag
    and members are read-only on it: they change through the steps above the form (suspend,
    reinstate, risk flag, members), each asking for what it needs (a reason for risk and status)
    and calling one service, which checks the permission and the scope and writes the audit event.

    Granting is for holders of `partners.grant_partner_scope` (Operations lead, Finance); each
    grant and revoke goes through `partner_scope_grant` / `partner_scope_revoke` (audited).
    """

    import_resource_class = PartnerImportResource
    export_resource_class = PartnerExportResource
    checks_class = DeclaredPermissionChecks

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
    fields = ["name", "slug", "kind", "contact_email", "status", "risk_flag"]
    readonly_fields = ["status", "risk_flag"]
    inlines = [MembershipInline, PayoutAccountInline]
    actions_detail = [
        "suspend",
        "reinstate",
        {"title": "Risk flag", "icon": "flag", "items": ["flag_risk", "clear_risk"]},
        {"title": "Members", "icon": "group", "items": ["add_member", "remove_member", "set_member_role"]},
    ]
    step_offered = {
        "suspend": offered_in(services.TRANSITIONS, "suspend"),
        "reinstate": offered_in(services.TRANSITIONS, "reinstate"),
        "flag_risk": lambda partner: not partner.risk_flag,
        "clear_risk": lambda partner: partner.risk_flag,
    }

    def get_queryset(self, request):
        return partner_for_user(request.user)

    def _get_obj_does_not_exist_redirect(self, request, opts, object_id):
        # Another partner's page is indistinguishable from a missing one: 404, as in every scoped admin.
        raise Http404(f"No partner with id {object_id!r} in your scope.")

    @display(description="Status", label={"Active": "success", "Suspended": "danger"}, ordering="status")
    def display_status(self, obj):
        return obj.get_status_display()

    def change_page_panels(self, request, obj) -> dict:
        # The partner's balance per currency, from the ledger (three aggregate queries).
        from marketplace.payouts.balances import partner_balance_rows

        return {"balances": partner_balance_rows(obj), "show_balances": True}

    def form_save_service(self, request, form, change):
        data = {f: form.cleaned_data[f] for f in services.UPDATABLE_FIELDS if f in form.cleaned_data}
        if not change:
            return services.partner_create(actor=request.user, **data)
        changed = {f: v for f, v in data.items() if f in form.changed_data}
        return services.partner_update(partner=form.instance, actor=request.user, data=changed)

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

    # --- Steps: status, risk flag, members -------------------------------------------------------

    suspend = step_action(
        "suspend",
        Step(
            title="Suspend",
            call=lambda partner, actor, data: services.partner_status_set(
                partner=partner, status=S.SUSPENDED, actor=actor, reason=data["reason"]
            ),
            success="{obj} is suspended: its listings are hidden, new bookings refused and payouts held.",
            reason="required",
            done_state=S.SUSPENDED,
            danger=True,
        ),
        icon="block",
        permissions=[RISK],
        variant=ActionVariant.DANGER,
    )

    reinstate = step_action(
        "reinstate",
        Step(
            title="Reinstate",
            call=lambda partner, actor, data: services.partner_status_set(
                partner=partner, status=S.ACTIVE, actor=actor, reason=data["reason"]
            ),
            success="{obj} is active again: its published listings are back and its payouts no longer held.",
            reason="required",
            done_state=S.ACTIVE,
        ),
        icon="settings_backup_restore",
        permissions=[RISK],
    )

    flag_risk = step_action(
        "flag_risk",
        Step(
            title="Set risk flag",
            call=lambda partner, actor, data: services.partner_risk_flag_set(
                partner=partner, flagged=True, actor=actor, reason=data["reason"]
            ),
            success="{obj} is risk-flagged: its payouts are held until the flag is cleared.",
            reason="required",
            done_state=services.FLAGGED,
            danger=True,
        ),
        icon="flag",
        permissions=[RISK],
    )

    clear_risk = step_action(
        "clear_risk",
        Step(
            title="Clear risk flag",
            call=lambda partner, actor, data: services.partner_risk_flag_set(
                partner=partner, flagged=False, actor=actor, reason=data["reason"]
            ),
            success="{obj}'s risk flag is cleared.",
            reason="required",
            done_state=services.CLEAR,
        ),
        icon="outlined_flag",
        permissions=[RISK],
    )

    @action(description="Add a member", icon="person_add", permissions=[MEMBER_ADD], url_path="add-member")
    def add_member(self, request, object_id):
        def call(partner, actor, data):
            user = User.objects.filter(email__iexact=data["email"]).first()
            if user is None:
                raise InvalidInput(f"There is no user with the email address {data['email']}.")
            membership = services.partner_membership_add(partner=partner, user=user, role=data["role"], actor=actor)
            step.success = f"{user} is now {membership.get_role_display().lower()} of {{obj}}."
            return partner

        step = Step(
            title="Add a member",
            call=call,
            fields={
                "email": forms.EmailField(label="The user's email address", widget=UnfoldAdminEmailInputWidget),
                "role": _role_field(),
            },
        )
        return self.workflow(request, object_id, step)

    @action(description="Remove a member", icon="person_remove", permissions=[MEMBER_REMOVE], url_path="remove-member")
    def remove_member(self, request, object_id):
        def call(partner, actor, data):
            member = data["member"]
            services.partner_membership_remove(partner=partner, user=member.user, actor=actor, reason=data["reason"])
            step.success = f"{member.user} is no longer a member of {{obj}}."
            return partner

        step = Step(
            title="Remove a member",
            call=call,
            reason="optional",
            fields={"member": _member_field(object_id)},
            danger=True,
        )
        return self.workflow(request, object_id, step)

    @action(
        description="Change a member's role",
        icon="manage_accounts",
        permissions=[MEMBER_CHANGE],
        url_path="member-role",
    )
    def set_member_role(self, request, object_id):
        def call(partner, actor, data):
            member = data["member"]
            membership = services.partner_membership_role_set(
                partner=partner, user=member.user, role=data["role"], actor=actor
            )
            step.success = f"{member.user} is now {membership.get_role_display().lower()} of {{obj}}."
            return partner

        step = Step(
            title="Change a member's role",
            call=call,
            fields={"member": _member_field(object_id), "role": _role_field("New role")},
        )
        return self.workflow(request, object_id, step)


# The API keys' admin lives in its own module (registered on import).
from marketplace.partners import api_key_admin  # noqa: E402, F401
