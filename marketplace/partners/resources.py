"""Import and export of partners (CSV, XLSX)."""

from marketplace.partners.models import Partner
from marketplace.partners.selectors import partner_for_user
from marketplace.transfers.cells import boolean, choice, email, slug, text
from marketplace.transfers.exporting import ScopedExportResource
from marketplace.transfers.importing import BulkImportResource, Column, insert_rows, record_imported


class PartnerImportResource(BulkImportResource):
    """New partners, recognised by slug; they start active."""

    model = Partner
    noun = "partner"
    columns = [
        Column("name", text(200)),
        Column("slug", slug(200)),
        Column("kind", choice(Partner.Kind), required=False, default=Partner.Kind.PROVIDER),
        Column("contact_email", email, required=False, default=""),
        Column("risk_flag", boolean, required=False, default=False),
    ]

    def natural_key(self, values):
        return values["slug"]

    def existing(self, keys):
        return dict(Partner.objects.filter(slug__in=keys).values_list("slug", "pk"))

    def existing_in_scope(self, ids, *, user):
        return set(partner_for_user(user).filter(pk__in=ids).values_list("pk", flat=True))

    def write(self, rows, *, user, now):
        ids = insert_rows(
            Partner,
            [
                {
                    "name": v["name"],
                    "slug": v["slug"],
                    "kind": v["kind"],
                    "status": Partner.Status.ACTIVE,
                    "contact_email": v["contact_email"],
                    "risk_flag": v["risk_flag"],
                    "created_at": now,
                }
                for v in rows
            ],
        )
        record_imported(Partner, ids, actor=user, now=now, verb="partner.imported", to_state=Partner.Status.ACTIVE)
        return len(ids)


class PartnerExportResource(ScopedExportResource):
    class Meta:
        model = Partner
        fields = ("id", "name", "slug", "kind", "status", "contact_email", "risk_flag", "created_at")
        export_order = fields
