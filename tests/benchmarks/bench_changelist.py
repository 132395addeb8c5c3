"""Benchmark: the bookings admin changelist at two sizes, against raw SQL and a default ModelAdmin.

Run with `make bench` (BENCH_SCALE=N). The large size is N bookings, the small one N // 100 (at
least 10): 10,000 and 1,000,000 for `make bench BENCH_SCALE=1000000`. One database: the small set
is loaded first and measured, then N - N // 100 more bookings are loaded on top (a second generator
run) and everything is measured again, so both sizes are timed in the same process, on the same
connection and cluster settings, and the small set's rows are part of the large one. Each load is
committed and followed by `VACUUM ANALYZE`, as autovacuum would leave a production table.

For each size it times, through Django's test `Client` (middleware, session, template rendering):

- our `/admin/bookings/booking/` as an Operations agent granted the busiest partner, and as an
  Operations lead (global scope): page 1, page 1 filtered by partner and status
  (`?partner__id__exact=..&status__exact=..`), and a deep page (`?p=N`, 90% of the way through the
  user's rows);
- baseline 1: raw psycopg fetching the same page (same columns, ORDER BY, LIMIT/OFFSET; the agent's
  scope written in as `partner_id = %s`), and for the deep page a keyset query (`WHERE (created_at,
  id) < (..)`) for what a page costs when it does not skip rows;
- baseline 2: a plain `admin.ModelAdmin` on Booking registered on a bare `AdminSite` (same
  list_display, list_filter and ordering, everything else Django's default: full `COUNT(*)`,
  `select_related()` of every non-null foreign key), called as `changelist_view()` with a
  RequestFactory request of a superuser and rendered.

Prints p50/p95 in ms, query counts, the share of the time spent in SQL and the load average at the
start and end of each size's timing (the machine may be shared), and writes them to
var/bench/changelist.json for BENCHMARKS.md. The test fails if our changelist errors, if its query
count differs between the two sizes, or if its page 1 rows differ from the raw page (the figures
are written first). The timing goals are reported, not asserted.
"""

import json
import os
import statistics
import time
from pathlib import Path

import pytest
from django.contrib import admin
from django.db import connection
from django.test import Client, RequestFactory
from django.test.utils import CaptureQueriesContext

from marketplace.accounts.services import StaffGroup
from marketplace.bookings.admin import BookingAdmin
from marketplace.bookings.models import Booking
from marketplace.demo.generator import scale_load
from marketplace.partners.models import Partner
from tests.factories import StaffFactory
from tests.factories.settlement import staff

SCALE = int(os.environ.get("BENCH_SCALE", "1000"))
SMALL = max(10, SCALE // 100)
LARGE = max(SCALE, SMALL + 1)
REPEAT = int(os.environ.get("BENCH_CHANGELIST_REPEAT", "15"))
OUT = Path(os.environ.get("BENCH_OUT", "var/bench"))
URL = "/admin/bookings/booking/"
DEEP = 0.9  # the deep page is the one 90% of the way through the user's rows
CASES = ("page 1", "filtered page 1", "deep page")

# The columns our list shows (list_display, with the related objects' __str__), in its order.
RAW_COLUMNS = (
    "b.id, b.status, b.listing_id, l.title, b.client_id, u.email, b.partner_id, p.name, "
    "b.amount, b.platform_fee, b.currency, b.starts_at, b.created_at"
)
# The default admin's columns: our list's, as plain model fields (ours formats status and money).
DEFAULT_LIST_DISPLAY = [
    "id",
    "status",
    "listing",
    "client",
    "partner",
    "amount",
    "platform_fee",
    "currency",
    "starts_at",
    "created_at",
]
RAW_FROM = (
    "FROM bookings_booking b JOIN catalog_listing l ON l.id = b.listing_id "
    "JOIN accounts_user u ON u.id = b.client_id JOIN partners_partner p ON p.id = b.partner_id"
)


def _row(b):
    return (b.id, b.status, b.listing_id, b.listing.title, b.client_id, b.client.email, b.partner_id, b.partner.name)


def _raw(sql, params=()):
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def _measure(fn, repeat=REPEAT):
    """p50 and p95 in ms, the query count (the same on every run, or the test says so) and SQL share."""
    fn()  # warm the plan, the caches and the templates
    samples, counts, sql, per_query = [], set(), [], {}
    for _ in range(repeat):
        with CaptureQueriesContext(connection) as ctx:
            start = time.perf_counter()
            fn()
            samples.append((time.perf_counter() - start) * 1000)
        counts.add(len(ctx.captured_queries))
        sql.append(sum(float(q["time"]) for q in ctx.captured_queries) * 1000)
        for i, q in enumerate(ctx.captured_queries):
            per_query.setdefault((i, q["sql"][:160]), []).append(float(q["time"]) * 1000)
    samples.sort()
    p50 = statistics.median(samples)
    slowest = sorted(((statistics.median(t), sql) for (_, sql), t in per_query.items()), reverse=True)[:3]
    return {
        "p50_ms": round(p50, 2),
        "p95_ms": round(samples[max(0, int(len(samples) * 0.95) - 1)], 2),
        "queries": sorted(counts)[0] if len(counts) == 1 else sorted(counts),
        "sql_share": round(statistics.median(sql) / p50, 2) if p50 else 0,
        # Where the SQL time goes: the three slowest statements (median ms, the first 160 characters).
        "slowest_sql": [[round(ms, 2), sql] for ms, sql in slowest],
    }


def _load(n, label):
    report = scale_load(n=n, run_label=label)
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    return report


def _default_admin_site():
    """Booking on a bare AdminSite with a plain ModelAdmin: Django's defaults, our columns and order."""
    site = admin.AdminSite(name="bench_default")

    class DefaultBookingAdmin(admin.ModelAdmin):
        list_display = DEFAULT_LIST_DISPLAY
        # Django's own status filter (ours are unfold widgets whose autocompletes need their related
        # admins registered on the same site); the partner in the filtered case is a URL lookup.
        list_filter = ["status"]
        ordering = BookingAdmin.ordering

    site.register(Booking, DefaultBookingAdmin)
    return site


def _measure_size(n, lead, superuser, default_site):
    """Every case at the current size; returns (figures, errors, page-1 row mismatches)."""
    partner_id, partner_rows = _raw(
        "SELECT partner_id, count(*) FROM bookings_booking GROUP BY partner_id ORDER BY 2 DESC, 1 LIMIT 1"
    )[0]
    # A scoped agent granted the busiest partner at this size (a new one per size: one grant each).
    agent = staff(StaffGroup.OPERATIONS_AGENT, scope=Partner.objects.get(pk=partner_id))
    status, filtered_rows = _raw(
        "SELECT status, count(*) FROM bookings_booking WHERE partner_id = %s GROUP BY status ORDER BY 2 DESC, 1 LIMIT 1",
        [partner_id],
    )[0]
    per_page = BookingAdmin.list_per_page
    total = _raw("SELECT count(*) FROM bookings_booking")[0][0]
    views = {"agent": (agent, partner_rows, "b.partner_id = %s", [partner_id]), "lead": (lead, total, "TRUE", [])}
    filter_qs = f"partner__id__exact={partner_id}&status__exact={status}"
    figures = {
        "bookings": total,
        "busiest_partner_rows": partner_rows,
        "filtered_rows": filtered_rows,
        "status": status,
        "per_page": per_page,
        # The machine is shared: the 1, 5 and 15 minute load averages when this size's timing began and ended.
        "loadavg": {"start": [round(x, 2) for x in os.getloadavg()]},
        "cases": {},
    }
    errors, mismatches = [], []
    factory = RequestFactory()

    for who, (user, rows, scope_sql, scope_params) in views.items():
        client = Client()
        client.force_login(user)
        deep = max(1, int(rows * DEEP) // per_page + 1)
        urls = {"page 1": URL, "filtered page 1": f"{URL}?{filter_qs}", "deep page": f"{URL}?p={deep}"}
        raw = {
            "page 1": (scope_sql, scope_params, 0),
            "filtered page 1": (
                f"{scope_sql} AND b.partner_id = %s AND b.status = %s",
                [*scope_params, partner_id, status],
                0,
            ),
            "deep page": (scope_sql, scope_params, (deep - 1) * per_page),
        }
        for case in CASES:
            url = urls[case]
            where, params, offset = raw[case]
            raw_sql = (
                f"SELECT {RAW_COLUMNS} {RAW_FROM} WHERE {where} "  # noqa: S608 - fixed fragments
                "ORDER BY b.created_at DESC, b.id DESC LIMIT %s OFFSET %s"
            )
            response = client.get(url)
            if response.status_code != 200 or "cl" not in (response.context or {}):
                errors.append(f"{who} {case} at {n:,}: {url} answered {response.status_code}")
                continue
            shown = [_row(b) for b in response.context["cl"].result_list]
            expected = [tuple(r[:8]) for r in _raw(raw_sql, [*params, per_page, offset])]
            if case != "deep page" and shown != expected:
                mismatches.append(f"{who} {case} at {n:,}: {len(shown)} rows shown, {len(expected)} raw")

            def ours(url=url, client=client):
                assert client.get(url).status_code == 200

            entry = {
                "url": url,
                "ours": _measure(ours),
                "raw": _measure(
                    lambda raw_sql=raw_sql, params=params, offset=offset: _raw(raw_sql, [*params, per_page, offset])
                ),
            }
            if case == "deep page" and offset:
                # The same page without skipping rows: keyset on the row before it.
                before = _raw(
                    f"SELECT b.created_at, b.id {RAW_FROM} WHERE {where} "  # noqa: S608
                    "ORDER BY b.created_at DESC, b.id DESC LIMIT 1 OFFSET %s",
                    [*params, offset - 1],
                )[0]
                keyset_sql = (
                    f"SELECT {RAW_COLUMNS} {RAW_FROM} WHERE {where} AND (b.created_at, b.id) < (%s, %s) "  # noqa: S608
                    "ORDER BY b.created_at DESC, b.id DESC LIMIT %s"
                )
                keyset_params = [*params, *before, per_page]
                assert _raw(keyset_sql, keyset_params) == _raw(raw_sql, [*params, per_page, offset])
                entry["raw_keyset"] = _measure(lambda sql=keyset_sql, params=keyset_params: _raw(sql, params))
            if who == "lead":
                # The default admin sees what the lead sees (a superuser, no scope).
                request_path = url

                def default(request_path=request_path):
                    request = factory.get(request_path)
                    request.user = superuser
                    response = default_site._registry[Booking].changelist_view(request)
                    response.render()
                    assert response.status_code == 200, response.status_code

                try:
                    entry["default_admin"] = _measure(default)
                except AssertionError as exc:
                    errors.append(f"default admin {case} at {n:,}: {exc}")
            figures["cases"][f"{who}, {case}"] = entry
    figures["loadavg"]["end"] = [round(x, 2) for x in os.getloadavg()]
    return figures, errors, mismatches


def _print(sizes):
    small, large = sizes
    for fig in sizes:
        print(f"load average at {fig['bookings']:,} bookings: {fig['loadavg']['start']} -> {fig['loadavg']['end']}")
    print(
        f"\n{'case':28} {'size':>10} {'ours p50':>9} {'p95':>8} {'q':>3} {'sql':>4} "
        f"{'raw p50':>8} {'keyset':>7} {'default p50':>11} {'q':>3}"
    )
    for name in large["cases"]:
        for fig in (small, large):
            e = fig["cases"].get(name)
            if not e:
                continue
            d = e.get("default_admin")
            print(
                f"{name:28} {fig['bookings']:>10,} {e['ours']['p50_ms']:8.1f}m {e['ours']['p95_ms']:7.1f}m "
                f"{e['ours']['queries']!s:>3} {e['ours']['sql_share']:4.0%} {e['raw']['p50_ms']:7.2f}m "
                + (f"{e['raw_keyset']['p50_ms']:6.2f}m " if "raw_keyset" in e else f"{'':7} ")
                + (f"{d['p50_ms']:10.1f}m {d['queries']!s:>3}" if d else "")
            )


def _goals(small, large):
    goals = {}
    for name, e in large["cases"].items():
        s = small["cases"].get(name)
        if s:
            goals[f"{name}: p50 at {large['bookings']:,} within 1.2x of {small['bookings']:,}"] = (
                round(e["ours"]["p50_ms"] / s["ours"]["p50_ms"], 2),
                e["ours"]["p50_ms"] <= 1.2 * s["ours"]["p50_ms"],
            )
        d = e.get("default_admin")
        if d and name.endswith("deep page"):
            ratio = round(d["p50_ms"] / e["ours"]["p50_ms"], 2)
            goals[f"{name}: >=10x faster than the default admin"] = (ratio, ratio >= 10)
        if d and name.endswith(", page 1"):
            ratio = round(d["p50_ms"] / e["ours"]["p50_ms"], 2)
            goals[f"{name}: no slower than the default admin"] = (ratio, ratio >= 1)
    return goals


@pytest.mark.benchmark
@pytest.mark.django_db(transaction=True)
def test_bench_changelist_at_two_sizes():
    results, errors, mismatches, loads = [], [], [], []
    default_site = _default_admin_site()
    lead = superuser = None
    for n, label in ((SMALL, f"cl{SMALL}"), (LARGE - SMALL, f"cl{LARGE}")):
        report = _load(n, label)
        loads.append(round(report.load_seconds, 1))
        print(f"\nscale load: +{n:,} bookings in {report.load_seconds:.1f}s")
        if lead is None:
            lead = staff(StaffGroup.OPERATIONS_LEAD)
            superuser = StaffFactory(is_superuser=True)
        figures, errs, mism = _measure_size(n, lead, superuser, default_site)
        results.append(figures)
        errors += errs
        mismatches += mism

    small, large = results
    _print(results)
    goals = _goals(small, large)
    for goal, (ratio, met) in goals.items():
        print(f"  {'met    ' if met else 'NOT met'}  {goal} ({ratio}x)")
    query_changes = {
        name: (small["cases"][name]["ours"]["queries"], e["ours"]["queries"])
        for name, e in large["cases"].items()
        if name in small["cases"] and small["cases"][name]["ours"]["queries"] != e["ours"]["queries"]
    }
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "changelist.json").write_text(
        json.dumps(
            {
                "scale": SCALE,
                "load_seconds": loads,
                "repeat": REPEAT,
                "sizes": results,
                "goals": {k: {"ratio": r, "met": m} for k, (r, m) in goals.items()},
                "errors": errors,
                "row_mismatches": mismatches,
                "query_count_changes": query_changes,
            },
            indent=2,
            default=str,
        )
    )
    assert not errors, errors
    assert not mismatches, mismatches
    assert not query_changes, f"our changelist's query count changes with size: {query_changes}"
