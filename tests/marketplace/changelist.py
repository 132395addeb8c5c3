"""Helpers for the changelist filter tests: a filtered list read twice (the page, and its deep link
on a fresh session), an autocomplete filter's offers, and a page's query count."""

from urllib.parse import urlencode

from django.apps import apps
from django.contrib.admin import site
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from marketplace.core.admin import EstimatedCountPaginator


def changelist_url(model: str) -> str:
    """`model` as "app_label.model_name"."""
    app_label, model_name = model.split(".")
    return reverse(f"admin:{app_label}_{model_name}_changelist")


def listed(client, model: str, params: dict) -> set[int]:
    """The ids a changelist shows for `params`, asserting the filters were all understood (no
    `?e=1` redirect, every parameter kept in the page's own links)."""
    response = client.get(changelist_url(model), params)
    assert response.status_code == 200, response
    changelist = response.context["cl"]
    kept = changelist.get_query_string()
    assert all(name in kept for name in params if name != "q"), (params, kept)
    return {obj.pk for obj in changelist.result_list}


def listed_from_bookmark(user, model: str, params: dict) -> set[int]:
    """The same list from its address alone: a new browser session opening the bookmarked URL."""
    fresh = Client()
    fresh.force_login(user)
    response = fresh.get(f"{changelist_url(model)}?{urlencode(params)}")
    assert response.status_code == 200, response
    return {obj.pk for obj in response.context["cl"].result_list}


def autocomplete(client, model: str, field: str, term: str = ""):
    """What a filter's autocomplete offers for `field` of `model` ("app_label.model_name")."""
    app_label, model_name = model.split(".")
    return client.get(
        reverse("admin:autocomplete"),
        {"app_label": app_label, "model_name": model_name, "field_name": field, "term": term},
    )


def offered(client, model: str, field: str, term: str = "") -> set[int]:
    response = autocomplete(client, model, field, term)
    assert response.status_code == 200, response
    return {int(row["id"]) for row in response.json()["results"]}


def page_queries(client, model: str, params: dict, *, rows: int) -> list[str]:
    """The SQL of one changelist page for `params`, checking it shows `rows` rows."""
    with CaptureQueriesContext(connection) as queries:
        response = client.get(changelist_url(model), params)
    assert response.status_code == 200
    assert len(response.context["cl"].result_list) == rows
    return [query["sql"] for query in queries.captured_queries]


def queries_by_size(client, model: str, params: dict, grow, sizes=(10, 200, 400)) -> dict[int, int]:
    """The page's query count for `params` after `grow(n)` brings the rows it lists to each n.

    One page (up to 100 rows) is read in one query; past a page, EstimatedCountPaginator reads the
    page's ids first, then its rows: one query more, then flat whatever the size (Django's own
    paginator, on the small tables, is flat throughout). On failure the SQL of the largest page
    is printed.
    """
    model_admin = site.get_model_admin(apps.get_model(model))
    paged = 1 if issubclass(model_admin.paginator, EstimatedCountPaginator) else 0
    counts, last = {}, []
    for n in sizes:
        grow(n)
        last = page_queries(client, model, params, rows=min(n, 100))
        counts[n] = len(last)
    small, *large = sizes
    assert all(counts[n] == counts[small] + paged * (n > 100) for n in large), (counts, "\n".join(last))
    return counts
