"""Test support for the TOTP second factor: what a signed-in staff test client carries.

`client.force_login(user)` skips the password step; for a person who needs a second factor
(superusers, Operations leads, Finance) it now skips the code step the same way: the person gets a
real confirmed authenticator (created once, kept) and the session is marked verified exactly as
`django_otp.login` does, so the suite's staff clients reach the admin as a signed-in, verified person
would. The second-factor tests opt out with `@pytest.mark.second_factor_unverified` (force_login
then leaves the session unverified, as a password sign-in does) or per call with
`client.force_login(user, verified=False)`.

`totp_code(device, ahead=...)` computes an authenticator's code, as the app on a phone would.
"""

import time

import pytest
from django.test import Client

_force_login = Client.force_login


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "second_factor_unverified: force_login leaves the session without a verified second factor"
    )


def totp_code(device, *, ahead: int = 0) -> str:
    """The code `device` shows now, or `ahead` time steps later (a code not used yet: each code
    verifies once, so a test that verifies twice within 30 seconds takes the next one)."""
    from django_otp.oath import TOTP

    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    totp.time = time.time() + ahead * device.step
    return f"{totp.token():0{device.digits}d}"


def totp_code_unused(device) -> str:
    """A code `device` accepts now: the current one, or the next if the current one was used
    (waiting when even that one was used)."""
    device.refresh_from_db()
    now = int((time.time() - device.t0) // device.step)
    ahead = max(0, device.last_t + 1 - now)
    if ahead > device.tolerance:
        time.sleep(device.step - (time.time() - device.t0) % device.step + 0.1)
        return totp_code_unused(device)
    return totp_code(device, ahead=ahead)


def authenticator_ensure(user):
    """The person's confirmed authenticator, made for them if they have none."""
    from django_otp.plugins.otp_totp.models import TOTPDevice

    from marketplace.accounts.second_factor import AUTHENTICATOR_NAME, authenticator_get

    return authenticator_get(user) or TOTPDevice.objects.create(user=user, name=AUTHENTICATOR_NAME, confirmed=True)


def session_verify(client: Client, user):
    """Give `user` a confirmed authenticator if they have none and mark the client's session
    verified by it (what `django_otp.login` writes). Returns the device."""
    from django_otp import DEVICE_ID_SESSION_KEY

    device = authenticator_ensure(user)
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session.save()
    return device


@pytest.fixture(autouse=True)
def _force_login_passes_the_second_factor(request, monkeypatch):
    verify_by_default = request.node.get_closest_marker("second_factor_unverified") is None

    def force_login(self, user, backend=None, *, verified=None):
        _force_login(self, user, backend)
        from marketplace.accounts.second_factor import second_factor_required

        if (verify_by_default if verified is None else verified) and second_factor_required(user):
            session_verify(self, user)

    monkeypatch.setattr(Client, "force_login", force_login)
