"""Changelists never count a whole large table: exact up to a threshold, the planner's estimate past it."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from marketplace.audit.models import Event
from marketplace.core.admin import EstimatedCountPaginator

pytestmark = pytest.mark.django_db


def _events(n):
    Event.objects.bulk_create(Event(verb="test.row") for _ in range(n))


def test_under_the_threshold_the_count_is_exact_and_bounded(monkeypatch):
    monkeypatch.setattr(EstimatedCountPaginator, "THRESHOLD", 10)
    _events(7)
    with CaptureQueriesContext(connection) as ctx:
        count = EstimatedCountPaginator(Event.objects.filter(verb="test.row"), 5).count
    assert count == 7
    sqls = [q["sql"] for q in ctx.captured_queries]
    # the same two queries as past the threshold, so the page's query count never depends on size
    assert len(sqls) == 2 and "LIMIT 11" in sqls[0] and sqls[1].startswith("EXPLAIN")


def test_past_the_threshold_the_count_is_the_planners_estimate(monkeypatch):
    monkeypatch.setattr(EstimatedCountPaginator, "THRESHOLD", 10)
    _events(300)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE audit_event")
    with CaptureQueriesContext(connection) as ctx:
        count = EstimatedCountPaginator(Event.objects.filter(verb="test.row"), 5).count
    assert 11 <= count <= 1000  # an estimate of 300, never below the threshold
    sqls = [q["sql"] for q in ctx.captured_queries]
    assert len(sqls) == 2 and "LIMIT 11" in sqls[0] and sqls[1].startswith("EXPLAIN")
    assert not any("COUNT(*)" in sql and "LIMIT" not in sql for sql in sqls)


def test_the_admin_changelist_uses_it(client, django_user_model, monkeypatch):
    monkeypatch.setattr(EstimatedCountPaginator, "THRESHOLD", 10)
    _events(30)
    client.force_login(django_user_model.objects.create_superuser(email="root@example.com", password="x"))
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(reverse("admin:audit_event_changelist"))
    assert response.status_code == 200
    unbounded = [q["sql"] for q in ctx.captured_queries if "COUNT(*)" in q["sql"] and "LIMIT" not in q["sql"]]
    assert unbounded == []


def test_a_page_is_read_ids_first_in_the_lists_order(monkeypatch):
    monkeypatch.setattr(EstimatedCountPaginator, "THRESHOLD", 10)
    _events(12)
    queryset = Event.objects.filter(verb="test.row").order_by("-id")
    expected = list(queryset.values_list("pk", flat=True))[5:10]
    with CaptureQueriesContext(connection) as ctx:
        page = EstimatedCountPaginator(queryset, 5).page(2)
        rows = [e.pk for e in page.object_list]
    assert rows == expected
    sqls = [q["sql"] for q in ctx.captured_queries]
    ids_query = next(sql for sql in sqls if "OFFSET 5" in sql)
    assert ids_query.startswith('SELECT "audit_event"."id" AS "pk" FROM')  # narrow: the ids only


def test_an_empty_queryset_counts_zero_and_pages_without_error():
    _events(3)
    paginator = EstimatedCountPaginator(Event.objects.none().order_by("-pk"), 5)
    assert paginator.count == 0
    assert list(paginator.page(1)) == []


def test_a_search_that_matches_nothing_by_shape_is_an_empty_page(admin_client):
    # payout runs are searched by id only: a text search is an empty list, not a 500
    response = admin_client.get(reverse("admin:payouts_payoutrun_changelist"), {"q": "no such run"})
    assert response.status_code == 200
    assert list(response.context["cl"].result_list) == []
