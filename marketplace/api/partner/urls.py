"""The partner read API, version 1: /api/partner/v1/."""

from django.urls import path

from marketplace.api.partner.profile import PartnerProfileView

app_name = "partner-api"

urlpatterns = [
    path("partner/", PartnerProfileView.as_view(), name="partner"),
]
