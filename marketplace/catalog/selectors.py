"""Catalogue reads. `listing_for_user` is the one scope for listings, used by every door."""

from django.db.models import Exists, F, OuterRef, Q
from django.db.models.lookups import StartsWith

from marketplace.catalog.models import Category, CategoryGroupObjectPermission, CategoryUserObjectPermission, Listing
from marketplace.partners.models import Partner
from marketplace.partners.selectors import (
    can_operate,
    in_subquery,
    partner_scope_q,
    permission_id,
    scope_is_global,
    scope_selector,
)

SCOPE_CODENAME = "operate_category"


def category_scope_q(user, category_field: str = "category") -> Q:
    """Rows whose category (at `category_field`) lies at or below a category granted to the user.

    The subtree is resolved on the small category table (a path-prefix EXISTS per category) into
    one uncorrelated subquery of category ids, compared as `category_id = ANY(ARRAY(...))` on
    PostgreSQL (`in_subquery`) so the big table can read it through its category index.
    """
    return in_subquery(category_field, granted_category_ids(user))


def granted_category_ids(user):
    """The ids of the categories at or below a category granted to the user (a subquery)."""
    perm = permission_id("catalog", SCOPE_CODENAME)
    below = StartsWith(OuterRef("path"), F("content_object__path"))
    direct = CategoryUserObjectPermission.objects.filter(below, user=user, permission_id=perm)
    via_group = CategoryGroupObjectPermission.objects.filter(below, group__user=user, permission_id=perm)
    return Category.objects.filter(Q(Exists(direct)) | Q(Exists(via_group))).values("pk")


@scope_selector
def listing_for_user(user):
    """Listings a staff user may see and act on: their partners' and their categories' (and below)."""
    if not can_operate(user):
        return Listing.objects.none()
    if scope_is_global(user):
        return Listing.objects.all()
    return Listing.objects.filter(partner_scope_q(user, "partner") | category_scope_q(user, "category"))


def listing_moderation_queue(user):
    """Listings waiting for review (new ones and material edits of live ones), oldest first."""
    return (
        listing_for_user(user)
        .filter(Q(status=Listing.Status.PENDING_REVIEW) | Q(pending_changes__isnull=False))
        .order_by("submitted_at", "pk")
    )


def listing_public_list():
    """What the public catalogue shows: published listings of active partners.

    A suspended partner's listings keep their own state and come back when it is reinstated.
    """
    return Listing.objects.filter(
        status=Listing.Status.PUBLISHED, partner__status=Partner.Status.ACTIVE
    ).select_related("category", "partner")
