"""The JSON API door: /api/."""

from django.urls import include, path

urlpatterns = [
    path("partner/v1/", include("marketplace.api.partner.urls")),
]
