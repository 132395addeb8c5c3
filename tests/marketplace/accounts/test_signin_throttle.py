"""Sign-in throttling at the staff doors (config/settings/signin.py, marketplace/accounts/signin.py):
a brute force is stopped, yet the right password from another IP still signs in."""

from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.test import Client, override_settings
from django.utils import timezone

from tests.factories import StaffFactory

pytestmark = pytest.mark.django_db

PASSWORD = "pass-1234"  # tests.factories.UserFactory
ATTACKER, OFFICE = "203.0.113.9", "198.51.100.20"
LOCKED = 429  # AXES_HTTP_RESPONSE_CODE
LOCKOUT_TEXT = b"Too many failed sign-in attempts"


def _post_login(door: str, email: str, password: str, ip: str):
    return Client(REMOTE_ADDR=ip).post(f"/{door}/login/", {"username": email, "password": password})


def _signed_in(response, user) -> bool:
    session = response.wsgi_request.session
    return response.status_code == 302 and session.get("_auth_user_id") == str(user.pk)


@pytest.mark.parametrize("door", ["admin", "cms"])
def test_signin_150_wrong_passwords_are_throttled_and_another_ip_still_signs_in(door, staff_groups):
    # given a staff member of the door
    user = StaffFactory(groups=["Operations agent", "Content editor"])
    # when an attacker tries 150 wrong passwords from one IP
    statuses = [_post_login(door, user.email, f"guess-{n}", ATTACKER).status_code for n in range(150)]
    # then the first four get the login form again and everything from the fifth on is locked out
    assert statuses[:4] == [200] * 4
    assert statuses[4:] == [LOCKED] * 146
    # and only the failures up to the lock were counted (locked attempts do not extend the lock)
    assert AccessAttempt.objects.get(ip_address=ATTACKER).failures_since_start == 5
    # and even the right password from the attacker's IP is refused while locked
    from_attacker = _post_login(door, user.email, PASSWORD, ATTACKER)
    assert from_attacker.status_code == LOCKED
    assert LOCKOUT_TEXT in from_attacker.content
    # when the real person signs in from another IP within the cool-off
    response = _post_login(door, user.email, PASSWORD, OFFICE)
    # then they are signed in
    assert _signed_in(response, user)


def test_signin_lock_ends_after_the_cool_off():
    # given an (account, IP) pair locked by five failures
    user = StaffFactory(groups=["Operations agent"])
    for n in range(5):
        _post_login("admin", user.email, f"guess-{n}", ATTACKER)
    assert _post_login("admin", user.email, PASSWORD, ATTACKER).status_code == LOCKED
    # when the cool-off (15 minutes) has passed since the last counted failure
    AccessAttempt.objects.update(attempt_time=timezone.now() - timedelta(minutes=15, seconds=1))
    # then the right password from that IP signs in again
    assert _signed_in(_post_login("admin", user.email, PASSWORD, ATTACKER), user)


def test_signin_one_ip_failing_across_many_accounts_is_locked_for_every_account():
    # given an IP that failed 49 times across 49 addresses (under the pair limit each)
    user = StaffFactory(groups=["Operations agent"])
    for n in range(49):
        assert _post_login("admin", f"nobody-{n}@example.com", "guess", ATTACKER).status_code == 200
    # when it fails once more (the 50th failure)
    assert _post_login("admin", "nobody-49@example.com", "guess", ATTACKER).status_code == LOCKED
    # then even a fresh account is refused from that IP, right password or not
    assert _post_login("admin", user.email, PASSWORD, ATTACKER).status_code == LOCKED
    assert _post_login("cms", user.email, PASSWORD, ATTACKER).status_code == LOCKED
    # and the account signs in from anywhere else
    assert _signed_in(_post_login("admin", user.email, PASSWORD, OFFICE), user)


def test_signin_address_case_and_spaces_share_one_count():
    # given four failures typed as lower case
    user = StaffFactory(groups=["Operations agent"], email="ann.lee@example.com")
    for n in range(4):
        _post_login("admin", "ann.lee@example.com", f"guess-{n}", ATTACKER)
    # when the fifth is typed with capitals and spaces
    response = _post_login("admin", "  Ann.Lee@Example.com ", "guess-5", ATTACKER)
    # then it is counted on the same pair, which locks
    assert response.status_code == LOCKED
    assert user.email == "ann.lee@example.com"


def test_signin_forwarded_header_is_ignored_unless_configured():
    # given an attacker who sends a new X-Forwarded-For with every failure
    user = StaffFactory(groups=["Operations agent"])
    client = Client(REMOTE_ADDR=ATTACKER)
    for n in range(5):
        client.post(
            "/admin/login/",
            {"username": user.email, "password": "guess"},
            HTTP_X_FORWARDED_FOR=f"10.0.0.{n}",
        )
    # when no trusted header is configured  # then the failures all count against REMOTE_ADDR
    assert list(AccessAttempt.objects.values_list("ip_address", flat=True)) == [ATTACKER]
    assert _post_login("admin", user.email, PASSWORD, ATTACKER).status_code == LOCKED


@override_settings(SIGNIN_CLIENT_IP_HEADER="HTTP_X_FORWARDED_FOR", SIGNIN_TRUSTED_PROXY_COUNT=1)
def test_signin_behind_a_trusted_proxy_counts_the_address_the_proxy_saw():
    # given a proxy (REMOTE_ADDR 10.0.0.2) that appends the client's address to X-Forwarded-For
    user = StaffFactory(groups=["Operations agent"])
    proxy = Client(REMOTE_ADDR="10.0.0.2")
    # when a client fails five times, each time forging a different left-most entry
    for n in range(5):
        proxy.post(
            "/admin/login/",
            {"username": user.email, "password": "guess"},
            HTTP_X_FORWARDED_FOR=f"192.0.2.{n}, {ATTACKER}",
        )
    # then the count is kept on the address the proxy appended, and that pair is locked
    assert list(AccessAttempt.objects.values_list("ip_address", flat=True)) == [ATTACKER]
    locked = proxy.post("/admin/login/", {"username": user.email, "password": PASSWORD}, HTTP_X_FORWARDED_FOR=ATTACKER)
    assert locked.status_code == LOCKED
    # and another client behind the same proxy signs in
    other = proxy.post("/admin/login/", {"username": user.email, "password": PASSWORD}, HTTP_X_FORWARDED_FOR=OFFICE)
    assert _signed_in(other, user)


def test_signin_test_client_login_goes_through_the_throttle():
    # given a staff user
    user = StaffFactory(groups=["Operations agent"])
    client = Client(REMOTE_ADDR=ATTACKER)
    # when the test client signs in with the right password  # then it works (tests/plugins/signin.py)
    assert client.login(username=user.email, password=PASSWORD) is True
    # and five wrong ones through it lock its IP's pair like any sign-in
    assert [client.login(username=user.email, password="guess") for _ in range(5)] == [False] * 5
    assert client.login(username=user.email, password=PASSWORD) is False
