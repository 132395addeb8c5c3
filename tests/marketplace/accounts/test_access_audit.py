"""Changes to people and groups through the admin write audit events (marketplace/accounts/access.py).

Each test drives the admin's own pages through HTTP and reads the audit rows back: who acted, on whom,
and what moved, before and after. The expected diffs are written out here.
"""

import pytest
from django.contrib.auth.models import Group, Permission
from django.test import Client
from django.urls import reverse

from marketplace.accounts.access import user_update
from marketplace.accounts.models import User
from marketplace.accounts.services import StaffGroup, staff_groups_ensure
from marketplace.audit.models import Event
from marketplace.core.exceptions import NotPermitted
from tests.factories import StaffFactory, UserFactory
from tests.marketplace.test_admin_permission_matrix import form_data

pytestmark = pytest.mark.django_db


@pytest.fixture
def root(staff_groups):
    return StaffFactory(is_superuser=True, email="root@example.test")


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _events(target, verb=None):
    rows = Event.objects.filter(target_type__model=target._meta.model_name, target_id=str(target.pk))
    return list(rows.filter(verb=verb) if verb else rows)


def _change_form(client, user) -> dict:
    response = client.get(reverse("admin:accounts_user_change", args=[user.pk]))
    assert response.status_code == 200
    return form_data(response.context["adminform"].form)


def test_giving_a_person_a_group_and_staff_status_is_one_audited_access_change(root):
    # given a client account and a superuser at the admin
    person = UserFactory(email="ada@example.test")
    finance = Group.objects.get(name=StaffGroup.FINANCE)
    client = _client(root)
    data = _change_form(client, person)
    # when the superuser makes them staff in Finance and saves the form
    data["is_staff"] = "on"
    data["groups"] = [finance.pk]
    response = client.post(reverse("admin:accounts_user_change", args=[person.pk]), data)
    # then the change is saved and one event says what moved, by whom
    assert response.status_code == 302, response.content[:500]
    person.refresh_from_db()
    assert person.is_staff is True
    assert list(person.groups.values_list("name", flat=True)) == ["Finance"]
    [event] = _events(person)
    assert event.verb == "user.access_changed"
    assert event.actor_id == root.pk
    assert event.data == {"fields": {"is_staff": [False, True]}, "groups": {"added": ["Finance"], "removed": []}}


def test_a_profile_edit_is_audited_as_a_profile_change(root):
    person = UserFactory(email="bo@example.test", full_name="Bo")
    client = _client(root)
    data = _change_form(client, person)
    data["full_name"] = "Bo Jensen"
    response = client.post(reverse("admin:accounts_user_change", args=[person.pk]), data)
    assert response.status_code == 302
    [event] = _events(person)
    assert (event.verb, event.data) == ("user.profile_changed", {"fields": {"full_name": ["Bo", "Bo Jensen"]}})


def test_saving_an_unchanged_form_writes_no_event(root):
    person = UserFactory()
    client = _client(root)
    response = client.post(reverse("admin:accounts_user_change", args=[person.pk]), _change_form(client, person))
    assert response.status_code == 302
    assert _events(person) == []


def test_direct_permissions_by_a_superuser_are_listed_by_name(root):
    person = StaffFactory()
    perm = Permission.objects.get(content_type__app_label="payouts", codename="approve_payout")
    client = _client(root)
    data = _change_form(client, person)
    data["user_permissions"] = [perm.pk]
    assert client.post(reverse("admin:accounts_user_change", args=[person.pk]), data).status_code == 302
    [event] = _events(person)
    assert event.data["permissions"] == {"added": ["payouts.approve_payout"], "removed": []}
    assert person.has_perm("payouts.approve_payout")


def test_a_non_superuser_cannot_make_anyone_superuser(staff_groups):
    # given a member of staff who may change people (all of them: every partner) but is not a superuser
    editor = StaffFactory(email="editor@example.test")
    editor.user_permissions.add(
        *Permission.objects.filter(content_type__app_label="accounts", codename__in=["view_user", "change_user"]),
        Permission.objects.get(codename="operate_all_partners"),
    )
    person = StaffFactory(email="target@example.test")
    client = _client(editor)
    response = client.get(reverse("admin:accounts_user_change", args=[person.pk]))
    form = response.context["adminform"].form
    # then the superuser box is not on their form at all (read-only) ...
    assert "is_superuser" not in form.fields and "user_permissions" not in form.fields
    # ... posting it anyway changes nothing
    data = form_data(form) | {"is_superuser": "on"}
    assert client.post(reverse("admin:accounts_user_change", args=[person.pk]), data).status_code == 302
    person.refresh_from_db()
    assert person.is_superuser is False
    assert _events(person) == []
    # and the service itself refuses, writing nothing
    with pytest.raises(NotPermitted, match="Only a superuser"):
        user_update(actor=User.objects.get(pk=editor.pk), user=person, values={"is_superuser": True})
    person.refresh_from_db()
    assert person.is_superuser is False
    assert _events(person) == []


def test_nobody_removes_their_own_access(root):
    client = _client(root)
    form = client.get(reverse("admin:accounts_user_change", args=[root.pk])).context["adminform"].form
    assert not {"is_active", "is_staff", "is_superuser"} & set(form.fields)
    with pytest.raises(NotPermitted, match="your own access"):
        user_update(actor=root, user=root, values={"is_active": False})
    root.refresh_from_db()
    assert root.is_active is True


def test_setting_someone_elses_password_is_audited_without_the_password(root):
    person = UserFactory()
    client = _client(root)
    url = reverse("admin:auth_user_password_change", args=[person.pk])
    response = client.post(url, {"password1": "Kestrel-Quarry-81", "password2": "Kestrel-Quarry-81"})
    assert response.status_code == 302
    person.refresh_from_db()
    assert person.check_password("Kestrel-Quarry-81")
    [event] = _events(person)
    assert (event.verb, event.actor_id, event.data) == ("user.password_set", root.pk, {"by_self": False})
    assert "Kestrel" not in str(event.data) + event.reason


def test_changing_ones_own_password_is_audited(root):
    client = _client(root)
    response = client.post(
        "/admin/password_change/",
        {"old_password": "pass-1234", "new_password1": "Heron-Lantern-42", "new_password2": "Heron-Lantern-42"},
    )
    assert response.status_code == 302
    [event] = _events(root, "user.password_changed")
    assert event.actor_id == root.pk


def test_creating_a_person_is_audited(root):
    client = _client(root)
    response = client.post(
        reverse("admin:accounts_user_add"),
        {
            "email": "new@example.test",
            "role": "client",
            "password1": "Osprey-Meadow-73",
            "password2": "Osprey-Meadow-73",
        },
    )
    assert response.status_code == 302, response.content[:500]
    person = User.objects.get(email="new@example.test")
    [event] = _events(person)
    assert event.verb == "user.created" and event.actor_id == root.pk
    assert event.data == {"email": "new@example.test", "role": "client", "is_staff": False, "is_superuser": False}


def test_group_create_change_and_delete_are_audited(root):
    client = _client(root)
    view = Permission.objects.get(content_type__app_label="payouts", codename="view_payout")
    approve = Permission.objects.get(content_type__app_label="payouts", codename="approve_payout")
    # create
    response = client.post(reverse("admin:auth_group_add"), {"name": "Auditors", "permissions": [view.pk]})
    assert response.status_code == 302, response.content[:500]
    group = Group.objects.get(name="Auditors")
    # change: a second permission and a new name
    response = client.post(
        reverse("admin:auth_group_change", args=[group.pk]),
        {"name": "Payout auditors", "permissions": [view.pk, approve.pk]},
    )
    assert response.status_code == 302
    # delete
    response = client.post(reverse("admin:auth_group_delete", args=[group.pk]), {"post": "yes"})
    assert response.status_code == 302
    assert not Group.objects.filter(pk=group.pk).exists()
    events = sorted(_events(group), key=lambda e: e.pk)
    assert [(e.verb, e.actor_id) for e in events] == [
        ("group.created", root.pk),
        ("group.changed", root.pk),
        ("group.deleted", root.pk),
    ]
    assert events[0].data == {"name": "Auditors", "permissions": {"added": ["payouts.view_payout"], "removed": []}}
    assert events[1].data == {
        "permissions": {"added": ["payouts.approve_payout"], "removed": []},
        "name": ["Auditors", "Payout auditors"],
    }
    assert events[2].data == {"name": "Payout auditors", "members": []}


def test_the_system_restoring_a_staff_groups_permissions_is_audited(staff_groups):
    # given someone removed a permission from Finance by hand
    finance = Group.objects.get(name=StaffGroup.FINANCE)
    approve = Permission.objects.get(content_type__app_label="payouts", codename="approve_payout")
    finance.permissions.remove(approve)
    earlier = {e.pk for e in _events(finance)}  # the groups' creation, by the fixture
    # when the staff groups are ensured again (deploys do)
    staff_groups_ensure()
    # then it is back, and the system's event says so
    assert finance.permissions.filter(pk=approve.pk).exists()
    [event] = [e for e in _events(finance) if e.pk not in earlier]
    assert (event.verb, event.actor_id) == ("group.changed", None)
    assert event.data == {"permissions": {"added": ["payouts.approve_payout"], "removed": []}}


def test_the_cms_has_no_unaudited_people_screens(root):
    client = _client(root)
    assert client.get("/cms/users/").url == reverse("admin:accounts_user_changelist")
    assert client.get("/cms/users/5/edit/").url == reverse("admin:accounts_user_changelist")
    assert client.get("/cms/groups/").url == reverse("admin:auth_group_changelist")
