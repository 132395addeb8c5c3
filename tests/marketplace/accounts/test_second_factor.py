"""The TOTP second factor (marketplace/accounts/second_factor*.py), through HTTP: who needs it, the
wall in front of every staff door, enrolment, verification, backup codes, throttling and a lead's
reset. Codes are computed here from the secret the enrolment page shows, as a phone would."""

import base64
import re
import time
from urllib.parse import quote

import pytest
from django.test import Client
from django.urls import reverse
from django_otp.oath import TOTP
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from marketplace.accounts.second_factor import second_factor_required
from marketplace.audit.models import Event
from tests.factories import StaffFactory

pytestmark = [pytest.mark.django_db, pytest.mark.second_factor_unverified]

PASSWORD = "pass-1234"  # tests.factories.UserFactory
ENROL, VERIFY = "/admin/second-factor/enrol/", "/admin/second-factor/verify/"
BACKUP_CODES = "/admin/second-factor/backup-codes/"
# Every staff door, and addresses within them: none is reachable before the second factor.
GUARDED = [
    "/admin/",
    "/admin/my-work/",
    "/admin/payouts/payout/",
    "/admin/accounts/user/",
    "/admin/password_change/",
    "/admin/django_q/schedule/",
    "/cms/",
    "/cms/pages/",
    "/cms/documents/",
    "/documents/1/report.pdf",
]


def _sign_in(user) -> Client:
    """A browser signing in with the password at the admin's login form."""
    client = Client()
    response = client.post("/admin/login/", {"username": user.email, "password": PASSWORD})
    assert response.status_code == 302, response.content[:500]
    return client


def _code(secret: str, *, ahead: int = 0) -> str:
    """The 6-digit code an authenticator holding the base32 `secret` shows (`ahead` steps later)."""
    totp = TOTP(base64.b32decode(secret + "=" * (-len(secret) % 8)))
    totp.time = time.time() + 30 * ahead
    return f"{totp.token():06d}"


def _secret_on(page) -> str:
    found = re.search(r'data-secret="([A-Z2-7]+)"', page.content.decode())
    assert found, page.content.decode()[:2000]
    return found.group(1)


def _enrol(client) -> tuple[str, list[str]]:
    """Enrol through the pages; return the secret shown and the backup codes shown."""
    secret = _secret_on(client.get(ENROL))
    response = client.post(ENROL, {"code": _code(secret), "next": "/admin/"}, follow=True)
    codes = re.findall(r'<li class="second-factor-code[^"]*">([a-z2-7]{8})</li>', response.content.decode())
    return secret, codes


def _verbs(user) -> list[str]:
    return list(
        Event.objects.filter(target_id=str(user.pk), verb__startswith="second_factor.")
        .order_by("pk")
        .values_list("verb", flat=True)
    )


def test_second_factor_required_names_superusers_leads_and_finance(staff_groups):
    # given one account per kind of staff
    people = {
        "superuser": StaffFactory(is_superuser=True),
        "lead": StaffFactory(groups=["Operations lead"]),
        "finance": StaffFactory(groups=["Finance"]),
        "agent": StaffFactory(groups=["Operations agent"]),
        "support": StaffFactory(groups=["Support"]),
        "editor": StaffFactory(groups=["Content editor"]),
        "partner manager": StaffFactory(groups=["Partner manager"]),
    }
    # then the rule names the superuser, leads and Finance only
    assert {name for name, user in people.items() if second_factor_required(user)} == {"superuser", "lead", "finance"}


def test_second_factor_finance_without_a_device_reaches_only_enrolment(staff_groups):
    # given Finance, signed in with the password, without an authenticator
    finance = StaffFactory(groups=["Finance"])
    client = _sign_in(finance)
    # when they open any address of the admin, the CMS or the documents
    answers = {url: client.get(url) for url in GUARDED}
    # then each one sends them to enrolment, and back afterwards
    assert {url: (r.status_code, r.headers.get("Location")) for url, r in answers.items()} == {
        url: (302, f"{ENROL}?next={quote(url, safe='')}") for url in GUARDED
    }
    # and a form posted to the admin is refused the same way (nothing is written)
    posted = client.post("/admin/accounts/user/add/", {"email": "x@example.test"})
    assert (posted.status_code, posted.headers["Location"]) == (302, f"{ENROL}?next=%2Fadmin%2F")
    # and the verify page sends them to enrolment too (they have nothing to verify with)
    assert client.get(VERIFY).headers["Location"].startswith(ENROL)
    # while the enrolment page itself opens, with a QR code and the secret to type
    page = client.get(ENROL)
    assert page.status_code == 200
    assert b"<svg" in page.content and _secret_on(page)


def test_second_factor_agent_is_not_asked(staff_groups):
    # given an Operations agent signed in with the password
    client = _sign_in(StaffFactory(groups=["Operations agent"]))
    # then the admin opens, and the second-factor pages send them on
    assert client.get("/admin/").status_code == 200
    assert client.get(ENROL).headers["Location"] == "/admin/"


def test_second_factor_enrolment_refuses_a_wrong_code_and_confirms_with_the_right_one(staff_groups, settings):
    settings.OTP_TOTP_THROTTLE_FACTOR = 0  # a wrong code then the right one at once (throttling: below)
    # given Finance on the enrolment page
    finance = StaffFactory(groups=["Finance"])
    client = _sign_in(finance)
    secret = _secret_on(client.get(f"{ENROL}?next=/admin/payouts/payout/"))
    # when they type a wrong code
    wrong = client.post(ENROL, {"code": "000000" if _code(secret) != "000000" else "111111", "next": "/admin/"})
    # then the page says so and nothing is confirmed
    assert wrong.status_code == 200
    assert b"That code is not right" in wrong.content
    assert not TOTPDevice.objects.filter(user=finance, confirmed=True).exists()
    assert client.get("/admin/").headers["Location"].startswith(ENROL)
    # when they type the code the secret shown gives now
    right = client.post(ENROL, {"code": _code(secret), "next": "/admin/payouts/payout/"})
    # then ten backup codes are shown, once
    assert right.headers["Location"] == f"{BACKUP_CODES}?next=/admin/payouts/payout/"
    shown = client.get(right.headers["Location"])
    codes = re.findall(r'<li class="second-factor-code[^"]*">([a-z2-7]{8})</li>', shown.content.decode())
    assert len(set(codes)) == 10
    assert sorted(StaticToken.objects.filter(device__user=finance).values_list("token", flat=True)) == sorted(codes)
    assert client.get(BACKUP_CODES).headers["Location"] == "/admin/"
    # and the session is verified: the admin opens
    assert client.get("/admin/payouts/payout/").status_code == 200
    # and the timeline has each step
    assert _verbs(finance) == [
        "second_factor.enrolment_started",
        "second_factor.code_refused",
        "second_factor.enrolled",
        "second_factor.backup_codes_generated",
    ]


def test_second_factor_after_password_sign_in_the_code_is_asked_and_verifies(staff_groups, settings):
    settings.OTP_TOTP_THROTTLE_FACTOR = 0
    # given Finance who enrolled, then signed out
    finance = StaffFactory(groups=["Finance"])
    client = _sign_in(finance)
    secret, _ = _enrol(client)
    assert client.post("/admin/logout/").status_code == 200
    # when they sign in again with the password
    client = _sign_in(finance)
    # then every staff door sends them to the code page, not to enrolment
    assert {client.get(url).headers["Location"] for url in GUARDED} == {
        f"{VERIFY}?next={quote(url, safe='')}" for url in GUARDED
    }
    assert client.get(ENROL).headers["Location"].startswith(VERIFY)
    # when they type a wrong code, then the next code of their authenticator
    wrong = client.post(VERIFY, {"code": "12345", "next": "/admin/payouts/payout/"})
    assert wrong.status_code == 200 and b"That code is not right" in wrong.content
    right = client.post(VERIFY, {"code": _code(secret, ahead=1), "next": "/admin/payouts/payout/"})
    # then they are back where they were going, and in
    assert right.headers["Location"] == "/admin/payouts/payout/"
    assert client.get("/admin/payouts/payout/").status_code == 200
    # and a code already used does not verify another session
    again = _sign_in(finance).post(VERIFY, {"code": _code(secret, ahead=1)})
    assert again.status_code == 200 and b"That code is not right" in again.content


def test_second_factor_backup_code_works_once(staff_groups):
    # given a lead who enrolled and kept their backup codes
    lead = StaffFactory(groups=["Operations lead"])
    _, codes = _enrol(_sign_in(lead))
    # when they sign in without their phone and type a backup code
    client = _sign_in(lead)
    used = client.post(VERIFY, {"code": codes[3].upper(), "next": "/admin/"})
    # then it verifies, and nine are left
    assert used.headers["Location"] == "/admin/"
    assert client.get("/admin/").status_code == 200
    assert StaticToken.objects.filter(device__user=lead).count() == 9
    # when the same code is tried again in a new sign-in
    replay = _sign_in(lead).post(VERIFY, {"code": codes[3], "next": "/admin/"})
    # then it is refused
    assert replay.status_code == 200 and b"That code is not right" in replay.content
    used_events = Event.objects.filter(target_id=str(lead.pk), verb="second_factor.backup_code_used")
    assert [e.data["remaining"] for e in used_events] == [9]


def test_second_factor_wrong_codes_are_throttled(staff_groups):
    # given a superuser who enrolled (django-otp's throttle at its default factor: 1 s, 2 s, 4 s...)
    boss = StaffFactory(is_superuser=True)
    secret, _ = _enrol(_sign_in(boss))
    client = _sign_in(boss)
    # when a wrong code is followed at once by the right one
    client.post(VERIFY, {"code": "000000" if _code(secret, ahead=1) != "000000" else "111111"})
    throttled = client.post(VERIFY, {"code": _code(secret, ahead=1)})
    # then the right code is refused too, saying why
    assert throttled.status_code == 200
    assert b"Too many wrong codes in a row" in throttled.content
    assert client.get("/admin/").headers["Location"].startswith(VERIFY)
    refused = Event.objects.filter(target_id=str(boss.pk), verb="second_factor.code_refused").order_by("pk")
    assert [("locked_until" in e.data) for e in refused] == [False, True]
    assert TOTPDevice.objects.get(user=boss).throttling_failure_count == 1


def _reset_url(user) -> str:
    return reverse("admin:accounts_user_reset_second_factor", args=[user.pk])


def test_second_factor_reset_is_lead_only_refused_on_oneself_and_audited(staff_groups):
    # given Finance, enrolled and signed in (verified), and staff who might reset them
    finance = StaffFactory(groups=["Finance"])
    finance_client = _sign_in(finance)
    _enrol(finance_client)
    agent, lead = StaffFactory(groups=["Operations agent"]), StaffFactory(groups=["Operations lead"])
    agent_client, lead_client = Client(), Client()
    agent_client.force_login(agent)
    lead_client.force_login(lead, verified=True)
    # when an agent tries
    denied = [agent_client.get(_reset_url(finance)), agent_client.post(_reset_url(finance), {"reason": "x"})]
    # then 403, and the button is not offered to them
    assert [r.status_code for r in denied] == [403, 403]
    # when the lead tries on their own account
    own = lead_client.post(_reset_url(lead), {"reason": "lost my phone"})
    # then refused too, and their authenticator is still there
    assert own.status_code == 403
    assert TOTPDevice.objects.filter(user=lead, confirmed=True).exists()
    assert TOTPDevice.objects.filter(user=finance).count() == 1 and StaticDevice.objects.filter(user=finance).exists()
    # when the lead opens the button on Finance's page and confirms with a reason
    change = lead_client.get(reverse("admin:accounts_user_change", args=[finance.pk]))
    assert _reset_url(finance).encode() in change.content
    assert lead_client.get(_reset_url(finance)).status_code == 200
    done = lead_client.post(_reset_url(finance), {"reason": "Phone lost, ticket 4411"})
    # then Finance's devices are gone and their open session must enrol again
    assert done.status_code == 302
    assert (
        not TOTPDevice.objects.filter(user=finance).exists() and not StaticDevice.objects.filter(user=finance).exists()
    )
    assert finance_client.get("/admin/").headers["Location"].startswith(ENROL)
    # and the reset is on Finance's timeline, naming the lead and the reason
    reset = Event.objects.get(target_id=str(finance.pk), verb="second_factor.reset")
    assert (reset.actor, reset.reason, len(reset.data["devices"])) == (lead, "Phone lost, ticket 4411", 2)
    assert not Event.objects.filter(target_id=str(lead.pk), verb="second_factor.reset").exists()
    # and with nothing left to reset, the button is gone and a second post changes nothing
    change = lead_client.get(reverse("admin:accounts_user_change", args=[finance.pk]))
    assert _reset_url(finance).encode() not in change.content
    again = lead_client.post(_reset_url(finance), {"reason": "double click"}, follow=True)
    assert b"has no second factor to reset" in again.content
    assert Event.objects.filter(target_id=str(finance.pk), verb="second_factor.reset").count() == 1
