"""Registration, email verification and staff groups (marketplace/accounts/services.py)."""

import time

import pytest
from django.contrib.auth.models import Group
from django.core import signing

from marketplace.accounts.models import User
from marketplace.accounts.services import (
    GROUP_PERMISSIONS,
    VERIFY_MAX_AGE,
    email_verification_token,
    staff_groups_ensure,
    user_register,
    user_request_email_verification,
    user_verify_email,
)
from marketplace.audit.models import Event
from marketplace.audit.selectors import event_list_for_object
from marketplace.core.exceptions import InvalidInput
from marketplace.notifications.models import EmailOutbox, Notification

pytestmark = pytest.mark.django_db


def _register(**kwargs) -> User:
    kwargs.setdefault("email", "ana@example.test")
    kwargs.setdefault("password", "a-long-passphrase")
    kwargs.setdefault("role", User.Role.CLIENT)
    return user_register(**kwargs)


# --- Registration ------------------------------------------------------------------------------


@pytest.mark.parametrize("role", [User.Role.CLIENT, User.Role.WORKER, User.Role.SERVICE_PROVIDER])
def test_user_register_creates_an_unverified_user_and_queues_the_verification_email(role):
    # given / when
    user = _register(email="Ana.Lopez@Example.TEST", role=role, full_name="Ana Lopez")
    # then the address is normalised, the password hashed, the email not yet verified
    user.refresh_from_db()
    assert (user.email, user.role, user.full_name, user.email_verified) == (
        "ana.lopez@example.test",
        role,
        "Ana Lopez",
        False,
    )
    assert user.check_password("a-long-passphrase") and not user.is_staff
    assert event_list_for_object(obj=user).get(verb="user.registered").data == {"role": role}
    # and the verification email waits in the outbox, with a token that verifies this user
    outbox = EmailOutbox.objects.get(to="ana.lopez@example.test")
    assert outbox.subject == "Confirm your email address"
    token = outbox.context["body"].removeprefix("Your confirmation code: ")
    assert user_verify_email(token=token) == user


def test_user_register_admin_role_is_refused():
    # given / when
    with pytest.raises(InvalidInput) as raised:
        _register(role=User.Role.ADMIN)
    # then
    assert str(raised.value) == "Role 'admin' cannot be chosen at registration."
    assert User.objects.count() == 0


@pytest.mark.parametrize(
    ("password", "message"),
    [
        ("short1", "This password is too short. It must contain at least 8 characters."),
        ("password123", "This password is too common."),
        ("73915284617", "This password is entirely numeric."),
        ("ana.lopez.example", "The password is too similar to the email address."),
    ],
    ids=["too-short", "common", "numeric", "like-the-email"],
)
def test_user_register_weak_password_is_refused(password, message):
    # given
    events_before, outbox_before = Event.objects.count(), EmailOutbox.objects.count()
    # when
    with pytest.raises(InvalidInput) as raised:
        _register(email="ana.lopez@example.test", password=password)
    # then the validators' messages are the error, and nobody is registered or emailed
    assert message in raised.value.message
    assert message in raised.value.extra["password"]
    assert User.objects.count() == 0
    assert (Event.objects.count(), EmailOutbox.objects.count()) == (events_before, outbox_before)


def test_user_register_same_email_twice_is_refused():
    # given
    _register(email="ana@example.test")
    events_before, outbox_before = Event.objects.count(), EmailOutbox.objects.count()
    # when the same address registers again, in other capitals
    with pytest.raises(InvalidInput) as raised:
        _register(email="ANA@example.test")
    # then
    assert str(raised.value) == "An account with this email address already exists."
    assert User.objects.count() == 1
    assert (Event.objects.count(), EmailOutbox.objects.count()) == (events_before, outbox_before)


# --- Email verification ------------------------------------------------------------------------


def test_user_verify_email_verifies_once():
    # given a registered user and their token
    user = _register()
    token = email_verification_token(user=user)

    # when the link is followed
    verified = user_verify_email(token=token)

    # then the address is verified and the audit trail says so
    user.refresh_from_db()
    assert verified == user and user.email_verified
    verified_at = user.email_verified_at
    assert event_list_for_object(obj=user).filter(verb="user.email_verified").count() == 1

    # and following it again changes nothing: same timestamp, no second event
    user_verify_email(token=token)
    user.refresh_from_db()
    assert user.email_verified_at == verified_at
    assert event_list_for_object(obj=user).filter(verb="user.email_verified").count() == 1


def test_user_request_email_verification_returns_a_working_token():
    # given
    user = _register()
    notifications_before = Notification.objects.filter(user=user).count()
    # when
    token = user_request_email_verification(user=user)
    # then
    assert Notification.objects.filter(user=user, verb="account.verify_email").count() == notifications_before + 1
    assert user_verify_email(token=token) == user


@pytest.mark.parametrize(
    "tamper",
    [
        lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"),  # signature changed
        lambda t: t.replace(":", ":9", 1),  # user id changed
        lambda t: "garbage",
        lambda t: "",
    ],
    ids=["signature", "payload", "garbage", "empty"],
)
def test_user_verify_email_tampered_token_is_refused(tamper):
    # given
    user = _register()
    token = email_verification_token(user=user)
    # when
    with pytest.raises(InvalidInput) as raised:
        user_verify_email(token=tamper(token))
    # then
    assert str(raised.value) == "This verification link is not valid."
    user.refresh_from_db()
    assert not user.email_verified


def test_user_verify_email_token_of_another_purpose_is_refused():
    # given a value signed with the same key but another salt
    user = _register()
    token = signing.TimestampSigner(salt="something-else").sign(f"{user.pk}:{user.email}")
    # when / then
    with pytest.raises(InvalidInput, match="not valid"):
        user_verify_email(token=token)


def test_user_verify_email_expired_token_is_refused(monkeypatch):
    # given a token signed just over three days ago
    user = _register()
    now = time.time()
    monkeypatch.setattr(signing.time, "time", lambda: now - VERIFY_MAX_AGE - 2)
    token = email_verification_token(user=user)
    monkeypatch.setattr(signing.time, "time", lambda: now)
    # when
    with pytest.raises(InvalidInput) as raised:
        user_verify_email(token=token)
    # then
    assert str(raised.value) == "This verification link has expired; ask for a new one."
    user.refresh_from_db()
    assert not user.email_verified


def test_user_verify_email_token_for_an_old_address_is_refused():
    # given a token issued before the user changed their address
    user = _register(email="old@example.test")
    token = email_verification_token(user=user)
    User.objects.filter(pk=user.pk).update(email="new@example.test")
    # when
    with pytest.raises(InvalidInput) as raised:
        user_verify_email(token=token)
    # then
    assert str(raised.value) == "This verification link no longer matches the account."
    user.refresh_from_db()
    assert not user.email_verified


# --- Staff groups ------------------------------------------------------------------------------


def _group_permissions() -> dict[str, set[str]]:
    """The permissions of every group (Wagtail's own Editors and Moderators included)."""
    return {
        group.name: {f"{p.content_type.app_label}.{p.codename}" for p in group.permissions.all()}
        for group in Group.objects.prefetch_related("permissions__content_type")
    }


def test_staff_groups_ensure_creates_each_group_with_its_permissions():
    # given no groups  # when
    groups = staff_groups_ensure()
    # then every group holds exactly the permissions of the table
    assert set(groups) == set(GROUP_PERMISSIONS)
    permissions = _group_permissions()
    assert {name: permissions[name] for name in GROUP_PERMISSIONS} == {
        name: set(perms) for name, perms in GROUP_PERMISSIONS.items()
    }


def test_staff_groups_ensure_twice_changes_nothing():
    # given the groups were ensured once
    staff_groups_ensure()
    groups_before = Group.objects.count()
    permissions_before = _group_permissions()
    through_rows_before = list(Group.permissions.through.objects.order_by("pk").values_list("pk", flat=True))

    # when it runs again
    staff_groups_ensure()

    # then same group count, same permission sets, not even the link rows were rewritten
    assert Group.objects.count() == groups_before
    assert Group.objects.filter(name__in=GROUP_PERMISSIONS).count() == len(GROUP_PERMISSIONS)
    assert _group_permissions() == permissions_before
    assert list(Group.permissions.through.objects.order_by("pk").values_list("pk", flat=True)) == through_rows_before


def test_staff_groups_ensure_repairs_a_drifted_group():
    # given someone removed and added permissions by hand
    groups = staff_groups_ensure()
    agent = groups["Operations agent"]
    agent.permissions.clear()
    # when
    staff_groups_ensure()
    # then the table wins again
    assert _group_permissions()["Operations agent"] == set(GROUP_PERMISSIONS["Operations agent"])
