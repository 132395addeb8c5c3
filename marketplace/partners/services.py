"""Partners, their members and scope grants to staff."""

import hashlib
import secrets

from django.db import transaction
from django.utils.text import slugify
from guardian.shortcuts import assign_perm, remove_perm

from marketplace.audit.services import event_record
from marketplace.partners.models import Partner, PartnerAPIKey, PartnerMembership

SCOPE_PERMISSION = "partners.operate_partner"


def partner_create(*, name: str, actor=None, kind: str = Partner.Kind.PROVIDER, contact_email: str = "") -> Partner:
    with transaction.atomic():
        partner = Partner.objects.create(name=name, slug=slugify(name)[:200], kind=kind, contact_email=contact_email)
        event_record(verb="partner.created", actor=actor, target=partner)
    return partner


def partner_add_member(*, partner: Partner, user, role: str = PartnerMembership.Role.MEMBER, actor=None):
    with transaction.atomic():
        membership, created = PartnerMembership.objects.get_or_create(
            partner=partner, user=user, defaults={"role": role}
        )
        if created:
            event_record(verb="partner.member_added", actor=actor, target=partner, data={"user": user.pk, "role": role})
    return membership


def partner_scope_grant(*, partner: Partner, grantee, actor=None) -> None:
    """Let a staff user or group operate on this partner's rows. Written to the audit log."""
    with transaction.atomic():
        assign_perm(SCOPE_PERMISSION, grantee, partner)
        event_record(
            verb="scope.granted",
            actor=actor,
            target=partner,
            data={"grantee": str(grantee), "grantee_type": grantee._meta.model_name, "permission": SCOPE_PERMISSION},
        )


def partner_scope_revoke(*, partner: Partner, grantee, actor=None) -> None:
    with transaction.atomic():
        remove_perm(SCOPE_PERMISSION, grantee, partner)
        event_record(
            verb="scope.revoked",
            actor=actor,
            target=partner,
            data={"grantee": str(grantee), "grantee_type": grantee._meta.model_name, "permission": SCOPE_PERMISSION},
        )


def partner_api_key_create(*, partner: Partner, name: str, actor=None) -> tuple[PartnerAPIKey, str]:
    """Create an API key and return it with the plain secret, which is shown once and never stored."""
    prefix = secrets.token_hex(4)
    secret = f"{prefix}.{secrets.token_urlsafe(32)}"
    with transaction.atomic():
        key = PartnerAPIKey.objects.create(
            partner=partner, name=name, prefix=prefix, hashed_key=hashlib.sha256(secret.encode()).hexdigest()
        )
        event_record(verb="partner.api_key_created", actor=actor, target=partner, data={"prefix": prefix})
    return key, secret
