from django.apps import AppConfig


class BookingsConfig(AppConfig):
    name = "marketplace.bookings"
    label = "bookings"
