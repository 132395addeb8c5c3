"""Export of disputes (CSV, XLSX), scoped by the admin's queryset."""

from import_export.fields import Field

from marketplace.disputes.models import Dispute
from marketplace.transfers.exporting import ScopedExportResource


class DisputeExportResource(ScopedExportResource):
    partner = Field(attribute="partner__slug", column_name="partner")
    opened_by = Field(attribute="opened_by__email", column_name="opened_by")
    assignee = Field(attribute="assignee__email", column_name="assignee")
    resolved_by = Field(attribute="resolved_by__email", column_name="resolved_by")

    select_related = ("partner", "opened_by", "assignee", "resolved_by")

    class Meta:
        model = Dispute
        fields = (
            "id",
            "booking",
            "status",
            "reason_code",
            "partner",
            "opened_by",
            "assignee",
            "description",
            "response_due_at",
            "sla_due_at",
            "escalated_at",
            "resolution_code",
            "resolution_note",
            "refund_amount",
            "resolved_by",
            "resolved_at",
            "created_at",
        )
        export_order = fields
