"""The sign-in attempt lists in the operations admin (marketplace/accounts/signin_admin.py): a
superuser sees who is locked out and clears a lock by deleting its row."""

import pytest
from axes.models import AccessAttempt, AccessLog
from django.test import Client

from tests.factories import StaffFactory

pytestmark = pytest.mark.django_db

PASSWORD = "pass-1234"  # tests.factories.UserFactory
ATTEMPTS = "/admin/axes/accessattempt/"
ATTACKER = "203.0.113.9"


def _post_login(email: str, password: str, ip: str = ATTACKER):
    return Client(REMOTE_ADDR=ip).post("/admin/login/", {"username": email, "password": password})


@pytest.mark.parametrize(("who", "queries"), [("superuser", 14), ("lead", 16)])
def test_signin_admin_lists_a_lockout_and_deleting_it_clears_the_lock(
    who, queries, staff_groups, django_assert_num_queries
):
    # given a locked (account, IP) pair and a superuser or an Operations lead in the admin
    user = StaffFactory(groups=[], email="locked.out@example.test")
    for n in range(5):
        _post_login(user.email, f"guess-{n}")
    assert _post_login(user.email, PASSWORD).status_code == 429
    lead = Client()
    lead.force_login(
        StaffFactory(is_superuser=True) if who == "superuser" else StaffFactory(groups=["Operations lead"])
    )
    # when they open the attempts list (a pinned query count: one page of rows; a lead's
    # permissions cost two more, their own and their groups')
    with django_assert_num_queries(queries):
        page = lead.get(ATTEMPTS)
    # then the locked pair is there, read-only (no add button)
    assert page.status_code == 200
    assert b"locked.out@example.test" in page.content and ATTACKER.encode() in page.content
    assert f'href="{ATTEMPTS}add/"'.encode() not in page.content
    # when they delete the row
    attempt = AccessAttempt.objects.get()
    response = lead.post(f"{ATTEMPTS}{attempt.pk}/delete/", {"post": "yes"})
    # then the lock is gone: the right password signs in from that IP
    assert response.status_code == 302
    assert _post_login(user.email, PASSWORD).status_code == 302


def test_signin_admin_attempts_are_not_editable_and_hidden_from_agents(staff_groups):
    # given an attempt row
    _post_login("someone@example.test", "guess")
    attempt = AccessAttempt.objects.get()
    superuser, agent = Client(), Client()
    superuser.force_login(StaffFactory(is_superuser=True))
    agent.force_login(StaffFactory(groups=["Operations agent"]))
    # when a superuser posts a change  # then nothing changes
    superuser.post(f"{ATTEMPTS}{attempt.pk}/change/", {"username": "other@example.test"})
    assert AccessAttempt.objects.get().username == "someone@example.test"
    # and an agent without the axes permissions cannot see the list
    assert agent.get(ATTEMPTS).status_code == 403


def test_signin_through_the_form_is_logged_and_sign_out_ends_that_session():
    # given a staff member signed in through the throttled login form
    user = StaffFactory(groups=[], email="signs.in@example.test")
    client = Client(REMOTE_ADDR="198.51.100.30")
    assert client.post("/admin/login/", {"username": user.email, "password": PASSWORD}).status_code == 302
    cookie = client.cookies["sessionid"].value
    assert client.get("/admin/password_change/").status_code == 200
    # when they sign out
    client.post("/admin/logout/")
    # then the access log has the sign-in and the sign-out, and the old cookie signs nobody in
    log = AccessLog.objects.get()
    assert (log.username, log.ip_address, log.logout_time is not None) == (user.email, "198.51.100.30", True)
    replay = Client()
    replay.cookies["sessionid"] = cookie
    response = replay.get("/admin/password_change/")
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
