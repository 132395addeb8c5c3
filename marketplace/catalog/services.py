"""Listing moderation: every transition of the listing state machine is one function here."""

from decimal import Decimal, InvalidOperation

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.text import slugify

from marketplace.audit.services import event_record
from marketplace.catalog.models import Category, Listing
from marketplace.catalog.selectors import granted_category_ids, listing_for_user
from marketplace.core.exceptions import InvalidInput, NotPermitted, TransitionNotAllowed
from marketplace.core.money import currency_check, quantize
from marketplace.core.transitions import guard, lock
from marketplace.notifications.services import notify
from marketplace.partners.models import Partner, PartnerMembership
from marketplace.partners.selectors import scope_is_global
from marketplace.partners.services import partner_require_open

S = Listing.Status

# transition -> (states it may start from, state it leads to)
TRANSITIONS: dict[str, tuple[set[str], str]] = {
    "submit": ({S.DRAFT, S.CHANGES_REQUESTED}, S.PENDING_REVIEW),
    "approve": ({S.PENDING_REVIEW}, S.PUBLISHED),
    "request_changes": ({S.PENDING_REVIEW}, S.CHANGES_REQUESTED),
    "reject": ({S.PENDING_REVIEW}, S.REJECTED),
    "pause": ({S.PUBLISHED}, S.PAUSED),
    "resume": ({S.PAUSED}, S.PUBLISHED),
    "suspend": ({S.PUBLISHED, S.PAUSED}, S.SUSPENDED),
    "reinstate": ({S.SUSPENDED}, S.PUBLISHED),
    "expire": ({S.PUBLISHED, S.PAUSED}, S.EXPIRED),
    "archive": ({s for s in S if s != S.ARCHIVED}, S.ARCHIVED),
}

# Transitions the listing's owner makes; a moderator in scope may make them too. The others are
# moderation: a moderator (`catalog.moderate_listing`) with the listing in scope (`listing_for_user`).
OWNER_TRANSITIONS = frozenset({"submit", "pause", "resume", "archive"})
MODERATE_PERMISSION = "catalog.moderate_listing"

# Editing one of these on a live listing sends the edit to review; the live version stays.
MATERIAL_FIELDS = ("title", "description", "price", "category_id")
EDITABLE_FIELDS = (*MATERIAL_FIELDS, "ends_at")


def _is_moderator(listing: Listing, actor) -> bool:
    return actor.has_perm(MODERATE_PERMISSION) and listing_for_user(actor).filter(pk=listing.pk).exists()


def _require_moderator(listing: Listing, actor) -> None:
    """A moderator with this listing in scope, or NotPermitted naming the listing."""
    if not actor.has_perm(MODERATE_PERMISSION):
        raise NotPermitted(
            f"Listing #{listing.pk} can only be moderated by staff with the permission to moderate listings."
        )
    if not listing_for_user(actor).filter(pk=listing.pk).exists():
        raise NotPermitted(f"Listing #{listing.pk} is outside your scope.")


def _require_owner_or_moderator(listing: Listing, actor) -> None:
    if actor.pk == listing.owner_id or _is_moderator(listing, actor):
        return
    raise NotPermitted(f"Listing #{listing.pk} can only be changed by its owner or a moderator in scope.")


def _require(listing: Listing, actor, transition: str) -> None:
    """Who may fire `transition`; the system (actor None) only expires listings."""
    if actor is None and transition == "expire":
        return
    if actor is None:
        raise NotPermitted(f"Listing #{listing.pk} cannot {transition} without a person acting.")
    if transition in OWNER_TRANSITIONS:
        _require_owner_or_moderator(listing, actor)
    else:
        _require_moderator(listing, actor)


def _move(listing: Listing, *, actor, transition: str, reason: str = "", extra_fields=()) -> Listing:
    """Apply one guarded transition to a locked listing, audit it and notify the owner.

    The state is checked first and the actor's right second, so a transition that cannot start
    from this state says so whoever asks.
    """
    target = guard(listing, TRANSITIONS, transition)
    _require(listing, actor, transition)
    from_state = listing.status
    listing.status = target
    listing.moderation_reason = reason if target in (S.CHANGES_REQUESTED, S.REJECTED, S.SUSPENDED) else ""
    listing.save(update_fields=["status", "moderation_reason", "updated_at", *extra_fields])
    event_record(
        verb=f"listing.{transition}", actor=actor, target=listing, from_state=from_state, to_state=target, reason=reason
    )
    notify(
        user=listing.owner,
        verb=f"listing.{transition}",
        target=listing,
        title=f"Your listing “{listing.title}” is now {listing.get_status_display().lower()}",
        body=reason,
    )
    return listing


def _require_reason(reason: str, transition: str) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise InvalidInput(f"A reason is required to {transition} a listing.")
    return reason


def listing_create(
    *,
    owner,
    partner,
    category: Category,
    title: str,
    price: Decimal,
    kind: str = Listing.Kind.SERVICE,
    description: str = "",
    currency: str | None = None,
    ends_at=None,
) -> Listing:
    """Create a draft listing, owned by `owner` (who acts) for `partner`.

    The currency must be one of MARKETPLACE_CURRENCIES (default MARKETPLACE_DEFAULT_CURRENCY). A
    service listing's owner must be a member of the partner; a job is posted by a client through
    an integrator partner, who has no members. A suspended partner takes no new listings.
    """
    if price is None or Decimal(price) < 0:
        raise InvalidInput("The price cannot be negative.")
    currency = currency_check(currency or settings.MARKETPLACE_DEFAULT_CURRENCY)
    if kind not in Listing.Kind.values:
        raise InvalidInput(f"'{kind}' is not a kind of listing.")
    posted_through_integrator = kind == Listing.Kind.JOB and partner.kind == Partner.Kind.INTEGRATOR
    if not posted_through_integrator and not PartnerMembership.objects.filter(partner=partner, user=owner).exists():
        raise NotPermitted(f"{owner} is not a member of {partner} and cannot list services for it.")
    with transaction.atomic():
        partner_require_open(partner_id=partner.pk, doing="a new listing")
        listing = Listing.objects.create(
            owner=owner,
            partner=partner,
            category=category,
            title=title,
            price=quantize(price),
            kind=kind,
            description=description,
            currency=currency,
            ends_at=ends_at,
        )
        event_record(verb="listing.created", actor=owner, target=listing, to_state=listing.status)
    return listing


def listing_submit(*, listing: Listing, actor) -> Listing:
    """Send a draft (or a listing whose changes were requested) to the moderation queue."""
    with transaction.atomic():
        listing = lock(Listing, listing.pk)
        listing.submitted_at = timezone.now()
        return _move(listing, actor=actor, transition="submit", extra_fields=["submitted_at"])


def listing_approve(*, listing: Listing, actor) -> Listing:
    with transaction.atomic():
        listing = lock(Listing, listing.pk)
        listing.published_at = timezone.now()
        return _move(listing, actor=actor, transition="approve", extra_fields=["published_at"])


def listing_request_changes(*, listing: Listing, actor, reason: str) -> Listing:
    reason = _require_reason(reason, "request changes to")
    with transaction.atomic():
        listing = lock(Listing, listing.pk)
        return _move(listing, actor=actor, transition="request_changes", reason=reason)


def listing_reject(*, listing: Listing, actor, reason: str) -> Listing:
    reason = _require_reason(reason, "reject")
    with transaction.atomic():
        listing = lock(Listing, listing.pk)
        return _move(listing, actor=actor, transition="reject", reason=reason)


def listing_pause(*, listing: Listing, actor) -> Listing:
    with transaction.atomic():
        listing = lock(Listing, listing.pk)
        return _move(listing, actor=actor, transition="pause")


def listing_resume(*, listing: Listing, actor) -> Listing:
    with transaction.atomic():
        listing = lock(Listing, listing.pk)
        return _move(listing, actor=actor, transition="resume")


def listing_suspend(*, listing: Listing, actor, reason: str) -> Listing:
    reason = _require_reason(reason, "suspend")
    with transaction.atomic():
        listing = lock(Listing, listing.pk)
        return _move(listing, actor=actor, transition="suspend", reason=reason)


def listing_reinstate(*, listing: Listing, actor) -> Listing:
    with transaction.atomic():
        listing = lock(Listing, listing.pk)
        return _move(listing, actor=actor, transition="reinstate")


def listing_expire(*, listing: Listing, actor=None) -> Listing:
    """Expire a live listing: the timer (actor None), or a moderator in scope."""
    with transaction.atomic():
        listing = lock(Listing, listing.pk)
        return _move(listing, actor=actor, transition="expire")


def listing_archive(*, listing: Listing, actor) -> Listing:
    """Archive a listing for good; a pending edit is dropped, so it leaves the moderation queue."""
    with transaction.atomic():
        listing = lock(Listing, listing.pk)
        listing.pending_changes = None
        listing.pending_changes_at = None
        return _move(listing, actor=actor, transition="archive", extra_fields=["pending_changes", "pending_changes_at"])


def listing_update(*, listing: Listing, actor, data: dict) -> Listing:
    """Edit a listing. A material edit of a live listing is held for review; the live version stays.

    Drafts and listings with changes requested are edited in place. Archived, rejected and
    expired listings cannot be edited. Only the owner, or a moderator in scope, may edit.
    """
    unknown = set(data) - set(EDITABLE_FIELDS)
    if unknown:
        raise InvalidInput(f"These fields cannot be edited: {', '.join(sorted(unknown))}.")
    if "price" in data:
        if Decimal(data["price"]) < 0:
            raise InvalidInput("The price cannot be negative.")
        data = {**data, "price": quantize(data["price"])}
    with transaction.atomic():
        listing = lock(Listing, listing.pk)
        if listing.status in (S.ARCHIVED, S.REJECTED, S.EXPIRED):
            raise TransitionNotAllowed(listing, "edit")
        _require_owner_or_moderator(listing, actor)
        live = listing.status in (S.PUBLISHED, S.PAUSED, S.SUSPENDED)
        proposed = False
        if live:
            # Material fields wait for review; setting one back to its live value withdraws it.
            direct = {k: v for k, v in data.items() if k not in MATERIAL_FIELDS}
            pending = dict(listing.pending_changes or {})
            for field in MATERIAL_FIELDS:
                if field not in data:
                    continue
                if str(getattr(listing, field)) == str(data[field]):
                    pending.pop(field, None)
                else:
                    pending[field] = str(data[field])
                    proposed = True
            fields = [*direct]
            if (pending or None) != listing.pending_changes:
                listing.pending_changes = pending or None
                listing.pending_changes_at = timezone.now() if pending else None
                fields += ["pending_changes", "pending_changes_at"]
        else:
            direct = {k: v for k, v in data.items() if str(getattr(listing, k)) != str(v)}
            fields = [*direct]
        for field, value in direct.items():
            setattr(listing, field, value)
        if fields:
            listing.save(update_fields=[*fields, "updated_at"])
            event_record(
                verb="listing.revision_proposed" if proposed else "listing.edited",
                actor=actor,
                target=listing,
                data={k: str(v) for k, v in data.items()},
            )
    return listing


def listing_approve_revision(*, listing: Listing, actor) -> Listing:
    """Apply the pending material edit to the live listing."""
    with transaction.atomic():
        listing = lock(Listing, listing.pk)
        if not listing.pending_changes:
            raise TransitionNotAllowed(listing, "approve a revision", detail="There is no pending revision.")
        _require_moderator(listing, actor)
        changes = listing.pending_changes
        for field, value in changes.items():
            setattr(listing, field, Decimal(value) if field == "price" else value)
        listing.pending_changes = None
        listing.pending_changes_at = None
        listing.save(update_fields=[*changes, "pending_changes", "pending_changes_at", "updated_at"])
        event_record(verb="listing.revision_approved", actor=actor, target=listing, data=changes)
        notify(
            user=listing.owner,
            verb="listing.revision_approved",
            target=listing,
            title=f"Your changes to “{listing.title}” are live",
        )
    return listing


def listing_reject_revision(*, listing: Listing, actor, reason: str) -> Listing:
    reason = _require_reason(reason, "reject the revision of")
    with transaction.atomic():
        listing = lock(Listing, listing.pk)
        if not listing.pending_changes:
            raise TransitionNotAllowed(listing, "reject a revision", detail="There is no pending revision.")
        _require_moderator(listing, actor)
        changes = listing.pending_changes
        listing.pending_changes = None
        listing.pending_changes_at = None
        listing.save(update_fields=["pending_changes", "pending_changes_at", "updated_at"])
        event_record(verb="listing.revision_rejected", actor=actor, target=listing, reason=reason, data=changes)
        notify(
            user=listing.owner,
            verb="listing.revision_rejected",
            target=listing,
            title=f"Your changes to “{listing.title}” were not accepted",
            body=reason,
        )
    return listing


# --- Categories ----------------------------------------------------------------------------------
# A category's commission rate is money: it is set when the category is made and changed only by
# `category_commission_set` (a permission of its own, a reason, an audit event with both rates).
# Bookings copy the rate and their fee when they are made, so a change applies to new bookings only.

CATEGORY_ADD_PERMISSION = "catalog.add_category"
CATEGORY_CHANGE_PERMISSION = "catalog.change_category"
COMMISSION_PERMISSION = "catalog.change_category_commission"
RATE_PLACES = Decimal("0.0001")
CATEGORY_FIELDS = ("name", "slug", "is_active")


def commission_rate_check(value) -> Decimal:
    """A commission rate: a number from 0 to 1 with at most four decimal places (0.1250 is 12.5%)."""
    if isinstance(value, float):
        raise TypeError("A commission rate is never a float; pass a Decimal or a string.")
    try:
        rate = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        raise InvalidInput(f"'{value}' is not a commission rate; write it as a number from 0 to 1, e.g. 0.1250.")
    if not rate.is_finite() or not Decimal(0) <= rate <= Decimal(1):
        raise InvalidInput("The commission rate must be between 0 and 1 (0.1250 is 12.5%).")
    if rate != rate.quantize(RATE_PLACES):
        raise InvalidInput("The commission rate has at most four decimal places (0.1250 is 12.5%).")
    return rate.quantize(RATE_PLACES)


def _require_category_scope(category: Category, actor) -> None:
    """Leads and Finance (all partners) reach every category; others the categories granted to them."""
    if scope_is_global(actor) or granted_category_ids(actor).filter(pk=category.pk).exists():
        return
    raise NotPermitted(f"Category #{category.pk} is outside your scope.")


def _require_permission(actor, permission: str, doing: str) -> None:
    if actor is None or not actor.has_perm(permission):
        raise NotPermitted(f"You may not {doing}.")


def _category_fields(data: dict) -> dict:
    data = dict(data)
    if "name" in data:
        data["name"] = (data["name"] or "").strip()
        if not data["name"]:
            raise InvalidInput("A category needs a name.")
    if "slug" in data:
        data["slug"] = slugify(data["slug"] or "")[:120]
        if not data["slug"]:
            raise InvalidInput("A category needs a slug (letters, digits and hyphens).")
    if "is_active" in data:
        data["is_active"] = bool(data["is_active"])
    return data


def category_create(
    *,
    actor,
    name: str,
    slug: str,
    commission_rate,
    parent: Category | None = None,
    is_active: bool = True,
) -> Category:
    """A new category (at the top, or under `parent`) with its commission rate."""
    _require_permission(actor, CATEGORY_ADD_PERMISSION, "create categories")
    rate = commission_rate_check(commission_rate)
    fields = {**_category_fields({"name": name, "slug": slug, "is_active": is_active}), "commission_rate": rate}
    with transaction.atomic():
        if Category.objects.filter(slug=fields["slug"]).exists():
            raise InvalidInput(f"A category with the slug '{fields['slug']}' already exists.")
        if parent is not None:
            parent = lock(Category, parent.pk)  # fresh numchild: treebeard places the child from it
            category = parent.add_child(**fields)
        else:
            category = Category.add_root(**fields)
        event_record(
            verb="category.created",
            actor=actor,
            target=category,
            data={
                "name": fields["name"],
                "slug": fields["slug"],
                "parent": parent.slug if parent else None,
                "commission_rate": str(rate),
            },
        )
    return category


def category_update(*, category: Category, actor, data: dict) -> Category:
    """Rename a category, change its slug, or (de)activate it; audited with the old values."""
    unknown = set(data) - set(CATEGORY_FIELDS)
    if unknown:
        raise InvalidInput(f"These fields cannot be changed here: {', '.join(sorted(unknown))}.")
    _require_permission(actor, CATEGORY_CHANGE_PERMISSION, "change categories")
    data = _category_fields(data)
    with transaction.atomic():
        _require_category_scope(category, actor)
        category = lock(Category, category.pk)
        changes = {f: {"from": getattr(category, f), "to": v} for f, v in data.items() if getattr(category, f) != v}
        if not changes:
            return category
        if "slug" in changes and Category.objects.filter(slug=data["slug"]).exclude(pk=category.pk).exists():
            raise InvalidInput(f"A category with the slug '{data['slug']}' already exists.")
        for field, change in changes.items():
            setattr(category, field, change["to"])
        category.save(update_fields=list(changes))
        event_record(verb="category.updated", actor=actor, target=category, data=changes)
    return category


def category_move(*, category: Category, parent: Category | None, actor) -> Category:
    """Put a category (and everything below it) under `parent`, or at the top (None).

    A move changes what a category grant covers (a grant reaches the subtree), so it is audited.
    """
    _require_permission(actor, CATEGORY_CHANGE_PERMISSION, "move categories")
    with transaction.atomic():
        _require_category_scope(category, actor)
        category = lock(Category, category.pk)
        before = category.get_parent()
        if (before.pk if before else None) == (parent.pk if parent else None):
            return category
        if parent is not None:
            parent = lock(Category, parent.pk)
            if parent.path.startswith(category.path):
                raise InvalidInput(f"{category} cannot move under itself or one of its subcategories.")
            category.move(parent, pos="sorted-child")
        else:
            category.move(Category.get_first_root_node(), pos="sorted-sibling")
        category.refresh_from_db()
        event_record(
            verb="category.moved",
            actor=actor,
            target=category,
            from_state=before.slug if before else "(top level)",
            to_state=parent.slug if parent else "(top level)",
        )
    return category


def category_commission_set(*, category: Category, rate, actor, reason: str) -> Category:
    """Change a category's commission rate, for bookings made from now on.

    Bookings already made keep the rate and the platform fee they were booked at
    (`Booking.commission_rate`, `Booking.platform_fee`); only `_booking_insert` reads this rate.
    """
    _require_permission(actor, COMMISSION_PERMISSION, "change commission rates")
    rate = commission_rate_check(rate)
    reason = (reason or "").strip()
    if not reason:
        raise InvalidInput("A reason is required to change a commission rate.")
    with transaction.atomic():
        _require_category_scope(category, actor)
        category = lock(Category, category.pk)
        before = category.commission_rate
        if before == rate:
            raise InvalidInput(f"{category}'s commission rate is already {rate}; nothing changed.")
        category.commission_rate = rate
        category.save(update_fields=["commission_rate"])
        event_record(
            verb="category.commission_changed",
            actor=actor,
            target=category,
            from_state=str(before),
            to_state=str(rate),
            reason=reason,
            data={"commission_rate": {"from": str(before), "to": str(rate)}},
        )
    return category
