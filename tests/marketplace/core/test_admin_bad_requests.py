"""More bad input that must answer 4xx, or a normal page with a message, never a 500: the admin's
global search with odd page numbers, bulk actions on ids that are not ids, paths that climb out of
/static/, and a NUL byte in any cell of an import file."""

import pytest
from django.contrib import admin
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import models
from django.urls import reverse

from marketplace.catalog.models import Listing
from tests.factories import CategoryFactory, ListingFactory, MembershipFactory, PartnerFactory, StaffFactory

pytestmark = pytest.mark.django_db

ADMINS = sorted(admin.site._registry.items(), key=lambda item: item[0]._meta.label)


def _superuser_actions(model_admin) -> list[str]:
    """The bulk actions a superuser is offered on this admin's list (no database needed: an active
    superuser holds every permission)."""
    from django.test import RequestFactory

    from marketplace.accounts.models import User

    request = RequestFactory().get("/")
    request.user = User(is_superuser=True, is_staff=True, is_active=True)
    return list(model_admin.get_actions(request))


# The admins that offer bulk actions (the others have none to post).
ADMINS_WITH_ACTIONS = [(model, model_admin) for model, model_admin in ADMINS if _superuser_actions(model_admin)]


@pytest.fixture
def superuser_client(client):
    client.force_login(StaffFactory(is_superuser=True))
    return client


# --- the global search (unfold's command palette, /admin/search/) ---------------------------------


@pytest.mark.parametrize("page", ["abc", "999", "-1", "0", "1.5", ""])
def test_admin_search_with_a_page_that_is_not_a_page_is_a_4xx(superuser_client, page):
    ListingFactory(title="Hedge trimming")
    response = superuser_client.get(reverse("admin:search"), {"s": "hedge", "page": page})
    assert response.status_code in (400, 404), response.status_code
    assert "page" in response.content.decode().lower()


def test_admin_search_first_and_existing_pages_still_answer(superuser_client):
    listing = ListingFactory(title="Hedge trimming")
    for query in ({"s": "hedge"}, {"s": "hedge", "page": "1"}):
        response = superuser_client.get(reverse("admin:search"), query)
        assert response.status_code == 200
        assert reverse("admin:catalog_listing_change", args=[listing.pk]) in response.content.decode()


def test_admin_search_with_nul_is_a_400(superuser_client):
    assert superuser_client.get(reverse("admin:search"), {"s": "\x00"}).status_code == 400


# --- bulk actions on ids that are not ids --------------------------------------------------------


def test_bulk_actions_are_driven_on_most_admins():
    assert len(ADMINS_WITH_ACTIONS) >= 10  # so the test below cannot quietly run over nothing


@pytest.mark.parametrize(
    ("model", "model_admin"), ADMINS_WITH_ACTIONS, ids=[m._meta.label for m, _ in ADMINS_WITH_ACTIONS]
)
def test_bulk_action_on_a_non_numeric_id_changes_nothing_and_is_no_500(superuser_client, model, model_admin):
    actions = _superuser_actions(model_admin)
    changelist = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
    numeric = isinstance(model._meta.pk, models.AutoField | models.IntegerField)
    before = model._default_manager.count()
    for action in actions:
        for selected in (["abc"], ["1", "abc"], ["\x00"]):
            response = superuser_client.post(changelist, {"action": action, ACTION_CHECKBOX_NAME: selected})
            assert response.status_code < 500, (action, selected, response.status_code)
            if numeric or "\x00" in selected:  # ids that are not ids: the changelist again, with a message
                assert response.status_code == 302 and response["Location"] == changelist, (action, selected)
                page = superuser_client.get(changelist)
                assert "The selected rows are not valid" in page.content.decode()
            # a text key (django-q2 task ids): "abc" is a key of no row; a NUL is refused all the same
    assert model._default_manager.count() == before


# --- climbing out of /static/ -----------------------------------------------------------------------


TRAVERSALS = ["/static/%2e%2e/%2e%2e/manage.py", "/static/..%2f..%2fmanage.py", "/static/../../manage.py"]


@pytest.mark.parametrize("path", TRAVERSALS)
def test_static_path_climbing_out_is_a_404_without_the_file(client, path):
    response = client.get(path)
    assert response.status_code == 404
    assert b"DJANGO_SETTINGS_MODULE" not in b"".join(getattr(response, "streaming_content", [response.content]))


@pytest.mark.parametrize("path", TRAVERSALS)
@pytest.mark.parametrize("autorefresh", [False, True], ids=["collected", "autorefresh"])
def test_static_path_climbing_out_is_a_404_under_whitenoise(client, settings, tmp_path, path, autorefresh):
    # given the production middleware, serving collected files or (autorefresh) straight from the finders
    (tmp_path / "site.css").write_text("body{}")
    settings.STATIC_ROOT = str(tmp_path)
    settings.WHITENOISE_AUTOREFRESH = autorefresh
    settings.WHITENOISE_USE_FINDERS = autorefresh
    settings.MIDDLEWARE = [
        settings.MIDDLEWARE[0],
        "whitenoise.middleware.WhiteNoiseMiddleware",
        *settings.MIDDLEWARE[1:],
    ]
    assert client.get("/static/site.css").status_code == 200  # whitenoise is in front
    response = client.get(path)
    assert response.status_code == 404
    assert b"DJANGO_SETTINGS_MODULE" not in b"".join(getattr(response, "streaming_content", [response.content]))


@pytest.mark.parametrize("path", TRAVERSALS)
def test_static_path_climbing_out_is_a_404_under_runserver(settings, path):
    # given runserver's static handler (staticfiles' StaticFilesHandler, DEBUG on)
    from django.contrib.staticfiles.handlers import StaticFilesHandler
    from django.core.handlers.wsgi import WSGIHandler
    from django.test.client import RequestFactory

    settings.DEBUG = True
    environ = RequestFactory().get("/").environ
    environ["PATH_INFO"] = path.replace("%2e", ".").replace("%2f", "/")
    status = []
    body = b"".join(StaticFilesHandler(WSGIHandler())(environ, lambda s, h, *a: status.append(s)))
    assert status[0].startswith("404"), status
    assert b"DJANGO_SETTINGS_MODULE" not in body


# --- a NUL byte in any cell of a listing import ----------------------------------------------------

LISTING_HEADER = "title,partner,owner,category,price,currency,kind,description\n"
GOOD_ROW = ["Window cleaning", "acme", "owner@acme.test", "cleaning", "45.50", "EUR", "service", "Clear"]


@pytest.mark.parametrize("column", range(len(GOOD_ROW)), ids=LISTING_HEADER.strip().split(","))
def test_listing_import_with_nul_in_any_cell_is_a_row_error_and_writes_nothing(client, make_staff, column):
    partner = PartnerFactory(slug="acme")
    MembershipFactory(partner=partner, user__email="owner@acme.test")
    CategoryFactory(slug="cleaning")
    bad = list(GOOD_ROW)
    bad[column] = bad[column][:2] + "\x00" + bad[column][2:]
    body = LISTING_HEADER + ",".join(GOOD_ROW) + "\n" + ",".join(bad) + "\n"
    client.force_login(make_staff("Operations lead"))
    response = client.post(
        reverse("admin:catalog_listing_import"),
        {"format": "0", "resource": "0", "import_file": SimpleUploadedFile("rows.csv", body.encode())},
    )
    assert response.status_code == 200
    result = response.context["result"]
    assert result.has_validation_errors()
    (invalid,) = result.invalid_rows
    assert invalid.number == 3
    name = LISTING_HEADER.strip().split(",")[column]
    assert "control character (U+0000)" in str(invalid.error_dict[name]), invalid.error_dict
    assert Listing.objects.count() == 0
