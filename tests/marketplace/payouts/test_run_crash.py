"""A payout run over 10,000+ eligible bookings in a real qcluster, killed with SIGKILL mid-run.

Twice: once while the run is gathering bookings into payouts, once while the gateway attempts are
being sent. After each crash a new cluster starts and the run is queued again. At the end every
eligible booking of an unflagged partner is in exactly one paid payout, the bank (the sandbox's
shared book, which a crash cannot roll back) made exactly one transfer per payout, and the ledger
balances to the cent.
"""

from collections import Counter
from decimal import Decimal

import pytest
from django.db import connection
from django.db.models import Count
from django_q.conf import Conf
from django_q.tasks import async_task

from marketplace.demo.generator import scale_load
from marketplace.ledger.models import LedgerTransaction
from marketplace.partners.models import Partner
from marketplace.payments.gateway import SandboxGateway
from marketplace.payouts.models import Payout, PayoutItem, PayoutRun
from marketplace.payouts.reconciliation import ledger_reconcile
from marketplace.payouts.selectors import payout_run_preview
from tests.qcluster import QCluster, wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

BOOKINGS = 22_000  # about 40% are settled past the hold and the dispute window: >8,000 eligible
PARTNERS = 120


def _progress():
    payouts = Payout.objects.count()
    paid = Payout.objects.filter(status=Payout.Status.PAID).count()
    run = PayoutRun.objects.order_by("-pk").first()
    return payouts, paid, run


def test_payout_run_killed_mid_run_pays_every_booking_exactly_once(tmp_path, monkeypatch):
    monkeypatch.setattr(Conf, "SYNC", False)  # this process only queues; the cluster works
    scale_load(n=BOOKINGS, partners=PARTNERS, run_label="crash")
    expected = payout_run_preview()
    flagged = set(Partner.objects.filter(risk_flag=True).values_list("pk", flat=True))
    eligible = sum(n for n, _ in expected.values())
    assert eligible >= 8_000, eligible
    print(
        f"{eligible} eligible bookings of {len(expected)} partners ({len(flagged & {pk for pk, _ in expected})} flagged)"
    )
    to_pay = {key: v for key, v in expected.items() if key[0] not in flagged}

    book = tmp_path / "bank.jsonl"
    env = {
        "MARKETPLACE_SANDBOX_BOOK": str(book),
        "MARKETPLACE_SANDBOX_LATENCY_MS": "40",  # a gateway call takes time, as a bank's does
        "MARKETPLACE_PAYOUT_APPROVAL_ABOVE": "EUR=100000000,USD=100000000,GBP=100000000",  # every payout is auto-approved
        "MARKETPLACE_PAYOUT_RUN_BATCH_PARTNERS": "2",  # many small commits: a crash lands between them
        "MARKETPLACE_PAYOUT_ATTEMPT_STALE_SECONDS": "1",
        "Q_TIMEOUT": "60",
        "Q_RETRY": "90",
    }
    cluster = QCluster(database=connection.settings_dict, env=env, workers=2)
    try:
        # 1. Crash while the run is gathering bookings into payouts.
        cluster.start()
        async_task("marketplace.payouts.tasks.payout_run")
        payouts, _, run = wait_for(
            lambda: (p := _progress())[0] > 0 and p,
            timeout=60,
            interval=0.01,
            message="the run's first committed batch",
        )
        cluster.kill()
        payouts, paid, run = _progress()
        assert run.status == PayoutRun.Status.RUNNING, "the run finished before the crash"
        assert 0 < payouts < len(expected), f"not mid-gather: {payouts} of {len(expected)} payouts"
        print(f"crash 1: {payouts} of {len(expected)} payouts gathered, {run.bookings} bookings")

        # 2. Run again; crash while the gateway attempts are being sent.
        cluster.start()
        async_task("marketplace.payouts.tasks.payout_run")
        wait_for(lambda: _progress()[1] > 0, timeout=60, interval=0.01, message="the first paid payout")
        cluster.kill()
        payouts, paid, run = _progress()
        assert 0 < paid < len(to_pay), f"not mid-payment: {paid} of {len(to_pay)} paid"
        print(f"crash 2: {paid} of {len(to_pay)} payouts paid")

        # 3. Run again, to the end.
        cluster.start()
        async_task("marketplace.payouts.tasks.payout_run")
        wait_for(
            lambda: Payout.objects.filter(status=Payout.Status.PAID).count() == len(to_pay),
            timeout=120,
            interval=0.2,
            message=f"{len(to_pay)} paid payouts",
        )
        # Let any redelivered duplicate finish before looking at the books.
        wait_for(lambda: not Payout.objects.filter(status=Payout.Status.SUBMITTED).exists(), timeout=30)
    finally:
        cluster.stop()

    # Every eligible booking of an unflagged partner is in exactly one paid payout, for its amount.
    paid = Payout.objects.filter(status=Payout.Status.PAID)
    got = {(p.partner_id, p.currency): (p.items.filter(is_active=True).count(), p.amount) for p in paid}
    assert got == to_pay
    assert PayoutItem.objects.filter(is_active=True).count() == eligible
    assert not PayoutItem.objects.values("booking").annotate(n=Count("pk")).filter(n__gt=1).exists()
    # Flagged partners' payouts are held, not paid.
    assert set(Payout.objects.filter(status=Payout.Status.ON_HOLD).values_list("partner", flat=True)) == (
        flagged & {pk for pk, _ in expected}
    )
    # The bank made one transfer per paid payout, for its amount, and nothing else.
    transfers = [r for r in SandboxGateway.read_book(str(book)) if r["key"].startswith("payout:") and r["ok"]]
    assert Counter(r["key"] for r in transfers) == Counter(f"payout:payout-{p.pk}-attempt-1" for p in paid)
    assert sum(Decimal(r["amount"]) for r in transfers) == sum(amount for _, amount in to_pay.values())
    # The ledger posted each payout once and balances.
    assert LedgerTransaction.objects.filter(kind="payout").count() == len(to_pay)
    assert ledger_reconcile().balanced
    assert PayoutRun.objects.filter(status=PayoutRun.Status.FINISHED).exists()
