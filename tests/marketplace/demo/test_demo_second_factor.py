"""The demo's second factor: with MARKETPLACE_DEMO_TOTP_SECRET (development settings), load_demo_data
gives the superuser, leads and Finance an authenticator holding it, and `demo_totp_code` prints the
code they sign in with."""

from io import StringIO

import pytest
from django.core.management import call_command
from django.test import Client
from django_otp.plugins.otp_totp.models import TOTPDevice

pytestmark = [pytest.mark.django_db, pytest.mark.second_factor_unverified]

SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"  # base32 of b"Hello!\xde\xad\xbe\xef" twice
DEMO_PASSWORD = "demo12345"  # fixtures/01_staff.toml


def test_demo_accounts_that_need_a_second_factor_sign_in_with_the_demo_code(settings):
    # given development settings with the demo secret, and the demo loaded
    settings.MARKETPLACE_DEMO_TOTP_SECRET = SECRET
    out = StringIO()
    call_command("load_demo_data", stdout=out)
    # then exactly the superuser, the lead and Finance hold an authenticator with that secret
    holders = {d.user.email: d.key for d in TOTPDevice.objects.filter(confirmed=True).select_related("user")}
    assert holders == {
        email: "48656c6c6f21deadbeef48656c6c6f21deadbeef"
        for email in ["admin@demo.test", "lead@demo.test", "finance@demo.test", "finance2@demo.test"]
    }
    assert "demo_totp_code" in out.getvalue()
    # when the lead signs in with the demo password
    client = Client()
    client.post("/admin/login/", {"username": "lead@demo.test", "password": DEMO_PASSWORD})
    assert client.get("/admin/").headers["Location"].startswith("/admin/second-factor/verify/")
    # and types the code demo_totp_code prints
    code = StringIO()
    call_command("demo_totp_code", stdout=code, stderr=StringIO())
    verified = client.post("/admin/second-factor/verify/", {"code": code.getvalue().strip(), "next": "/admin/"})
    # then they are in
    assert verified.headers["Location"] == "/admin/"
    assert client.get("/admin/").status_code == 200


def test_demo_totp_code_refuses_settings_without_the_demo_secret(settings):
    settings.MARKETPLACE_DEMO_TOTP_SECRET = ""
    with pytest.raises(Exception, match="MARKETPLACE_DEMO_TOTP_SECRET is not set"):
        call_command("demo_totp_code", stdout=StringIO())
