"""The staff doors' sign-in says nothing about whether an account exists: a wrong password for a
real account and any password for a missing one get the same status, the same page and, within 20%,
the same time; so does the lockout that follows."""

import re
import statistics
import time

import pytest
from django.test import Client, override_settings

from tests.factories import StaffFactory

pytestmark = pytest.mark.django_db

MISSING = "no-such-person@example.com"
# The production hasher (Django's PBKDF2 at its default iterations), not the suite's fast MD5: the
# time that must match is the password check itself.
PRODUCTION_HASHERS = ["django.contrib.auth.hashers.PBKDF2PasswordHasher"]
TRIES = 7


def _post_login(door: str, email: str, password: str, ip: str):
    return Client(REMOTE_ADDR=ip).post(f"/{door}/login/", {"username": email, "password": password})


def _page(response, email: str) -> str:
    """The body with what legitimately differs taken out: the typed address echoed in the form,
    and the CSRF token (masked afresh for every response: 64 letters and digits, in the form and,
    at /cms/, in the page's script settings)."""
    body = response.content.decode().replace(email, "EMAIL")
    return re.sub(r"\b[A-Za-z0-9]{64}\b", "TOKEN", body)


@pytest.mark.parametrize("door", ["admin", "cms"])
def test_signin_wrong_password_and_missing_account_answer_the_same(door):
    # given a real staff account and an address that has none
    real = StaffFactory(groups=[]).email
    # when each gets a wrong password
    for_real = _post_login(door, real, "wrong-password-1", "192.0.2.10")
    for_missing = _post_login(door, MISSING, "wrong-password-1", "192.0.2.11")
    # then the status and the page are the same
    assert for_real.status_code == for_missing.status_code == 200
    assert _page(for_real, real) == _page(for_missing, MISSING)
    assert "EMAIL" in _page(for_real, real)  # the address is echoed in the form, nowhere else


@pytest.mark.parametrize("door", ["admin", "cms"])
def test_signin_lockout_is_the_same_page_for_real_and_missing_accounts(door):
    # given a real account and a missing one, each failed five times from its own IP
    real = StaffFactory(groups=[]).email
    for email, ip in ((real, "192.0.2.20"), (MISSING, "192.0.2.21")):
        for n in range(5):
            _post_login(door, email, f"guess-{n}", ip)
    # when each is tried again
    for_real = _post_login(door, real, "guess-6", "192.0.2.20")
    for_missing = _post_login(door, MISSING, "guess-6", "192.0.2.21")
    # then both get the styled lockout page, byte for byte the same, naming no address
    assert for_real.status_code == for_missing.status_code == 429
    assert for_real.content == for_missing.content
    page = for_real.content.decode()
    assert "Too many failed sign-in attempts. Sign-in from here is paused for 15 minutes." in page
    assert f'href="/{door}/login/"' in page
    assert "<html" in page and "errornote" in page  # the admin's layout, not a bare text answer
    assert real not in page


@pytest.mark.parametrize("door", ["admin", "cms"])
def test_signin_wrong_password_and_missing_account_take_the_same_time(door):
    # given a real account whose password is stored with the production hasher
    with override_settings(PASSWORD_HASHERS=PRODUCTION_HASHERS):
        user = StaffFactory(groups=[])
        user.set_password("the-real-passphrase-1")
        user.save(update_fields=["password"])
        _post_login(door, MISSING, "warm-up", "192.0.2.99")  # first request loads templates
        # when wrong passwords are tried, alternating, each from its own IP (no lockout)
        cpu, wall = {"real": [], "missing": []}, {"real": [], "missing": []}
        for n in range(TRIES):
            for case, email in (("real", user.email), ("missing", MISSING)):
                started_cpu, started_wall = time.process_time(), time.perf_counter()
                response = _post_login(door, email, f"wrong-{n}", f"198.51.100.{n * 2 + len(case)}")
                cpu[case].append(time.process_time() - started_cpu)
                wall[case].append(time.perf_counter() - started_wall)
                assert response.status_code == 200
    # then the medians are within 20% of each other. Asserted on the request's CPU time (the test
    # client runs it in this process): on the suite's shared cores, wall time also counts the
    # other processes' turns, which have nothing to do with the account.
    real, missing = statistics.median(cpu["real"]), statistics.median(cpu["missing"])
    print(
        f"{door}: median CPU real {real * 1000:.1f} ms, missing {missing * 1000:.1f} ms; median wall "
        f"real {statistics.median(wall['real']) * 1000:.1f} ms, missing {statistics.median(wall['missing']) * 1000:.1f} ms"
    )
    assert abs(real - missing) <= 0.2 * max(real, missing), cpu
