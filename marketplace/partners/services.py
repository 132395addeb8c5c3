"""Partners, their members and scope grants to staff.

Every write that changes money, risk or access is a function here with the same shape: the
actor's model permission, the partner in the actor's scope (`partner_for_user`), one transaction
holding the partner row's lock, `update_fields`, and an audit event on the partner's timeline
with what it was and what it became (and why, for risk and status).

A suspended partner's listings are hidden from the public catalogue (`listing_public_list`), its
new listings and bookings are refused (`partner_require_open`) and its payouts are held
(`partner_payouts_blocked`, read by the payout run). A risk-flagged partner's payouts are held too.
"""

from django.db import IntegrityError, connection, transaction
from django.utils.text import slugify
from guardian.shortcuts import assign_perm, remove_perm

from marketplace.audit.services import event_record
from marketplace.core.exceptions import InvalidInput, NotPermitted, TransitionNotAllowed
from marketplace.core.transitions import guard, lock
from marketplace.notifications.services import notify
from marketplace.partners.models import Partner, PartnerMembership
from marketplace.partners.selectors import partner_for_user, scope_is_global

SCOPE_PERMISSION = "partners.operate_partner"
ADD_PERMISSION = "partners.add_partner"
CHANGE_PERMISSION = "partners.change_partner"
RISK_PERMISSION = "partners.change_partner_risk"
MEMBER_ADD_PERMISSION = "partners.add_partnermembership"
MEMBER_CHANGE_PERMISSION = "partners.change_partnermembership"
MEMBER_REMOVE_PERMISSION = "partners.delete_partnermembership"

# What `partner_update` may change. Status and risk flag have their own services (with a reason);
# members theirs.
UPDATABLE_FIELDS = ("name", "slug", "kind", "contact_email")

S = Partner.Status
# transition -> (states it may start from, state it leads to)
TRANSITIONS: dict[str, tuple[set[str], str]] = {
    "suspend": ({S.ACTIVE}, S.SUSPENDED),
    "reinstate": ({S.SUSPENDED}, S.ACTIVE),
}
_TRANSITION_TO = {target: name for name, (_, target) in TRANSITIONS.items()}
# What the risk flag reads as on a timeline and in a "nothing to do" message.
FLAGGED, CLEAR = "risk-flagged", "unflagged"


# --- Guards ------------------------------------------------------------------------------------


def _require_permission(actor, permission: str, doing: str) -> None:
    if actor is None or not actor.has_perm(permission):
        raise NotPermitted(f"You may not {doing}.")


def _lock_in_scope(partner: Partner, actor) -> Partner:
    """The partner row, locked; NotPermitted when it is outside the actor's scope.

    Callers are inside `transaction.atomic()`. The scope is read first (an index lookup through
    the grants) so nobody waits on a lock for a partner they may not touch.
    """
    if not partner_for_user(actor).filter(pk=partner.pk).exists():
        raise NotPermitted(f"Partner #{partner.pk} is outside your scope.")
    return lock(Partner, partner.pk)


def _require_reason(reason: str, doing: str) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise InvalidInput(f"A reason is required to {doing}.")
    return reason


def _clean_slug(value: str, *, name: str) -> str:
    slug = slugify(value or name)[:200]
    if not slug:
        raise InvalidInput("A partner needs a name (and a slug made of letters, digits or hyphens).")
    return slug


def _check_kind(kind: str) -> str:
    if kind not in Partner.Kind.values:
        raise InvalidInput(f"'{kind}' is not a kind of partner; use one of {', '.join(Partner.Kind.values)}.")
    return kind


def partner_require_open(*, partner_id: int, doing: str) -> None:
    """Refuse new business (a listing, a booking) with a suspended partner. Call inside the transaction
    that writes the new row, before writing it.

    The partner row is read `FOR KEY SHARE`: a suspension (`partner_status_set`, which holds the row
    `FOR UPDATE`) that is in flight is waited for and then seen, and one that starts later waits until
    this transaction has committed its row. Shared with other bookings and listings of the partner,
    so they never wait on each other.
    """
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("partner_require_open() must be called inside transaction.atomic()")
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT status FROM {Partner._meta.db_table} WHERE id = %s FOR KEY SHARE", [partner_id])
            row = cursor.fetchone()
        status = row[0] if row else None
    else:
        status = Partner.objects.filter(pk=partner_id).values_list("status", flat=True).first()
    if status == S.SUSPENDED:
        raise InvalidInput(f"Partner #{partner_id} is suspended: {doing} is refused until it is reinstated.")


# --- Partners ----------------------------------------------------------------------------------


def partner_create(
    *, actor, name: str, slug: str = "", kind: str = Partner.Kind.PROVIDER, contact_email: str = ""
) -> Partner:
    """A new active partner. Whoever creates it without an all-partners scope is granted its scope,
    so a partner manager can go on to manage the partner they onboarded (audited as a grant)."""
    _require_permission(actor, ADD_PERMISSION, "create partners")
    name = (name or "").strip()
    if not name:
        raise InvalidInput("A partner needs a name.")
    slug = _clean_slug(slug, name=name)
    kind = _check_kind(kind)
    with transaction.atomic():
        if Partner.objects.filter(slug=slug).exists():
            raise InvalidInput(f"A partner with the slug '{slug}' already exists.")
        try:
            with transaction.atomic():
                partner = Partner.objects.create(name=name, slug=slug, kind=kind, contact_email=contact_email or "")
        except IntegrityError:  # created by someone else since the check
            raise InvalidInput(f"A partner with the slug '{slug}' already exists.") from None
        event_record(
            verb="partner.created",
            actor=actor,
            target=partner,
            to_state=partner.status,
            data={"name": name, "slug": slug, "kind": kind, "contact_email": partner.contact_email},
        )
        if not scope_is_global(actor):
            partner_scope_grant(partner=partner, grantee=actor, actor=actor)
    return partner


def partner_update(*, partner: Partner, actor, data: dict) -> Partner:
    """Change a partner's name, slug, kind or contact email. Each change is audited with its old value."""
    unknown = set(data) - set(UPDATABLE_FIELDS)
    if unknown:
        raise InvalidInput(f"These fields cannot be changed here: {', '.join(sorted(unknown))}.")
    _require_permission(actor, CHANGE_PERMISSION, "change partners")
    data = dict(data)
    if "name" in data:
        data["name"] = (data["name"] or "").strip()
        if not data["name"]:
            raise InvalidInput("A partner needs a name.")
    if "slug" in data:
        data["slug"] = _clean_slug(data["slug"], name="")
    if "kind" in data:
        _check_kind(data["kind"])
    if "contact_email" in data:
        data["contact_email"] = data["contact_email"] or ""
    with transaction.atomic():
        partner = _lock_in_scope(partner, actor)
        changes = {f: {"from": getattr(partner, f), "to": v} for f, v in data.items() if getattr(partner, f) != v}
        if not changes:
            return partner
        if "slug" in changes and Partner.objects.filter(slug=data["slug"]).exclude(pk=partner.pk).exists():
            raise InvalidInput(f"A partner with the slug '{data['slug']}' already exists.")
        for field, change in changes.items():
            setattr(partner, field, change["to"])
        partner.save(update_fields=list(changes))
        event_record(verb="partner.updated", actor=actor, target=partner, data=changes)
    return partner


def partner_status_set(*, partner: Partner, status: str, actor, reason: str) -> Partner:
    """Suspend a partner (its listings leave the catalogue, new bookings are refused, payouts held)
    or reinstate it. A reason is required either way; the partner's owners are told."""
    if status not in _TRANSITION_TO:
        raise InvalidInput(f"'{status}' is not a partner status; use one of {', '.join(S.values)}.")
    transition = _TRANSITION_TO[status]
    _require_permission(actor, RISK_PERMISSION, "suspend or reinstate partners")
    reason = _require_reason(reason, f"{transition} a partner")
    with transaction.atomic():
        partner = _lock_in_scope(partner, actor)
        guard(partner, TRANSITIONS, transition)
        from_state = partner.status
        partner.status = status
        partner.save(update_fields=["status"])
        event_record(
            verb=f"partner.{'suspended' if status == S.SUSPENDED else 'reinstated'}",
            actor=actor,
            target=partner,
            from_state=from_state,
            to_state=status,
            reason=reason,
        )
        title = (
            f"{partner.name} is suspended: its listings are hidden, new bookings refused and payouts held"
            if status == S.SUSPENDED
            else f"{partner.name} is active again"
        )
        for membership in partner.memberships.filter(role=PartnerMembership.Role.OWNER).select_related("user"):
            notify(user=membership.user, verb=f"partner.{transition}", target=partner, title=title, body=reason)
    return partner


def partner_risk_flag_set(*, partner: Partner, flagged: bool, actor, reason: str) -> Partner:
    """Set or clear a partner's risk flag (a flagged partner's payouts are held). A reason is required."""
    doing = "risk-flag partners" if flagged else "clear partners' risk flags"
    _require_permission(actor, RISK_PERMISSION, doing)
    reason = _require_reason(reason, "set a risk flag" if flagged else "clear a risk flag")
    with transaction.atomic():
        partner = _lock_in_scope(partner, actor)
        before, after = (FLAGGED if partner.risk_flag else CLEAR), (FLAGGED if flagged else CLEAR)
        if partner.risk_flag == bool(flagged):
            raise TransitionNotAllowed(partner, "flag" if flagged else "clear the flag", state=before)
        partner.risk_flag = bool(flagged)
        partner.save(update_fields=["risk_flag"])
        event_record(
            verb="partner.risk_flagged" if flagged else "partner.risk_cleared",
            actor=actor,
            target=partner,
            from_state=before,
            to_state=after,
            reason=reason,
        )
    return partner


# --- Members -----------------------------------------------------------------------------------


def _check_role(role: str) -> str:
    if role not in PartnerMembership.Role.values:
        raise InvalidInput(f"'{role}' is not a member role; use one of {', '.join(PartnerMembership.Role.values)}.")
    return role


def _membership(partner: Partner, user) -> PartnerMembership:
    membership = PartnerMembership.objects.select_for_update().filter(partner=partner, user=user).first()
    if membership is None:
        raise InvalidInput(f"{user} is not a member of {partner}.")
    return membership


def partner_membership_add(
    *, partner: Partner, user, actor, role: str = PartnerMembership.Role.MEMBER
) -> PartnerMembership:
    """Make `user` a member (or an owner) of the partner: they may then own its service listings."""
    _require_permission(actor, MEMBER_ADD_PERMISSION, "add partner members")
    role = _check_role(role)
    if not user.is_active:
        raise InvalidInput(f"{user} is deactivated and cannot become a member.")
    with transaction.atomic():
        partner = _lock_in_scope(partner, actor)
        if PartnerMembership.objects.filter(partner=partner, user=user).exists():
            raise InvalidInput(f"{user} is already a member of {partner}.")
        membership = PartnerMembership.objects.create(partner=partner, user=user, role=role)
        event_record(
            verb="partner.member_added",
            actor=actor,
            target=partner,
            to_state=role,
            data={"user": user.pk, "email": user.email, "role": role},
        )
    return membership


def partner_membership_remove(*, partner: Partner, user, actor, reason: str = "") -> None:
    """End `user`'s membership of the partner. Their listings stay (a moderator decides about them)."""
    _require_permission(actor, MEMBER_REMOVE_PERMISSION, "remove partner members")
    with transaction.atomic():
        partner = _lock_in_scope(partner, actor)
        membership = _membership(partner, user)
        role = membership.role
        membership.delete()
        event_record(
            verb="partner.member_removed",
            actor=actor,
            target=partner,
            from_state=role,
            reason=(reason or "").strip(),
            data={"user": user.pk, "email": user.email, "role": role},
        )


def partner_membership_role_set(*, partner: Partner, user, role: str, actor) -> PartnerMembership:
    """Make a member an owner, or an owner a plain member."""
    _require_permission(actor, MEMBER_CHANGE_PERMISSION, "change partner members' roles")
    role = _check_role(role)
    with transaction.atomic():
        partner = _lock_in_scope(partner, actor)
        membership = _membership(partner, user)
        if membership.role == role:
            raise InvalidInput(f"{user} is already {membership.get_role_display().lower()} of {partner}.")
        before = membership.role
        membership.role = role
        membership.save(update_fields=["role"])
        event_record(
            verb="partner.member_role_changed",
            actor=actor,
            target=partner,
            from_state=before,
            to_state=role,
            data={"user": user.pk, "email": user.email, "role": {"from": before, "to": role}},
        )
    return membership


# --- Scope grants -----------------------------------------------------------------------------


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
