"""Changes to people and their access: profile and access fields, groups, direct permissions, passwords,
and the groups themselves.

Each change is a service with a permission check and one audit event that lists what changed (before
and after; never a password), on the person's or the group's timeline. The operations admin's user
and group pages call these (marketplace/accounts/access_admin.py); the CMS has no people screens of
its own (cms/wagtail_hooks.py sends them here), so there is no unaudited door.

Who may do what:
- profile fields, `is_active`, `is_staff`, groups: `accounts.change_user` (superusers, by default);
- `is_superuser` and direct permissions: superusers only;
- nobody takes away their own `is_active`, `is_staff` or `is_superuser` (a slip would lock them out);
- groups: `auth.add_group`, `auth.change_group`, `auth.delete_group`.
"""

from django.contrib.auth.models import Group, Permission
from django.db import transaction

from marketplace.accounts.models import User
from marketplace.audit.services import event_record
from marketplace.core.exceptions import NotPermitted

# The fields of a person an edit may change, in the order an audit event lists them.
PROFILE_FIELDS = ("email", "full_name", "role", "email_verified_at")
ACCESS_FIELDS = ("is_active", "is_staff", "is_superuser")
SUPERUSER_ONLY_FIELDS = ("is_superuser",)


def _require(actor, permission: str, doing: str) -> None:
    if actor is None or not actor.is_active or not actor.has_perm(permission):
        raise NotPermitted(f"You may not {doing}.")


def _plain(value):
    """A field value as the audit event's JSON keeps it."""
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def _permission_names(permissions) -> set[str]:
    return {f"{p.content_type.app_label}.{p.codename}" for p in permissions}


def _set_diff(before: set[str], after: set[str]) -> dict:
    return {"added": sorted(after - before), "removed": sorted(before - after)}


def user_update(*, actor, user: User, values: dict, groups=None, permissions=None):
    """Apply one edit of a person: fields in `values` (of PROFILE_FIELDS and ACCESS_FIELDS), and when
    given, the full new set of groups and of direct permissions.

    One audit event, `user.access_changed` when access moved (an access field, a group, a
    permission; else `user.profile_changed`), with each changed field's [before, after] and the
    groups and permissions added and removed. Nothing changed: nothing written, None returned.
    """
    _require(actor, "accounts.change_user", "change people")
    unknown = set(values) - set(PROFILE_FIELDS) - set(ACCESS_FIELDS)
    if unknown:
        raise NotPermitted(f"These fields are not edited here: {', '.join(sorted(unknown))}.")
    with transaction.atomic():
        locked = User.objects.select_for_update().get(pk=user.pk)
        fields = {
            name: [_plain(getattr(locked, name)), _plain(value)]
            for name, value in values.items()
            if getattr(locked, name) != value
        }
        groups_before = set(locked.groups.values_list("name", flat=True))
        groups_after = groups_before if groups is None else {g.name for g in groups}
        perms_before = _permission_names(locked.user_permissions.select_related("content_type"))
        perms_after = perms_before if permissions is None else _permission_names(permissions)

        if (set(fields) & set(SUPERUSER_ONLY_FIELDS) or perms_before != perms_after) and not actor.is_superuser:
            raise NotPermitted("Only a superuser may change superuser status or direct permissions.")
        if locked.pk == actor.pk and any(name in fields and fields[name][1] is False for name in ACCESS_FIELDS):
            raise NotPermitted("You cannot remove your own access; ask another administrator.")

        for name in fields:
            setattr(locked, name, values[name])
        if fields:
            locked.save(update_fields=list(fields))
        if groups_after != groups_before:
            locked.groups.set(groups)
        if perms_after != perms_before:
            locked.user_permissions.set(permissions)
        if not fields and groups_after == groups_before and perms_after == perms_before:
            return None
        access = bool(set(fields) & set(ACCESS_FIELDS)) or groups_after != groups_before or perms_after != perms_before
        data = {"fields": fields}
        if groups_after != groups_before:
            data["groups"] = _set_diff(groups_before, groups_after)
        if perms_after != perms_before:
            data["permissions"] = _set_diff(perms_before, perms_after)
        event_record(
            verb="user.access_changed" if access else "user.profile_changed", actor=actor, target=locked, data=data
        )
    user.refresh_from_db()
    return locked


def user_create(*, actor, user: User) -> User:
    """Save a new person built by a form (its password already hashed) and record who created them."""
    _require(actor, "accounts.add_user", "add people")
    if (user.is_superuser or user.is_staff) and not actor.is_superuser:
        raise NotPermitted("Only a superuser may create staff or superusers.")
    with transaction.atomic():
        user.save()
        event_record(
            verb="user.created",
            actor=actor,
            target=user,
            data={"email": user.email, "role": user.role, "is_staff": user.is_staff, "is_superuser": user.is_superuser},
        )
    return user


def user_password_changed(*, actor, user: User) -> None:
    """Record that `actor` set `user`'s password (the admin's password form saved it)."""
    _require(actor, "accounts.change_user", "change people's passwords")
    event_record(verb="user.password_set", actor=actor, target=user, data={"by_self": actor.pk == user.pk})


def user_own_password_changed(*, user: User) -> None:
    """Record that a person changed their own password (the admin's password change page)."""
    event_record(verb="user.password_changed", actor=user, target=user)


def user_delete(*, actor, user: User) -> None:
    """Delete a person (the database refuses one with bookings or listings). The event outlives them."""
    _require(actor, "accounts.delete_user", "delete people")
    if user.pk == actor.pk:
        raise NotPermitted("You cannot delete your own account.")
    with transaction.atomic():
        event_record(
            verb="user.deleted",
            actor=actor,
            target=user,
            data={"email": user.email, "is_staff": user.is_staff, "is_superuser": user.is_superuser},
        )
        user.delete()


def group_save(*, actor, group: Group, name: str, permissions) -> Group:
    """Create a group or change its name and permissions (the full new set), with one audit event."""
    creating = group.pk is None
    _require(actor, "auth.add_group" if creating else "auth.change_group", "change groups")
    with transaction.atomic():
        if creating:
            before_name, perms_before = "", set()
        else:
            group = Group.objects.select_for_update().get(pk=group.pk)
            before_name = group.name
            perms_before = _permission_names(group.permissions.select_related("content_type"))
        perms_after = _permission_names(Permission.objects.filter(pk__in=[p.pk for p in permissions]))
        if not creating and before_name == name and perms_before == perms_after:
            return group
        group.name = name
        group.save()
        if perms_before != perms_after:
            group.permissions.set(permissions)
        data = {"permissions": _set_diff(perms_before, perms_after)}
        if creating:
            data["name"] = name
        elif before_name != name:
            data["name"] = [before_name, name]
        event_record(verb="group.created" if creating else "group.changed", actor=actor, target=group, data=data)
    return group


def group_delete(*, actor, group: Group) -> None:
    _require(actor, "auth.delete_group", "delete groups")
    with transaction.atomic():
        members = list(group.user_set.values_list("email", flat=True)[:50])
        event_record(verb="group.deleted", actor=actor, target=group, data={"name": group.name, "members": members})
        group.delete()


def group_permissions_sync(*, group: Group, wanted_ids: set[int]) -> None:
    """Set a group's permissions to `wanted_ids` on behalf of the system (`staff_groups_ensure`), audited
    when that changes anything."""
    before = set(group.permissions.values_list("pk", flat=True))
    if before == wanted_ids:
        return
    names = {
        p.pk: f"{p.content_type.app_label}.{p.codename}"
        for p in Permission.objects.filter(pk__in=before | wanted_ids).select_related("content_type")
    }
    group.permissions.set(wanted_ids)
    event_record(
        verb="group.changed",
        actor=None,
        target=group,
        data={"permissions": _set_diff({names[i] for i in before}, {names[i] for i in wanted_ids})},
    )
