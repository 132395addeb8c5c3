"""Export of payouts (CSV, XLSX), scoped by the admin's queryset."""

from import_export.fields import Field

from marketplace.payouts.models import Payout
from marketplace.transfers.exporting import ScopedExportResource


class PayoutExportResource(ScopedExportResource):
    partner = Field(attribute="partner__slug", column_name="partner")
    requested_by = Field(attribute="requested_by__email", column_name="requested_by")
    approved_by = Field(attribute="approved_by__email", column_name="approved_by")

    select_related = ("partner", "requested_by", "approved_by")

    class Meta:
        model = Payout
        fields = (
            "id",
            "partner",
            "amount",
            "currency",
            "status",
            "hold_until",
            "requested_by",
            "approved_by",
            "approved_at",
            "attempt_count",
            "gateway_reference",
            "failure_reason",
            "submitted_at",
            "paid_at",
            "created_at",
        )
        export_order = fields
