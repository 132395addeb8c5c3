"""Root URLs: the operations admin, the Wagtail CMS and the public site."""

from django.conf import settings
from django.contrib import admin
from django.urls import include, path, re_path
from django.views.generic import RedirectView
from wagtail import urls as wagtail_urls
from wagtail.admin import urls as wagtailadmin_urls
from wagtail.documents import urls as wagtaildocs_urls

from dashboards.views import my_work
from marketplace.accounts.access_admin import own_password_change
from marketplace.api.common.health import health

urlpatterns = [
    path("admin/my-work/", admin.site.admin_view(my_work), name="my-work"),
    # A person's own password change, audited (then Django's admin view as usual).
    path("admin/password_change/", admin.site.admin_view(own_password_change), name="password_change"),
    # The second factor's own pages (enrol, backup codes, verify), before the admin's catch-all.
    path("admin/second-factor/", include("marketplace.accounts.second_factor_views")),
    path("admin/", admin.site.urls),
    # People are managed in the operations admin only (audited): the CMS's user and group screens lead there.
    re_path(r"^cms/users/", RedirectView.as_view(pattern_name="admin:accounts_user_changelist")),
    re_path(r"^cms/groups/", RedirectView.as_view(pattern_name="admin:auth_group_changelist")),
    path("cms/", include(wagtailadmin_urls)),
    path("documents/", include(wagtaildocs_urls)),
    path("api/health/", health, name="api-health"),
    # The JSON API door (partner read API), before Wagtail's catch-all.
    path("api/", include("marketplace.api.urls")),
]

if settings.DEBUG:
    from django.conf.urls.static import static

    urlpatterns += static(settings.MEDIA_URL, document_root=settings.MEDIA_ROOT)

# Wagtail's page serving catches everything else, so it goes last.
urlpatterns += [path("", include(wagtail_urls))]
