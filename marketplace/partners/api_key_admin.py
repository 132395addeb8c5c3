"""Partner API keys in the admin: a scoped, read-only list; an add form that calls `api_key_create`
and shows the full key once, in the answer to that POST (it is not stored, so no later page can
show it); and a "Revoke" step with a reason that calls `api_key_revoke`."""

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.template.response import TemplateResponse
from django.urls import reverse
from unfold.decorators import display
from unfold.enums import ActionVariant
from unfold.widgets import (
    UnfoldAdminCheckboxSelectMultipleWidget,
    UnfoldAdminSelectWidget,
    UnfoldAdminSplitDateTimeWidget,
    UnfoldAdminTextInputWidget,
)

from marketplace.core.admin import Step, WorkflowAdmin, step_action
from marketplace.core.exceptions import ApplicationError
from marketplace.partners import api_keys
from marketplace.partners.models import PartnerAPIKey
from marketplace.partners.selectors import partner_for_user

MANAGE = api_keys.MANAGE_PERMISSION


class APIKeyCreateForm(forms.Form):
    name = forms.CharField(max_length=100, widget=UnfoldAdminTextInputWidget)
    partner = forms.ModelChoiceField(queryset=None, widget=UnfoldAdminSelectWidget)
    scopes = forms.MultipleChoiceField(
        choices=PartnerAPIKey.Scope.choices, widget=UnfoldAdminCheckboxSelectMultipleWidget
    )
    expires_at = forms.SplitDateTimeField(
        label="Expires at",
        required=False,
        widget=UnfoldAdminSplitDateTimeWidget,
        help_text="Empty: the key lasts until it is revoked.",
    )

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["partner"].queryset = partner_for_user(user).order_by("name")


@admin.register(PartnerAPIKey)
class PartnerAPIKeyAdmin(WorkflowAdmin):
    """The API keys of the partners in the user's scope. Creating and revoking need
    `partners.manage_api_keys`; the services check it again, with the partner's scope."""

    scope = api_keys.api_key_for_user
    list_select_related = ("partner",)
    list_display = [
        "name",
        "partner",
        "prefix",
        "display_scopes",
        "created_at",
        "expires_at",
        "last_used_at",
        "display_status",
    ]
    search_fields = ["name", "=prefix"]
    search_help_text = "Name, or the key's prefix (the part before the dot)."
    # Never the hash: it is of no use to anyone reading the page.
    fields = [
        "partner",
        "name",
        "prefix",
        "scopes",
        "created_at",
        "created_by",
        "expires_at",
        "last_used_at",
        "revoked_at",
        "revoked_by",
        "revoke_reason",
    ]
    readonly_fields = fields
    actions_detail = ["revoke"]
    step_offered = {"revoke": lambda key: key.revoked_at is None}
    create_template = "admin/partners/partnerapikey/create.html"

    @display(description="Scopes")
    def display_scopes(self, obj):
        return ", ".join(obj.scopes or [])

    @display(description="Status", label={"active": "success", "expired": "warning", "revoked": "danger"})
    def display_status(self, obj):
        return api_keys.api_key_status(obj)

    def has_add_permission(self, request):
        return request.user.has_perm(MANAGE)

    def add_view(self, request, form_url="", extra_context=None):
        """The add form; a valid POST creates the key and answers with the full key, once."""
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = APIKeyCreateForm(request.POST if request.method == "POST" else None, user=request.user)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Create a partner API key",
            "form": form,
            "changelist_url": reverse("admin:partners_partnerapikey_changelist"),
        }
        if request.method == "POST" and form.is_valid():
            try:
                key, secret = api_keys.api_key_create(actor=request.user, **form.cleaned_data)
            except ApplicationError as exc:
                form.add_error(None, exc.message)
            else:
                context |= {
                    "title": f"API key created: {key.name}",
                    "key": key,
                    "secret": secret,
                    "change_url": reverse("admin:partners_partnerapikey_change", args=[key.pk]),
                }
                response = TemplateResponse(request, self.create_template, context)
                response["Cache-Control"] = "no-store"  # the key must not outlive this page
                return response
        return TemplateResponse(request, self.create_template, context)

    revoke = step_action(
        "revoke",
        Step(
            title="Revoke",
            call=lambda key, actor, data: api_keys.api_key_revoke(actor=actor, key=key, reason=data["reason"]),
            success="{obj} is revoked: it no longer opens the partner API.",
            reason="required",
            done_state="revoked",
            danger=True,
        ),
        icon="key_off",
        permissions=[MANAGE],
        variant=ActionVariant.DANGER,
    )
