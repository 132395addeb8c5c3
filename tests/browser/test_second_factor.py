"""The second factor in a real browser: Finance signs in, sets up an authenticator from the page
(the test reads the secret the page shows and computes the codes, as a phone would), keeps the
backup codes, signs out, and signs in again with a fresh code."""

import base64
import re
import time

import pytest
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

from tests.browser.conftest import PASSWORD
from tests.factories import StaffFactory

pytestmark = pytest.mark.django_db(transaction=True)


def _code(secret: str, *, ahead: int = 0) -> str:
    totp = TOTP(base64.b32decode(secret + "=" * (-len(secret) % 8)))
    totp.time = time.time() + 30 * ahead
    return f"{totp.token():06d}"


def _password_step(page, user) -> None:
    page.goto("/admin/payouts/payout/")
    page.wait_for_url(re.compile(r".*/admin/login/"))
    page.fill("input[name=username]", user.email)
    page.fill("input[name=password]", PASSWORD)
    page.press("input[name=password]", "Enter")


def test_second_factor_finance_enrols_signs_out_and_signs_in_with_a_code(page, staff_groups):
    # given Finance with a password and no authenticator
    finance = StaffFactory(groups=["Finance"])
    finance.set_password(PASSWORD)
    finance.save(update_fields=["password"])
    # when they sign in with the password, on their way to the payouts
    _password_step(page, finance)
    # then the enrolment page asks them to set up an authenticator, with a QR code and the secret
    page.wait_for_url(re.compile(r".*/admin/second-factor/enrol/\?next=%2Fadmin%2Fpayouts%2Fpayout%2F"))
    assert page.locator("#second-factor-qr svg").is_visible()
    secret = page.get_attribute("#second-factor-secret", "data-secret")
    assert page.inner_text("#second-factor-secret").replace(" ", "") == secret
    page.shot("enrolment")
    # and the admin stays closed meanwhile: the payouts lead back to enrolment
    page.goto("/admin/payouts/payout/")
    page.wait_for_url(re.compile(r".*/admin/second-factor/enrol/\?next=%2Fadmin%2Fpayouts%2Fpayout%2F"))
    # when they type a wrong code
    page.fill("input[name=code]", "000000" if _code(secret) != "000000" else "111111")
    page.submit("#second-factor-enrol-form button[type=submit]")
    # then the page says so
    assert "That code is not right" in page.inner_text("body")
    page.shot("enrolment-wrong-code")
    time.sleep(1.1)  # django-otp's throttle: one wrong code locks the device for a second
    # when they type the code their authenticator shows
    page.fill("input[name=code]", _code(secret))
    page.submit("#second-factor-enrol-form button[type=submit]")
    # then ten backup codes are shown once
    page.wait_for_url(re.compile(r".*/admin/second-factor/backup-codes/"))
    codes = page.locator("#second-factor-backup-codes li").all_inner_texts()
    assert len(set(codes)) == 10 and all(re.fullmatch(r"[a-z2-7]{8}", c) for c in codes)
    page.shot("backup-codes")
    assert TOTPDevice.objects.get(user=finance).confirmed
    # when they continue, they reach the payouts they were going to
    page.get_by_text("I have saved them: continue").click()
    page.wait_for_url(re.compile(r".*/admin/payouts/payout/$"))
    page.shot("payouts-after-enrolment")
    # when they sign out
    with page.expect_navigation():
        page.eval_on_selector("#logout-form", "form => form.requestSubmit()")
    page.shot("signed-out")
    # and sign in again with the password
    _password_step(page, finance)
    # then the code page asks for a code (not enrolment again)
    page.wait_for_url(re.compile(r".*/admin/second-factor/verify/"))
    page.shot("verify")
    # when they type the authenticator's next code (the one they enrolled with is used up)
    page.fill("input[name=code]", _code(secret, ahead=1))
    page.submit("#second-factor-verify-form button[type=submit]")
    # then they are in the payouts
    page.wait_for_url(re.compile(r".*/admin/payouts/payout/$"))
    assert "Payouts" in page.inner_text("body") or "payout" in page.inner_text("body").lower()
    page.shot("payouts-after-code")
