"""Export of bookings (CSV, XLSX), scoped by the admin's queryset."""

from import_export.fields import Field

from marketplace.bookings.models import Booking
from marketplace.transfers.exporting import ScopedExportResource


class BookingExportResource(ScopedExportResource):
    listing = Field(attribute="listing__title", column_name="listing")
    partner = Field(attribute="partner__slug", column_name="partner")
    category = Field(attribute="category__slug", column_name="category")
    client = Field(attribute="client__email", column_name="client")
    provider = Field(attribute="provider__email", column_name="provider")

    select_related = ("listing", "partner", "category", "client", "provider")

    class Meta:
        model = Booking
        fields = (
            "id",
            "status",
            "listing",
            "partner",
            "category",
            "client",
            "provider",
            "starts_at",
            "ends_at",
            "amount",
            "platform_fee",
            "currency",
            "accepted_at",
            "completed_at",
            "cancelled_at",
            "cancellation_reason",
            "created_at",
        )
        export_order = fields
