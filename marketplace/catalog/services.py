"""Listing moderation: every transition of the listing state machine is one function here."""

from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from marketplace.audit.services import event_record
from marketplace.catalog.models import Category, Listing
from marketplace.catalog.selectors import listing_for_user
from marketplace.core.exceptions import InvalidInput, NotPermitted, TransitionNotAllowed
from marketplace.core.money import quantize
from marketplace.core.transitions import guard, lock
from marketplace.notifications.services import notify

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
    currency: str = "EUR",
    ends_at=None,
) -> Listing:
    """Create a draft listing."""
    if price is None or Decimal(price) < 0:
        raise InvalidInput("The price cannot be negative.")
    with transaction.atomic():
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


def category_create(*, name: str, slug: str, commission_rate: Decimal, parent: Category | None = None, actor=None):
    if not (Decimal(0) <= Decimal(commission_rate) <= Decimal(1)):
        raise InvalidInput("The commission rate must be between 0 and 1.")
    with transaction.atomic():
        fields = {"name": name, "slug": slug, "commission_rate": Decimal(commission_rate)}
        category = parent.add_child(**fields) if parent else Category.add_root(**fields)
        event_record(verb="category.created", actor=actor, target=category)
    return category
