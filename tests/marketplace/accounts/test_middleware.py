"""Staff sessions (marketplace/accounts/middleware.py and the session settings): idle staff are
signed out, the absolute limit holds, signing out and changing the password end old sessions."""

import pytest
from django.conf import settings
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from marketplace.accounts.middleware import LAST_ACTIVITY
from tests.factories import StaffFactory

pytestmark = pytest.mark.django_db

PAGE = "/admin/password_change/"  # a light admin page that needs a signed-in staff user
PASSWORD = "pass-1234"  # tests.factories.UserFactory


def _signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _is_login_redirect(response) -> bool:
    return response.status_code == 302 and response["Location"].startswith("/admin/login/")


def _age_activity(client: Client, seconds: int) -> None:
    session = client.session
    session[LAST_ACTIVITY] -= seconds
    session.save()


def test_staff_session_active_within_the_idle_limit_is_kept():
    # given a staff user who used the admin a little while ago
    client = _signed_in(StaffFactory(is_superuser=True))
    assert client.get(PAGE).status_code == 200
    _age_activity(client, settings.SESSION_IDLE_SECONDS - 120)
    # when they come back  # then they are still signed in
    assert client.get(PAGE).status_code == 200


def test_staff_session_idle_past_the_limit_is_refused_and_signed_out():
    # given a staff user idle for longer than SESSION_IDLE_SECONDS
    client = _signed_in(StaffFactory(is_superuser=True))
    assert client.get(PAGE).status_code == 200
    old_key = client.session.session_key
    _age_activity(client, settings.SESSION_IDLE_SECONDS + 1)
    # when they come back
    response = client.get(PAGE)
    # then they are sent to the login page and the old session is gone for good
    assert _is_login_redirect(response)
    replay = Client()
    replay.cookies[settings.SESSION_COOKIE_NAME] = old_key
    assert _is_login_redirect(replay.get(PAGE))


def test_staff_session_expiry_is_absolute_from_sign_in():
    # given a staff user's first admin request after signing in
    client = _signed_in(StaffFactory(is_superuser=True))
    client.get(PAGE)
    expiry = client.session.get_expiry_date()
    # when activity is recorded again later (the session is saved again)
    _age_activity(client, 120)
    client.get(PAGE)
    # then the expiry did not move: SESSION_COOKIE_AGE counts from sign-in, not from the last save
    assert client.session.get_expiry_date() == expiry
    assert client.session.get_expiry_age() <= settings.SESSION_COOKIE_AGE


def test_sign_out_invalidates_the_old_session_cookie():
    # given a signed-in staff user whose cookie was copied
    client = _signed_in(StaffFactory(is_superuser=True))
    assert client.get(PAGE).status_code == 200
    cookie = client.cookies[settings.SESSION_COOKIE_NAME].value
    # when they sign out
    client.post("/admin/logout/")
    # then the copied cookie no longer signs anyone in
    replay = Client()
    replay.cookies[settings.SESSION_COOKIE_NAME] = cookie
    assert _is_login_redirect(replay.get(PAGE))


def test_password_change_ends_the_other_sessions_and_keeps_the_current_one():
    # given one staff user signed in on two devices
    user = StaffFactory(is_superuser=True)
    here, elsewhere = _signed_in(user), _signed_in(user)
    assert elsewhere.get(PAGE).status_code == 200
    # when they change their password on the first
    new = "a-much-longer-passphrase-91"
    response = here.post(PAGE, {"old_password": PASSWORD, "new_password1": new, "new_password2": new})
    assert response.status_code == 302, response.content[:2000]
    # then the first stays signed in and the other is signed out
    assert here.get(PAGE).status_code == 200
    assert _is_login_redirect(elsewhere.get(PAGE))


def test_staff_requests_within_a_minute_write_no_session():
    # given a staff user just signed in
    client = _signed_in(StaffFactory(is_superuser=True))
    # when they make requests
    with CaptureQueriesContext(connection) as queries:
        client.get(PAGE)
        client.get(PAGE)
    # then the session is only read: pinned query counts of admin pages do not move
    writes = [q["sql"] for q in queries if "django_session" in q["sql"] and not q["sql"].startswith("SELECT")]
    assert writes == []
