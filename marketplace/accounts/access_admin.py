"""The user and group admin pages save through the audited access services (marketplace/accounts/access.py).

Django's admin would save a person's form, then their groups and permissions, and delete, with no
audit event. These mixins hand each of those to one service call instead. Fields the person may not
change are read-only on the form (superuser status and direct permissions for non-superusers, one's
own access fields for everyone); should a service still refuse, the page says why and nothing is saved.
"""

from django.contrib import admin, messages
from django.db import transaction
from django.shortcuts import redirect

from marketplace.accounts.access import (
    ACCESS_FIELDS,
    PROFILE_FIELDS,
    group_delete,
    group_save,
    user_create,
    user_delete,
    user_own_password_changed,
    user_password_changed,
    user_update,
)
from marketplace.core.exceptions import NotPermitted


class _RefusalAsMessage:
    """A service's NotPermitted on a save shows as a message on the same page (the save rolled back)."""

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except NotPermitted as exc:
            messages.error(request, exc.message)
            return redirect(request.get_full_path())

    def delete_view(self, request, object_id, extra_context=None):
        try:
            return super().delete_view(request, object_id, extra_context)
        except NotPermitted as exc:
            messages.error(request, exc.message)
            return redirect(request.get_full_path())


class AuditedUserAdminMixin(_RefusalAsMessage):
    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        if not request.user.is_superuser:
            fields += ["is_superuser", "user_permissions"]
        if obj is not None and obj.pk == request.user.pk:
            fields += list(ACCESS_FIELDS)
        return list(dict.fromkeys(fields))

    def save_model(self, request, obj, form, change):
        if not change:
            user_create(actor=request.user, user=obj)
        # A change is saved in save_related, in one service call with the groups and permissions.

    def save_related(self, request, form, formsets, change):
        if change:
            data, changed = form.cleaned_data, set(form.changed_data)
            user_update(
                actor=request.user,
                user=form.instance,
                values={name: data[name] for name in (*PROFILE_FIELDS, *ACCESS_FIELDS) if name in changed},
                groups=data["groups"] if "groups" in changed else None,
                permissions=data["user_permissions"] if "user_permissions" in changed else None,
            )
        else:
            form.save_m2m()
        for formset in formsets:
            self.save_formset(request, form, formset, change=change)

    def user_change_password(self, request, id, form_url=""):
        with transaction.atomic():
            response = super().user_change_password(request, id, form_url)
            if request.method == "POST" and response.status_code == 302:
                user_password_changed(actor=request.user, user=self.get_object(request, id))
        return response

    def delete_model(self, request, obj):
        user_delete(actor=request.user, user=obj)

    def delete_queryset(self, request, queryset):
        for user in queryset:
            user_delete(actor=request.user, user=user)


class AuditedGroupAdminMixin(_RefusalAsMessage):
    def save_model(self, request, obj, form, change):
        pass  # saved in save_related, with its permissions, by one service call

    def save_related(self, request, form, formsets, change):
        group_save(
            actor=request.user,
            group=form.instance,
            name=form.cleaned_data["name"],
            permissions=list(form.cleaned_data["permissions"]),
        )

    def delete_model(self, request, obj):
        group_delete(actor=request.user, group=obj)

    def delete_queryset(self, request, queryset):
        for group in queryset:
            group_delete(actor=request.user, group=group)


def own_password_change(request):
    """The admin's "change my password" page (Django's), with an audit event when the change is saved."""
    with transaction.atomic():
        response = admin.site.password_change(request)
        if request.method == "POST" and response.status_code == 302 and request.user.is_authenticated:
            user_own_password_changed(user=request.user)
    return response
