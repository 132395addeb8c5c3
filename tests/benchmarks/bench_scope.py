"""Benchmark: the scope selectors against hand-written SQL that already knows the answer's shape.

Run with `make bench` (BENCH_SCALE=N bookings, default 1000; CI uses a tiny N). Loads N bookings with
the demo generator's bulk path, then times, in the same process and on the same data:

- a scoped agent's first page of bookings through `booking_for_user` (EXISTS over guardian's
  partner grants) against raw psycopg with the partner id written in (`WHERE partner_id = %s`);
- the same page filtered by status;
- a category-tree grant (EXISTS with a path prefix) against raw SQL with the subtree's ids;
- a scoped agent's first page of people through `user_for_user` (the people connected to their
  partner's memberships, listings, bookings, disputes and job applications) against the union a
  person would write with the partner id in each branch;
- `ledger_reconcile()` against the raw SQL aggregates it amounts to.

Prints p50/p95 in ms and the ratio to the raw baseline, and writes them to var/bench/scope.json for
BENCHMARKS.md. The test fails if a selector returns other rows than its baseline or if its query
count changes.
"""

import json
import os
import statistics
import time
from pathlib import Path

import pytest
from django.db import connection

from marketplace.accounts.selectors import user_for_user
from marketplace.bookings.models import Booking
from marketplace.bookings.selectors import booking_for_user
from marketplace.catalog.models import Category
from marketplace.demo.generator import scale_load
from marketplace.partners.selectors import scope_is_global
from marketplace.partners.services import partner_scope_grant
from marketplace.payouts.reconciliation import ledger_reconcile
from tests.factories import StaffFactory

SCALE = int(os.environ.get("BENCH_SCALE", "1000"))
REPEAT = int(os.environ.get("BENCH_REPEAT", "30"))
PAGE = 50
OUT = Path(os.environ.get("BENCH_OUT", "var/bench"))


def _time(fn, repeat=REPEAT):
    fn()  # warm the plan and caches
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.95) - 1]


def _raw(sql, params=()):
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


@pytest.mark.benchmark
@pytest.mark.django_db
def test_bench_scope_selectors_against_raw_sql(django_assert_num_queries):
    report = scale_load(n=SCALE, run_label=f"bench{SCALE}")
    print(f"\nscale load: {SCALE:,} bookings in {report.load_seconds:.1f}s")

    # The busiest partner and a non-leaf category give the scoped user the most rows to page through.
    partner_id, bookings_at_partner = _raw(
        "SELECT partner_id, count(*) FROM bookings_booking GROUP BY partner_id ORDER BY 2 DESC LIMIT 1"
    )[0]
    agent = StaffFactory()
    partner_scope_grant(
        partner=Booking.objects.get(
            pk=_raw("SELECT id FROM bookings_booking WHERE partner_id = %s LIMIT 1", [partner_id])[0][0]
        ).partner,
        grantee=agent,
    )
    parent = Category.objects.filter(depth=1).order_by("path").first()
    category_agent = StaffFactory()
    from guardian.shortcuts import assign_perm

    assign_perm("catalog.operate_category", category_agent, parent)

    cases = {}

    def page(qs):
        return list(qs.order_by("-created_at", "-id").values_list("id", "status", "amount")[:PAGE])

    raw_page = "SELECT id, status, amount FROM bookings_booking WHERE partner_id = %s ORDER BY created_at DESC, id DESC LIMIT %s"
    raw_filtered = (
        "SELECT id, status, amount FROM bookings_booking WHERE partner_id = %s AND status = %s "
        "ORDER BY created_at DESC, id DESC LIMIT %s"
    )
    raw_category = (
        "SELECT b.id, b.status, b.amount FROM bookings_booking b WHERE b.category_id IN "
        "(SELECT id FROM catalog_category WHERE path LIKE %s) ORDER BY b.created_at DESC, b.id DESC LIMIT %s"
    )

    # Correctness first: each selector returns exactly its baseline's rows, in one query once the
    # user's model permissions are cached (a request pays two more queries for them, once).
    for user in (agent, category_agent):
        with django_assert_num_queries(2):
            assert scope_is_global(user) is False
    with django_assert_num_queries(1):
        orm_rows = page(booking_for_user(agent))
    assert [tuple(r) for r in orm_rows] == [tuple(r) for r in _raw(raw_page, [partner_id, PAGE])]
    with django_assert_num_queries(1):
        orm_rows = page(booking_for_user(agent).filter(status="completed"))
    assert [tuple(r) for r in orm_rows] == [tuple(r) for r in _raw(raw_filtered, [partner_id, "completed", PAGE])]
    with django_assert_num_queries(1):
        orm_rows = page(booking_for_user(category_agent))
    assert [tuple(r) for r in orm_rows] == [tuple(r) for r in _raw(raw_category, [parent.path + "%", PAGE])]

    def people_page(qs):
        return list(qs.order_by("-date_joined", "-id").values_list("id", "email")[:PAGE])

    raw_people = (
        "SELECT u.id, u.email FROM accounts_user u WHERE u.id IN ("
        " SELECT %(me)s"
        " UNION ALL SELECT user_id FROM partners_partnermembership WHERE partner_id = %(p)s"
        " UNION ALL SELECT owner_id FROM catalog_listing WHERE partner_id = %(p)s"
        " UNION ALL SELECT client_id FROM bookings_booking WHERE partner_id = %(p)s"
        " UNION ALL SELECT opened_by_id FROM disputes_dispute WHERE partner_id = %(p)s"
        " UNION ALL SELECT e.submitted_by_id FROM disputes_disputeevidence e"
        "  JOIN disputes_dispute d ON d.id = e.dispute_id WHERE d.partner_id = %(p)s"
        " UNION ALL SELECT a.applicant_id FROM jobs_jobapplication a"
        "  JOIN catalog_listing l ON l.id = a.listing_id WHERE l.partner_id = %(p)s"
        ") ORDER BY u.date_joined DESC, u.id DESC LIMIT %(n)s"
    )
    people_params = {"me": agent.pk, "p": partner_id, "n": PAGE}
    with django_assert_num_queries(1):
        orm_people = people_page(user_for_user(agent))
    assert [tuple(r) for r in orm_people] == [tuple(r) for r in _raw(raw_people, people_params)]
    assert len(orm_people) == min(PAGE, len(_raw(raw_people.replace("LIMIT %(n)s", ""), people_params)))

    cases["partner grant, page 1"] = (
        _time(lambda: page(booking_for_user(agent))),
        _time(lambda: _raw(raw_page, [partner_id, PAGE])),
    )
    cases["partner grant, status filter"] = (
        _time(lambda: page(booking_for_user(agent).filter(status="completed"))),
        _time(lambda: _raw(raw_filtered, [partner_id, "completed", PAGE])),
    )
    cases["category subtree grant, page 1"] = (
        _time(lambda: page(booking_for_user(category_agent))),
        _time(lambda: _raw(raw_category, [parent.path + "%", PAGE])),
    )
    cases["people, partner grant, page 1"] = (
        _time(lambda: people_page(user_for_user(agent))),
        _time(lambda: _raw(raw_people, people_params)),
    )
    reconcile_sql = [
        "SELECT coalesce(sum(captured_amount), 0) FROM payments_payment WHERE captured_amount > 0",
        "SELECT coalesce(sum(amount), 0), coalesce(sum(platform_share), 0) FROM payments_refund",
        "SELECT coalesce(sum(amount), 0) FROM payouts_payout WHERE status = 'paid'",
        "SELECT coalesce(sum(b.platform_fee), 0) FROM payments_payment p JOIN bookings_booking b "
        "ON b.id = p.booking_id WHERE p.captured_amount > 0",
        "SELECT account, partner_id, sum(amount) FROM ledger_ledgerentry GROUP BY account, partner_id",
        "SELECT t.id FROM ledger_ledgertransaction t JOIN ledger_ledgerentry e ON e.transaction_id = t.id "
        "GROUP BY t.id HAVING sum(e.amount) <> 0 LIMIT 100",
    ]
    few = max(3, REPEAT // 10)
    cases["ledger_reconcile()"] = (
        _time(ledger_reconcile, repeat=few),
        _time(lambda: [_raw(sql) for sql in reconcile_sql], repeat=few),
    )
    assert ledger_reconcile().balanced

    rows = []
    print(
        f"\n{'case':34} {'selector p50':>12} {'raw p50':>9} {'ratio':>6}   (N={SCALE:,}, partner rows={bookings_at_partner:,})"
    )
    for name, ((orm50, orm95), (raw50, raw95)) in cases.items():
        ratio = orm50 / raw50 if raw50 else float("inf")
        print(f"{name:34} {orm50:10.2f}ms {raw50:7.2f}ms {ratio:5.1f}x")
        rows.append(
            {
                "case": name,
                "orm_p50_ms": round(orm50, 3),
                "orm_p95_ms": round(orm95, 3),
                "raw_p50_ms": round(raw50, 3),
                "raw_p95_ms": round(raw95, 3),
                "ratio": round(ratio, 2),
            }
        )
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"scope-{SCALE}.json").write_text(
        json.dumps({"scale": SCALE, "load_seconds": round(report.load_seconds, 2), "cases": rows}, indent=2)
    )
