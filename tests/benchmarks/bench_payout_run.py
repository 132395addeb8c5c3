"""Benchmark: a payout run against the single SQL statement that computes the same totals.

Run with `make bench` (BENCH_SCALE=N bookings, default 1000; CI uses a tiny N; about half of the
generated bookings are settled past the hold period, so N=215000 gives ~100,000 eligible ones).
In one process and on the same data it times:

- `payout_run_execute()`: claim partners (SKIP LOCKED), gather every eligible booking into one
  payout per partner with its items, holds and audit events, and submit the approved payouts (one
  attempt each, handed to tasks on commit; the gateway calls themselves are not in the timing);
- the baseline: one `SELECT ... GROUP BY partner` computing what each partner is owed.

Each repetition of the run commits for real (deferred foreign-key checks included), then its rows
are deleted and the tables vacuumed, outside the timing, so the next one starts from the same data. The test
fails if the run's payouts differ from the baseline's totals by a cent, or if the run's query
count changes between repetitions (it grows only with the number of partner batches, not rows). Writes var/bench/payout_run.json for BENCHMARKS.md.
"""

import json
import os
import statistics
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_q.conf import Conf

from marketplace.demo.generator import scale_load
from marketplace.payouts.models import Payout, PayoutRun
from marketplace.payouts.runs import payout_run_execute

SCALE = int(os.environ.get("BENCH_SCALE", "1000"))
REPEAT = int(os.environ.get("BENCH_PAYOUT_REPEAT", "5"))
OUT = Path(os.environ.get("BENCH_OUT", "var/bench"))

BASELINE_SQL = """
SELECT b.partner_id, COUNT(*),
       SUM(p.captured_amount - p.refunded_amount - (b.platform_fee - COALESCE(r.platform_refunded, 0)))
FROM bookings_booking b
JOIN payments_payment p ON p.booking_id = b.id
LEFT JOIN (SELECT payment_id, SUM(platform_share) AS platform_refunded FROM payments_refund GROUP BY payment_id) r
  ON r.payment_id = p.id
WHERE b.status IN ('completed', 'resolved', 'closed') AND b.completed_at <= %s AND p.captured_amount > 0
  AND p.captured_amount - p.refunded_amount - (b.platform_fee - COALESCE(r.platform_refunded, 0)) > 0
  AND NOT EXISTS (SELECT 1 FROM payouts_payoutitem i WHERE i.booking_id = b.id AND i.is_active)
GROUP BY b.partner_id
"""


def _baseline():
    cutoff = timezone.now() - timedelta(days=settings.MARKETPLACE_PAYOUT_HOLD_DAYS)
    with connection.cursor() as cursor:
        cursor.execute(BASELINE_SQL, [cutoff])
        return {partner: (n, total) for partner, n, total in cursor.fetchall()}


def _median_ms(samples):
    return statistics.median(samples) * 1000


def _undo_runs():
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM audit_event WHERE verb LIKE 'payout.%%'")
        for table in ("payouts_payoutattempt", "payouts_payouthold", "payouts_payoutitem", "payouts_payout"):
            cursor.execute(f"DELETE FROM {table}")  # noqa: S608 - fixed table names
        cursor.execute("DELETE FROM payouts_payoutrun")
        cursor.execute("DELETE FROM django_q_ormq")
        for table in ("payouts_payoutitem", "payouts_payout", "payouts_payoutattempt", "audit_event"):
            cursor.execute(f"VACUUM ANALYZE {table}")


@pytest.mark.benchmark
@pytest.mark.django_db(transaction=True)
def test_bench_payout_run_against_one_sql_statement(monkeypatch):
    # As in production, the run queues each attempt on the ORM broker; a worker sends it later.
    monkeypatch.setattr(Conf, "SYNC", False)
    report = scale_load(n=SCALE, run_label=f"payout{SCALE}")
    print(f"\nscale load: {SCALE:,} bookings in {report.load_seconds:.1f}s")
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")

    expected = _baseline()  # warms the cache for both
    for model in (Payout, PayoutRun):
        ContentType.objects.get_for_model(model)  # the content type cache, as in a long-lived worker
    eligible = sum(n for n, _ in expected.values())
    base_samples, run_samples, queries, sql_ms, result = [], [], [], [], None
    gather_ms, commit_ms = [], []
    for _ in range(REPEAT):
        start = time.perf_counter()
        totals = _baseline()
        base_samples.append(time.perf_counter() - start)
        assert totals == expected

        with CaptureQueriesContext(connection) as ctx:
            start = time.perf_counter()
            run = payout_run_execute()
            run_samples.append(time.perf_counter() - start)
        queries.append(len(ctx.captured_queries))
        gather_ms.append(sum(float(q["time"]) for q in ctx.captured_queries if "WITH payable AS" in q["sql"]) * 1000)
        # Django logs COMMIT as a query: at commit PostgreSQL runs the deferred foreign-key checks.
        commit_ms.append(sum(float(q["time"]) for q in ctx.captured_queries if q["sql"] == "COMMIT") * 1000)
        sql_ms.append(sum(float(q["time"]) for q in ctx.captured_queries) * 1000)
        result = {p.partner_id: (p.items.count(), p.amount) for p in Payout.objects.filter(run=run)}
        assert run.bookings == eligible
        _undo_runs()  # the next repetition starts from the same data

    assert result == expected, "the run's payouts differ from the one-statement totals"
    assert len(set(queries)) == 1, f"the run's query count varies: {queries}"
    base_ms, run_ms = _median_ms(base_samples), _median_ms(run_samples)
    figures = {
        "bookings": SCALE,
        "eligible_bookings": eligible,
        "partners": len(expected),
        "baseline_ms_p50": round(base_ms, 1),
        "run_ms_p50": round(run_ms, 1),
        "ratio": round(run_ms / base_ms, 2),
        "run_queries": queries[0],
        "run_sql_share": round(statistics.median(sql_ms) / run_ms, 2),
        "gather_statement_ms_p50": round(statistics.median(gather_ms), 1),
        "commits_ms_p50": round(statistics.median(commit_ms), 1),
        "repeat": REPEAT,
    }
    print(
        f"payout run over {eligible:,} eligible bookings ({len(expected)} partners): "
        f"run {run_ms:.0f} ms p50 vs one SQL statement {base_ms:.0f} ms p50 = {run_ms / base_ms:.2f}x; "
        f"{queries[0]} queries, {figures['run_sql_share']:.0%} of the run's time in SQL "
        f"(gather statement {figures['gather_statement_ms_p50']:.0f} ms, commits with their deferred "
        f"foreign-key checks {figures['commits_ms_p50']:.0f} ms)"
    )
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "payout_run.json").write_text(json.dumps(figures, indent=2))
