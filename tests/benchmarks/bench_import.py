"""Benchmark: importing listings through the admin's import path against COPY into an unlogged table.

Run with `make bench` (BENCH_SCALE=N; the file has N * 100 listings, capped at 100,000, at least
1,000; BENCH_IMPORT_ROWS overrides). In one process, on the same CSV bytes, it times:

- **ours**: what the admin's confirm step runs: `SpreadsheetCSV().create_dataset()` then
  `ListingImportResource().import_data(dry_run=False)`: parse, check every cell, resolve partners,
  owners and categories (one query per column), check memberships and duplicates, then write the
  listings and one audit event per listing through binary COPY in one transaction;
- **dry run**: the preview step alone (parse and check, no write);
- **baseline**: `COPY ... FROM STDIN (FORMAT csv)` of the same bytes into an UNLOGGED table with the
  file's columns (no constraints, no indexes, no WAL): the floor for moving these bytes into
  PostgreSQL.

Each repetition commits for real; its rows are deleted and the tables vacuumed outside the timing.
The test fails if an import writes a different number of rows or total price than the file holds,
or if the query count changes between repetitions. Writes var/bench/import.json for BENCHMARKS.md.
"""

import json
import os
import random
import statistics
import time
from decimal import Decimal
from pathlib import Path

import pytest
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.db.models import Sum
from django.test.utils import CaptureQueriesContext

from marketplace.audit.models import Event
from marketplace.catalog.models import Listing
from marketplace.catalog.resources import ListingImportResource
from marketplace.transfers.formats import SpreadsheetCSV
from tests.factories import CategoryFactory, MembershipFactory, PartnerFactory, StaffFactory

SCALE = int(os.environ.get("BENCH_SCALE", "1000"))
ROWS = int(os.environ.get("BENCH_IMPORT_ROWS", str(min(100_000, max(1_000, SCALE * 100)))))
REPEAT = int(os.environ.get("BENCH_IMPORT_REPEAT", "3"))
OUT = Path(os.environ.get("BENCH_OUT", "var/bench"))
GOAL_ROWS_PER_SECOND = 10_000


def _csv(partners, owners, categories) -> tuple[bytes, Decimal]:
    rng = random.Random(20261128)
    lines = ["title,partner,owner,category,price,currency,kind,description\n"]
    total = Decimal("0.00")
    for i in range(ROWS):
        p = rng.randrange(len(partners))
        price = Decimal(rng.randrange(500, 50_000)) / 100
        total += price
        lines.append(
            f"Imported listing {i},{partners[p]},{owners[p]},{rng.choice(categories)},{price},EUR,service,"
            f'"Line one, with a comma\nand a second line"\n'
        )
    return "".join(lines).encode(), total


def _undo():
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM audit_event WHERE verb IN ('listing.imported', 'import')")
        cursor.execute("DELETE FROM catalog_listing")
        cursor.execute("TRUNCATE bench_listing_copy")
        cursor.execute("VACUUM ANALYZE catalog_listing")
        cursor.execute("VACUUM ANALYZE audit_event")


@pytest.mark.benchmark
@pytest.mark.django_db(transaction=True)
def test_bench_listing_import_against_copy_into_unlogged_table():
    partners = [PartnerFactory(slug=f"bench-partner-{i}") for i in range(50)]
    owners = [
        MembershipFactory(partner=p, user__email=f"owner{i}@bench.test").user.email for i, p in enumerate(partners)
    ]
    categories = [CategoryFactory(slug=f"bench-category-{i}").slug for i in range(20)]
    lead = StaffFactory(is_superuser=True)
    content, file_total = _csv([p.slug for p in partners], owners, categories)
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE UNLOGGED TABLE IF NOT EXISTS bench_listing_copy (title text, partner text, owner text, "
            "category text, price numeric(14, 2), currency char(3), kind text, description text)"
        )

    samples = {"ours": [], "dry_run": [], "parse": [], "copy": []}
    query_counts = []
    for _ in range(REPEAT):
        started = time.perf_counter()
        dataset = SpreadsheetCSV().create_dataset(content)
        samples["parse"].append(time.perf_counter() - started)
        result = ListingImportResource().import_data(dataset, dry_run=True, user=lead)
        samples["dry_run"].append(time.perf_counter() - started)
        assert not result.has_errors() and not result.has_validation_errors()

        ContentType.objects.clear_cache()  # each repetition pays the same lookups
        with CaptureQueriesContext(connection) as queries:
            started = time.perf_counter()
            dataset = SpreadsheetCSV().create_dataset(content)
            result = ListingImportResource().import_data(dataset, dry_run=False, user=lead, file_name="bench.csv")
            samples["ours"].append(time.perf_counter() - started)
        query_counts.append(len(queries))
        assert result.totals["new"] == ROWS
        assert Listing.objects.count() == ROWS
        assert Listing.objects.aggregate(total=Sum("price"))["total"] == file_total
        assert Event.objects.filter(verb="listing.imported").count() == ROWS

        started = time.perf_counter()
        with (
            connection.cursor() as cursor,
            cursor.copy("COPY bench_listing_copy FROM STDIN (FORMAT csv, HEADER true)") as copy,
        ):
            copy.write(content)
        samples["copy"].append(time.perf_counter() - started)
        with connection.cursor() as cursor:
            cursor.execute("SELECT COUNT(*), SUM(price) FROM bench_listing_copy")
            assert cursor.fetchone() == (ROWS, file_total)
        _undo()

    assert len(set(query_counts)) == 1, f"query count changed between repetitions: {query_counts}"
    p50 = {name: statistics.median(values) for name, values in samples.items()}
    figures = {
        "rows": ROWS,
        "bytes": len(content),
        "repeat": REPEAT,
        "queries": query_counts[0],
        "p50_seconds": {k: round(v, 3) for k, v in p50.items()},
        "rows_per_second": {k: round(ROWS / v) for k, v in p50.items()},
        "ours_over_copy": round(p50["ours"] / p50["copy"], 1),
        "load_average": os.getloadavg()[0],
    }
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "import.json").write_text(json.dumps(figures, indent=2))
    print(
        f"\nimport of {ROWS:,} listings ({len(content) / 1e6:.1f} MB), p50 of {REPEAT}: "
        f"ours {p50['ours']:.2f} s = {ROWS / p50['ours']:,.0f} rows/s "
        f"(parse {p50['parse']:.2f} s, dry run {p50['dry_run']:.2f} s, {query_counts[0]} queries); "
        f"COPY into an unlogged table {p50['copy']:.2f} s = {ROWS / p50['copy']:,.0f} rows/s; "
        f"ours / COPY = {p50['ours'] / p50['copy']:.1f}x"
    )
    if ROWS >= 50_000:  # below that, fixed costs (the lock, ANALYZE, two statements) dominate
        assert ROWS / p50["ours"] >= GOAL_ROWS_PER_SECOND, figures
