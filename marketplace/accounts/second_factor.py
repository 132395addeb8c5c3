"""The TOTP second factor: who needs it (one rule) and every change to a person's devices.

Superusers, Operations leads and Finance sign in with a password and then a code from an
authenticator app (django-otp's TOTPDevice), or one of ten one-time backup codes (a StaticDevice).
Each change to a person's devices is written to their timeline: enrolment started and confirmed,
backup codes generated or used, codes refused, and a lead's reset. A wrong code counts against
the device's django-otp throttle (OTP_TOTP_THROTTLE_FACTOR): after n wrong codes in a row, no
code at all is accepted for factor * 2^(n-1) seconds.
"""

import base64
import binascii
import re
from dataclasses import dataclass
from datetime import datetime

from django.db import transaction
from django.db.models import Q
from django_otp.models import Device
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from marketplace.accounts.models import User
from marketplace.accounts.services import StaffGroup
from marketplace.audit.services import event_record
from marketplace.core.exceptions import InvalidInput, NotPermitted

# The groups whose members need a second factor (superusers always do).
SECOND_FACTOR_GROUPS = (StaffGroup.OPERATIONS_LEAD, StaffGroup.FINANCE)
RESET_PERMISSION = "accounts.reset_second_factor"
BACKUP_CODE_COUNT = 10
AUTHENTICATOR_NAME = "Authenticator app"
BACKUP_CODES_NAME = "Backup codes"
DEMO_AUTHENTICATOR_NAME = "Demo authenticator (development secret)"
TOTP_CODE = re.compile(r"^\d{6}$")


def second_factor_required(user) -> bool:
    """Return whether this person must pass a second factor: superusers, leads and Finance."""
    if user is None or not user.is_authenticated or not user.is_active:
        return False
    if user.is_superuser:
        return True
    return user.groups.filter(name__in=SECOND_FACTOR_GROUPS).exists()


def second_factor_users():
    """Every account the rule names, as a queryset (the demo loader's and the admin's)."""
    return User.objects.filter(Q(is_superuser=True) | Q(groups__name__in=SECOND_FACTOR_GROUPS)).distinct()


def authenticator_get(user) -> TOTPDevice | None:
    """The person's confirmed authenticator, or None if they have not enrolled (or were reset)."""
    return TOTPDevice.objects.devices_for_user(user, confirmed=True).order_by("pk").first()


def secret_base32(device: TOTPDevice) -> str:
    """The device's secret as an authenticator app takes it by hand: base32, without padding."""
    return base64.b32encode(device.bin_key).decode().rstrip("=")


def secret_hex(secret: str) -> str:
    """A base32 secret (spaces and case ignored) as TOTPDevice's hex key; InvalidInput if it is not base32."""
    cleaned = re.sub(r"\s+", "", secret).upper()
    try:
        raw = base64.b32decode(cleaned + "=" * (-len(cleaned) % 8))
    except (binascii.Error, ValueError):
        raise InvalidInput("The TOTP secret is not base32 (letters A-Z and digits 2-7).") from None
    if len(raw) < 10:
        raise InvalidInput("The TOTP secret is too short: at least 16 base32 characters (80 bits).")
    return raw.hex()


def _lock(user) -> User:
    """Lock the person's row: their device changes happen one at a time."""
    return User.objects.select_for_update().get(pk=user.pk)


def _device_data(device: Device) -> dict:
    return {"device": device.persistent_id, "name": device.name}


def second_factor_enrolment_start(*, user) -> TOTPDevice:
    """Return the person's unconfirmed authenticator, creating it (audited) the first time.

    The same device (and secret) comes back until it is confirmed, so reloading the page does not
    invalidate a secret already scanned. Refuses a person who already has a confirmed one.
    """
    with transaction.atomic():
        _lock(user)
        if authenticator_get(user) is not None:
            raise InvalidInput("You already have an authenticator: a lead can reset it if you lost it.")
        device = TOTPDevice.objects.filter(user=user, confirmed=False).order_by("pk").first()
        if device is None:
            device = TOTPDevice.objects.create(user=user, name=AUTHENTICATOR_NAME, confirmed=False)
            event_record(verb="second_factor.enrolment_started", actor=user, target=user, data=_device_data(device))
    return device


def _code_refused(device: Device | None, token: str, *, user, kind: str) -> str | None:
    """Check `token` on `device`; None if accepted, else the message to show (the refusal audited).

    A device still locked by earlier wrong codes refuses without checking (and without counting);
    otherwise django-otp's verify_token counts a wrong code against the device's throttle.
    """
    allowed, info = device.verify_is_allowed() if device is not None else (True, None)
    if allowed and device is not None and token and device.verify_token(token):
        return None
    data = {"kind": kind, "failures": getattr(device, "throttling_failure_count", 0)}
    locked_until = (info or {}).get("locked_until") if not allowed else None
    if locked_until:
        data["locked_until"] = locked_until.isoformat()
    event_record(verb="second_factor.code_refused", actor=user, target=user, data=data)
    if locked_until:
        return _locked_message(locked_until)
    return "That code is not right. Check the time on your phone and try the newest code."


def _locked_message(until: datetime) -> str:
    return f"Too many wrong codes in a row: no code is accepted before {until:%H:%M:%S} UTC. Wait, then try again."


@dataclass
class Enrolment:
    device: TOTPDevice
    backup_codes: list[str]


def second_factor_enrolment_confirm(*, user, token: str) -> Enrolment:
    """Confirm the person's new authenticator with a code from it; make ten backup codes.

    A wrong code is refused (InvalidInput) and counted against the device's throttle; the count
    and the refusal are kept even though the call fails. On success the device is confirmed, any
    earlier backup codes are replaced and both changes are audited.
    """
    token = re.sub(r"\s+", "", token or "")
    with transaction.atomic():
        _lock(user)
        if authenticator_get(user) is not None:
            raise InvalidInput("You already have an authenticator: a lead can reset it if you lost it.")
        device = TOTPDevice.objects.filter(user=user, confirmed=False).order_by("pk").first()
        if device is None:
            raise InvalidInput("Start again: open the enrolment page to get a new secret.")
        refused = _code_refused(device, token, user=user, kind="enrolment")
        if not refused:
            device.confirmed = True
            device.save(update_fields=["confirmed"])
            TOTPDevice.objects.filter(user=user, confirmed=False).delete()
            event_record(verb="second_factor.enrolled", actor=user, target=user, data=_device_data(device))
            codes = _backup_codes_replace(user)
    if refused:
        raise InvalidInput(refused)
    return Enrolment(device=device, backup_codes=codes)


def _backup_codes_replace(user) -> list[str]:
    """Replace the person's backup codes with ten new ones (inside the caller's transaction)."""
    StaticDevice.objects.filter(user=user).delete()
    device = StaticDevice.objects.create(user=user, name=BACKUP_CODES_NAME, confirmed=True)
    codes = [StaticToken.random_token() for _ in range(BACKUP_CODE_COUNT)]
    StaticToken.objects.bulk_create([StaticToken(device=device, token=code) for code in codes])
    event_record(
        verb="second_factor.backup_codes_generated",
        actor=user,
        target=user,
        data={**_device_data(device), "count": len(codes)},
    )
    return codes


def second_factor_verify(*, user, token: str) -> Device:
    """Check a code for this person's sign-in; return the device that accepted it.

    Six digits are checked against the authenticator, anything else against the backup codes (a
    backup code is used up, and that is audited). A wrong code raises InvalidInput, is counted
    against the device's throttle and is written to the timeline.
    """
    token = re.sub(r"\s+", "", token or "").lower()
    totp = bool(TOTP_CODE.match(token))
    model = TOTPDevice if totp else StaticDevice
    with transaction.atomic():
        device = model.objects.devices_for_user(user, confirmed=True).select_for_update().order_by("pk").first()
        refused = _code_refused(device, token, user=user, kind="authenticator" if totp else "backup code")
        if not refused and not totp:
            left = StaticToken.objects.filter(device=device).count()
            event_record(
                verb="second_factor.backup_code_used",
                actor=user,
                target=user,
                data={**_device_data(device), "remaining": left},
            )
    if refused:
        raise InvalidInput(refused)
    return device


def second_factor_devices_exist(user) -> bool:
    """Whether the person has any second-factor device (confirmed or not) that a reset would remove."""
    return TOTPDevice.objects.filter(user=user).exists() or StaticDevice.objects.filter(user=user).exists()


def second_factor_reset(*, user, actor, reason: str = "") -> int:
    """Remove every second-factor device of `user`, so they enrol again at their next request.

    Only someone holding `accounts.reset_second_factor` (Operations lead) may, and never on their
    own account (another lead resets theirs). Their verified sessions stop being verified at once.
    Returns how many devices were removed.
    """
    if actor.pk == user.pk:
        raise NotPermitted("You cannot reset your own second factor: ask another Operations lead.")
    if not actor.has_perm(RESET_PERMISSION):
        raise NotPermitted("Only an Operations lead may reset a person's second factor.")
    with transaction.atomic():
        _lock(user)
        devices = [*TOTPDevice.objects.filter(user=user), *StaticDevice.objects.filter(user=user)]
        if not devices:
            raise InvalidInput(f"{user} has no second factor to reset.")
        for device in devices:
            device.delete()
        event_record(
            verb="second_factor.reset",
            actor=actor,
            target=user,
            reason=reason,
            data={"devices": [d.persistent_id for d in devices]},
        )
    return len(devices)


def second_factor_demo_devices_ensure(*, secret: str) -> list[User]:
    """Give each account the rule names a confirmed authenticator with the demo `secret` (base32).

    For the demo only (load_demo_data, with MARKETPLACE_DEMO_TOTP_SECRET set in development): every
    such account then signs in with the same authenticator entry. Accounts that already have a
    confirmed authenticator keep it. Returns the accounts given one.
    """
    key = secret_hex(secret)
    given = []
    with transaction.atomic():
        for user in second_factor_users().order_by("pk"):
            if authenticator_get(user) is not None:
                continue
            device = TOTPDevice.objects.create(user=user, name=DEMO_AUTHENTICATOR_NAME, key=key, confirmed=True)
            event_record(
                verb="second_factor.enrolled",
                actor=None,
                target=user,
                reason="Demo data: the development TOTP secret.",
                data=_device_data(device),
            )
            given.append(user)
    return given
