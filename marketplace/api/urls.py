"""The JSON API door: /api/."""

from django.urls import include, path, re_path

from marketplace.api.common.views import api_not_found

urlpatterns = [
    path("partner/v1/", include("marketplace.api.partner.urls")),
    # Anything else under /api/ is a JSON 404, not the CMS's HTML page.
    re_path(r"^", api_not_found),
]
