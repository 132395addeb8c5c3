"""Bad input in an admin address answers 4xx or the changelist's `?e=1`, never a 500.

Every registered admin's changelist is driven with a NUL byte in a filter and in the search
(PostgreSQL cannot hold NUL in text, so psycopg refused the query with a ValueError), and every
export view with filters the changelist cannot apply.
"""

import pytest
from django.contrib import admin
from django.contrib.admin.views.main import ERROR_FLAG
from django.urls import reverse

from marketplace.transfers.admin import ScopedExportMixin
from tests.factories import StaffFactory

pytestmark = pytest.mark.django_db

ADMINS = sorted(admin.site._registry.items(), key=lambda item: item[0]._meta.label)
EXPORTS = [(model, model_admin) for model, model_admin in ADMINS if isinstance(model_admin, ScopedExportMixin)]


def _nul_queries(model_admin) -> list[str]:
    queries = ["q=%00", "status__exact=%00", "%00=1"]
    for entry in model_admin.list_filter:
        name = entry if isinstance(entry, str) else entry[0] if isinstance(entry, tuple | list) else None
        if isinstance(name, str):
            queries.append(f"{name}__exact=%00")
    return queries


def _url(model, view: str) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}")


def _refused(response, changelist: str) -> bool:
    if 400 <= response.status_code < 500:
        return True
    return response.status_code == 302 and response["Location"].endswith(f"?{ERROR_FLAG}=1")


@pytest.fixture
def superuser_client(client):
    client.force_login(StaffFactory(is_superuser=True))
    return client


@pytest.mark.parametrize(("model", "model_admin"), ADMINS, ids=[m._meta.label for m, _ in ADMINS])
def test_changelist_with_nul_in_a_filter_or_search_is_a_4xx(superuser_client, model, model_admin):
    changelist = _url(model, "changelist")
    for query in _nul_queries(model_admin):
        # when a NUL byte arrives in a filter, the search or a parameter's name
        response = superuser_client.get(f"{changelist}?{query}")
        # then the request is refused, never a 500
        assert _refused(response, changelist), (query, response.status_code)


@pytest.mark.parametrize("query", ["created_at__gte=notadate", "nosuchfield=1", "partner__id__exact=abc"])
@pytest.mark.parametrize(("model", "model_admin"), EXPORTS, ids=[m._meta.label for m, _ in EXPORTS])
def test_export_with_a_malformed_filter_goes_back_to_the_changelist_with_a_message(
    superuser_client, model, model_admin, query
):
    changelist = _url(model, "changelist")
    export = f"{_url(model, 'export')}?{query}"
    for response in (superuser_client.get(export), superuser_client.post(export, {"format": "0", "resource": "0"})):
        # then the export answers as the changelist does: back to it with ?e=1 and a message
        assert response.status_code == 302, response.status_code
        assert response["Location"] == f"{changelist}?{ERROR_FLAG}=1"
    page = superuser_client.get(response["Location"])
    assert page.status_code == 200
    assert "The filters in the address cannot be applied" in page.content.decode()
    # and the changelist itself handles the same filter the same way
    assert _refused(superuser_client.get(f"{changelist}?{query}"), changelist)


@pytest.mark.parametrize(("model", "model_admin"), EXPORTS, ids=[m._meta.label for m, _ in EXPORTS])
def test_export_with_nul_in_a_filter_is_a_4xx(superuser_client, model, model_admin):
    export = _url(model, "export")
    for query in ("status__exact=%00", "q=%00"):
        response = superuser_client.post(f"{export}?{query}", {"format": "0", "resource": "0"})
        assert response.status_code == 400, (query, response.status_code)
