"""django-unfold configuration for the operations admin. Callbacks are dotted paths."""

from django.urls import reverse_lazy

from config.env import env

UNFOLD = {
    "SITE_TITLE": "Marketplace operations",
    "SITE_HEADER": "Marketplace operations",
    "SITE_SYMBOL": "storefront",
    "ENVIRONMENT": "dashboards.admin_callbacks.environment_callback",
    "DASHBOARD_CALLBACK": "dashboards.admin_callbacks.dashboard_callback",
    "COMMAND": {"search_models": True, "show_history": True},
    "SIDEBAR": {
        "show_search": True,
        "show_all_applications": True,
        "navigation": [
            {
                "title": "Content",
                "items": [
                    {"title": "Wagtail CMS", "icon": "article", "link": reverse_lazy("wagtailadmin_home")},
                ],
            },
        ],
    },
}
DASHBOARD_ENVIRONMENT = env.str("DJANGO_ENVIRONMENT", default="development")
