"""Partner API keys: create, revoke, authenticate.

A key reads `<prefix>.<secret>`. Only the SHA-256 of the whole string is stored, with its prefix
(which identifies the row); the full key is returned once by `api_key_create` and never again.
Creating and revoking need `partners.manage_api_keys` (Partner manager; superusers hold every
permission) and the key's partner in the actor's scope (`partner_for_user`); both are audited on
the key's timeline, never with the secret. A key authenticates while it is not revoked, not
expired and its partner is active.
"""

import hashlib
import hmac
import re
import secrets
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from marketplace.audit.services import event_record
from marketplace.core.exceptions import InvalidInput, NotPermitted, TransitionNotAllowed
from marketplace.partners.models import Partner, PartnerAPIKey
from marketplace.partners.selectors import partner_for_user

MANAGE_PERMISSION = "partners.manage_api_keys"
Scope = PartnerAPIKey.Scope
# How often `last_used_at` is written at most: one UPDATE a minute per key, not one per request.
LAST_USED_RESOLUTION = timedelta(seconds=60)
# `secrets.token_hex(4)`: eight lowercase hex digits. Anything else is not looked up at all.
_PREFIX = re.compile(r"[0-9a-f]{8}")
_SECRET = re.compile(r"[A-Za-z0-9_-]{20,100}")


def _hash(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def _require_manager(actor, partner_id: int, doing: str) -> None:
    if actor is None or not actor.has_perm(MANAGE_PERMISSION):
        raise NotPermitted(f"You may not {doing} partner API keys.")
    if not partner_for_user(actor).filter(pk=partner_id).exists():
        # Says nothing about the partner: whether it exists, its name.
        raise NotPermitted(f"You may not {doing} API keys for this partner.")


def _clean_scopes(scopes) -> list[str]:
    scopes = list(scopes or [])
    unknown = [s for s in scopes if s not in Scope.values]
    if unknown:
        raise InvalidInput(
            f"Unknown API key scope: {', '.join(map(str, unknown))}; use any of {', '.join(Scope.values)}."
        )
    if not scopes:
        raise InvalidInput("An API key needs at least one scope.")
    return [s for s in Scope.values if s in scopes]  # the allow-list's order, no duplicates


def api_key_for_user(user):
    """The API keys a staff user may see: those of the partners in their scope."""
    return PartnerAPIKey.objects.filter(partner__in=partner_for_user(user))


def api_key_status(key: PartnerAPIKey, *, now: datetime | None = None) -> str:
    """'revoked', 'expired' or 'active' (what the admin shows; authentication reads the same rule)."""
    now = now or timezone.now()
    if key.revoked_at is not None:
        return "revoked"
    if key.expires_at is not None and key.expires_at <= now:
        return "expired"
    return "active"


def api_key_create(
    *, actor, partner: Partner, name: str, scopes, expires_at: datetime | None = None
) -> tuple[PartnerAPIKey, str]:
    """Create a key for the partner and return it with the full secret, shown once and never stored."""
    _require_manager(actor, partner.pk, "create")
    name = (name or "").strip()
    if not name:
        raise InvalidInput("An API key needs a name.")
    if len(name) > PartnerAPIKey._meta.get_field("name").max_length:
        raise InvalidInput("An API key's name is at most 100 characters.")
    scopes = _clean_scopes(scopes)
    if expires_at is not None and expires_at <= timezone.now():
        raise InvalidInput("An API key's expiry must be in the future.")
    prefix = secrets.token_hex(4)
    secret = f"{prefix}.{secrets.token_urlsafe(32)}"
    with transaction.atomic():
        key = PartnerAPIKey.objects.create(
            partner=partner,
            name=name,
            prefix=prefix,
            hashed_key=_hash(secret),
            scopes=scopes,
            expires_at=expires_at,
            created_by=actor,
        )
        event_record(
            verb="partner.api_key_created",
            actor=actor,
            target=key,
            to_state="active",
            data={
                "partner": partner.pk,
                "name": name,
                "prefix": prefix,
                "scopes": scopes,
                "expires_at": expires_at.isoformat() if expires_at else None,
            },
        )
    return key, secret


def api_key_revoke(*, actor, key: PartnerAPIKey, reason: str) -> PartnerAPIKey:
    """Revoke a key for good (it stops authenticating at once). A reason is required."""
    _require_manager(actor, key.partner_id, "revoke")
    reason = (reason or "").strip()
    if not reason:
        raise InvalidInput("A reason is required to revoke an API key.")
    with transaction.atomic():
        key = PartnerAPIKey.objects.select_for_update().get(pk=key.pk)
        if key.revoked_at is not None:
            raise TransitionNotAllowed(
                key, "revoke", state="revoked", detail=f"It was revoked on {key.revoked_at:%Y-%m-%d %H:%M} UTC."
            )
        before = api_key_status(key)
        key.revoked_at = timezone.now()
        key.revoked_by = actor
        key.revoke_reason = reason
        key.save(update_fields=["revoked_at", "revoked_by", "revoke_reason"])
        event_record(
            verb="partner.api_key_revoked",
            actor=actor,
            target=key,
            from_state=before,
            to_state="revoked",
            reason=reason,
            data={"partner": key.partner_id, "name": key.name, "prefix": key.prefix},
        )
    return key


def api_key_authenticate(raw: str) -> PartnerAPIKey | None:
    """The key that `raw` (`<prefix>.<secret>`) is, or None: malformed, unknown, wrong secret,
    revoked, expired, or its partner is not active.

    The secret's hash is compared in constant time. `last_used_at` is written at most once a
    minute, by one conditional UPDATE that holds no lock beyond its own row write.
    """
    if not isinstance(raw, str):
        return None
    prefix, dot, secret = raw.partition(".")
    if not dot or not _PREFIX.fullmatch(prefix) or not _SECRET.fullmatch(secret):
        return None
    key = PartnerAPIKey.objects.select_related("partner").filter(prefix=prefix).first()
    if key is None or not hmac.compare_digest(key.hashed_key, _hash(raw)):
        return None
    now = timezone.now()
    if api_key_status(key, now=now) != "active" or key.partner.status != Partner.Status.ACTIVE:
        return None
    stale = now - LAST_USED_RESOLUTION
    if key.last_used_at is None or key.last_used_at < stale:
        # Conditional, so concurrent requests of the same minute write it once between them.
        PartnerAPIKey.objects.filter(pk=key.pk).filter(Q(last_used_at__isnull=True) | Q(last_used_at__lt=stale)).update(
            last_used_at=now
        )
        key.last_used_at = now
    return key


def api_key_has_scope(key: PartnerAPIKey, scope: str) -> bool:
    """Whether the key was given this scope (an unknown scope is never given)."""
    return scope in Scope.values and scope in (key.scopes or [])
