from django.contrib import admin

from marketplace.bookings.models import Booking
from marketplace.bookings.selectors import booking_for_user
from marketplace.core.admin import ScopedReadOnlyAdmin


@admin.register(Booking)
class BookingAdmin(ScopedReadOnlyAdmin):
    scope = staticmethod(booking_for_user)
    list_display = ["id", "status", "listing", "client", "partner", "amount", "platform_fee", "currency", "created_at"]
    list_filter = ["status"]
    search_fields = ["id"]
    list_select_related = ("listing", "client", "partner")
    ordering = ("-created_at", "-id")
