"""Import and export of the catalogue: categories and listings (CSV, XLSX)."""

from decimal import Decimal

from django.conf import settings
from django.db import connection
from django.db.models.functions import Lower
from import_export.fields import Field

from marketplace.accounts.selectors import user_for_user
from marketplace.audit.services import event_record
from marketplace.catalog.models import Category, Listing
from marketplace.core.money import AMOUNT_DIGITS, AMOUNT_PLACES
from marketplace.partners.models import Partner, PartnerMembership
from marketplace.partners.selectors import partner_for_user
from marketplace.transfers.cells import boolean, choice, currency, decimal, email, slug, text
from marketplace.transfers.exporting import ScopedExportResource
from marketplace.transfers.importing import BulkImportResource, Column, Ref, RowError, insert_rows, record_imported


def _active_categories(user):
    return Category.objects.filter(is_active=True)


def _users(user):
    return user_for_user(user).filter(is_active=True)  # a scoped importer names only people of their scope


class CategoryImportResource(BulkImportResource):
    """Categories by slug; `parent` names an existing category or one higher up in the same file."""

    model = Category
    noun = "category"
    columns = [
        Column("name", text(120)),
        Column("slug", slug(120)),
        Column("parent", slug(120), required=False, default=None, help="The parent's slug; empty for a top level."),
        Column("commission_rate", decimal(max_digits=5, places=4, minimum=Decimal(0), maximum=Decimal(1))),
        Column("is_active", boolean, required=False, default=True),
    ]

    def natural_key(self, values):
        return values["slug"]

    def existing(self, keys):
        return dict(Category.objects.filter(slug__in=keys).values_list("slug", "pk"))

    def check_all(self, items, *, user):
        parents = {v["parent"] for _, v in items if v.get("parent")}
        known = set(Category.objects.filter(slug__in=parents).values_list("slug", flat=True)) if parents else set()
        errors, seen = [], set()
        for number, values in items:
            parent = values.get("parent")
            if parent and parent not in known and parent not in seen:
                errors.append(RowError(number, "parent", f"No category '{parent}' here or in an earlier row."))
            if parent and parent == values["slug"]:
                errors.append(RowError(number, "parent", "A category cannot be its own parent."))
            seen.add(values["slug"])
        return errors

    def write(self, rows, *, user, now):
        # A tree: each node's path depends on its siblings, so treebeard places them one by one
        # (categories are counted in hundreds, not millions).
        for values in rows:
            fields = {k: values[k] for k in ("name", "slug", "commission_rate", "is_active")}
            if values.get("parent"):
                node = Category.objects.get(slug=values["parent"]).add_child(**fields)
            else:
                node = Category.add_root(**fields)
            event_record(verb="category.imported", actor=user, target=node)
        return len(rows)


class ListingImportResource(BulkImportResource):
    """Listings of the partners in the importer's scope. They arrive in the moderation queue by default."""

    model = Listing
    noun = "listing"
    columns = [
        Column("title", text(200)),
        Column("partner", slug(200), ref=Ref(partner_for_user, "slug", "partner")),
        Column("owner", email, ref=Ref(_users, "email", "user", casefold=True), help="The owner's email."),
        Column("category", slug(120), ref=Ref(_active_categories, "slug", "active category")),
        Column("price", decimal(max_digits=AMOUNT_DIGITS, places=AMOUNT_PLACES, minimum=Decimal(0))),
        Column(
            "currency",
            currency,
            required=False,
            default=None,
            cache=True,
            help="One of MARKETPLACE_CURRENCIES; empty for MARKETPLACE_DEFAULT_CURRENCY.",
        ),
        Column("kind", choice(Listing.Kind), required=False, default=Listing.Kind.SERVICE, cache=True),
        Column("description", text(10_000), required=False, default=""),
        Column(
            "status",
            choice(Listing.Status, allowed={Listing.Status.DRAFT, Listing.Status.PENDING_REVIEW}),
            required=False,
            default=Listing.Status.PENDING_REVIEW,
            cache=True,
            help="draft or pending_review: imported listings are moderated like any other.",
        ),
    ]

    def natural_key(self, values):
        return (values["partner"], values["owner"], values["title"].lower())  # as lower() in SQL

    def existing(self, keys):
        if connection.vendor == "postgresql":
            # The file's keys as three arrays joined to the table: one statement with three
            # parameters, where an IN list would carry one placeholder per row.
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT l.partner_id, l.owner_id, lower(l.title), l.id FROM catalog_listing l "
                    "JOIN unnest(%s::bigint[], %s::bigint[], %s::text[]) AS k(partner_id, owner_id, title) "
                    "ON l.partner_id = k.partner_id AND l.owner_id = k.owner_id AND lower(l.title) = k.title "
                    "WHERE l.status <> %s",
                    [[k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys], Listing.Status.ARCHIVED],
                )
                return {(p, o, t): pk for p, o, t, pk in cursor.fetchall()}
        wanted = set(keys)
        rows = (
            Listing.objects.filter(partner_id__in={k[0] for k in keys})
            .exclude(status=Listing.Status.ARCHIVED)
            .annotate(folded=Lower("title"))
            .filter(folded__in={k[2] for k in keys})
            .values_list("partner_id", "owner_id", "folded", "pk")
        )
        return {(p, o, t): pk for p, o, t, pk in rows if (p, o, t) in wanted}

    def check_all(self, items, *, user):
        """As `listing_create`: the partner is not suspended, and a service's owner is a member of
        it (a job is posted by a client through an integrator, which has no members)."""
        pairs = {(v["partner"], v["owner"]) for _, v in items}
        partners = {p for p, _ in pairs}
        members = set(
            PartnerMembership.objects.filter(partner_id__in=partners, user_id__in={u for _, u in pairs}).values_list(
                "partner_id", "user_id"
            )
        )
        states = {
            pk: (kind, status)
            for pk, kind, status in Partner.objects.filter(pk__in=partners).values_list("pk", "kind", "status")
        }
        errors = []
        for number, values in items:
            partner_kind, partner_status = states[values["partner"]]
            if partner_status == Partner.Status.SUSPENDED:
                errors.append(RowError(number, "partner", "This partner is suspended and takes no new listings."))
            through_integrator = values["kind"] == Listing.Kind.JOB and partner_kind == Partner.Kind.INTEGRATOR
            if not through_integrator and (values["partner"], values["owner"]) not in members:
                errors.append(RowError(number, "owner", "The owner is not a member of this partner."))
        return errors

    def write(self, rows, *, user, now):
        pending = Listing.Status.PENDING_REVIEW
        ids = insert_rows(
            Listing,
            [
                {
                    "kind": v["kind"],
                    "title": v["title"],
                    "description": v["description"],
                    "owner_id": v["owner"],
                    "partner_id": v["partner"],
                    "category_id": v["category"],
                    "price": v["price"],
                    "currency": v["currency"] or settings.MARKETPLACE_DEFAULT_CURRENCY,
                    "status": v["status"],
                    "submitted_at": now if v["status"] == pending else None,
                    "created_at": now,
                    "updated_at": now,
                }
                for v in rows
            ],
        )
        record_imported(Listing, ids, actor=user, now=now, verb="listing.imported")
        return len(ids)


class CategoryExportResource(ScopedExportResource):
    parent = Field(attribute="get_parent__slug", column_name="parent")

    class Meta:
        model = Category
        fields = ("id", "name", "slug", "parent", "commission_rate", "is_active")
        export_order = fields


class ListingExportResource(ScopedExportResource):
    partner = Field(attribute="partner__slug", column_name="partner")
    owner = Field(attribute="owner__email", column_name="owner")
    category = Field(attribute="category__slug", column_name="category")

    select_related = ("partner", "owner", "category")

    class Meta:
        model = Listing
        fields = (
            "id",
            "title",
            "kind",
            "status",
            "partner",
            "owner",
            "category",
            "price",
            "currency",
            "moderation_reason",
            "submitted_at",
            "published_at",
            "created_at",
        )
        export_order = fields
