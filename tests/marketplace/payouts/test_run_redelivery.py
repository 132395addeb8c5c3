"""The payout tasks delivered twice, and at once from several processes: money moves once.

The children are real OS processes (tests/processes.py) with their own database sessions. Each
runs tasks inline (the test settings' sync cluster), so the gateway attempts a run queues are
sent from the process that committed them. The sandbox gateway keeps its book in a shared file,
as the bank would: it is the outside evidence of how many transfers were made.
"""

from collections import Counter
from decimal import Decimal

import pytest
from django.db.models import Count, Sum

from marketplace.ledger.models import LedgerTransaction
from marketplace.partners.models import PartnerMembership
from marketplace.payments.gateway import SandboxGateway
from marketplace.payouts import tasks
from marketplace.payouts.models import Payout, PayoutAttempt, PayoutItem, PayoutRun
from marketplace.payouts.reconciliation import ledger_reconcile
from marketplace.payouts.selectors import payout_run_preview
from tests.factories import PartnerFactory, PayoutAccountFactory, UserFactory
from tests.factories.flows import settled_booking
from tests.factories.settlement import payout_in
from tests.processes import run_in_processes

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def book(tmp_path, monkeypatch):
    """The sandbox's shared book of answers; set before the children fork, so they all use it."""
    path = tmp_path / "sandbox-book.jsonl"
    monkeypatch.setenv("MARKETPLACE_SANDBOX_BOOK", str(path))
    return path


def _partners_with_bookings(partners: int, bookings: int):
    made = []
    for _ in range(partners):
        partner = PartnerFactory()
        PayoutAccountFactory(partner=partner)
        PartnerMembership.objects.create(partner=partner, user=UserFactory(), role=PartnerMembership.Role.OWNER)
        for _ in range(bookings):
            settled_booking(listing__partner=partner)
        made.append(partner)
    return made


def _transfers(book) -> Counter:
    """Payouts the bank made (the book also holds the bookings' authorisations and captures)."""
    return Counter(
        row["key"] for row in SandboxGateway.read_book(str(book)) if row["ok"] and row["key"].startswith("payout:")
    )


def _assert_paid_exactly_as(expected: dict, book) -> None:
    """Each partner has one paid payout holding exactly the expected bookings and amount; the
    bank saw one transfer per payout; the ledger posted each payout once and reconciles."""
    paid = Payout.objects.filter(status=Payout.Status.PAID)
    assert {(p.partner_id, p.currency): (p.items.filter(is_active=True).count(), p.amount) for p in paid} == expected
    assert Payout.objects.exclude(status=Payout.Status.PAID).count() == 0
    assert PayoutItem.objects.values("booking").annotate(n=Count("pk")).filter(n__gt=1).count() == 0
    transfers = _transfers(book)
    assert sorted(transfers) == sorted(f"payout:payout-{p.pk}-attempt-1" for p in paid)
    assert set(transfers.values()) == {1}
    assert LedgerTransaction.objects.filter(kind="payout").count() == paid.count()
    assert ledger_reconcile().balanced


def test_payout_run_task_twice_in_a_row_pays_once(book):
    _partners_with_bookings(2, 2)
    expected = payout_run_preview()

    first, second = tasks.payout_run(), tasks.payout_run()

    assert first["payouts_created"] == 2 and first["bookings"] == 4
    assert (second["payouts_created"], second["bookings"], second["submitted"]) == (0, 0, 0)
    _assert_paid_exactly_as(expected, book)


def test_payout_run_task_twice_at_once_from_two_processes_pays_once(book):
    _partners_with_bookings(3, 2)
    expected = payout_run_preview()
    assert len(expected) == 3

    outcomes = run_in_processes(tasks.payout_run, tasks.payout_run)

    assert outcomes.all_ok()
    assert sum(o.value["payouts_created"] for o in outcomes) == 3
    assert sum(o.value["bookings"] for o in outcomes) == 6
    assert sum(o.value["submitted"] for o in outcomes) == 3
    _assert_paid_exactly_as(expected, book)
    assert PayoutRun.objects.filter(status=PayoutRun.Status.FINISHED).count() == 2


def test_four_runs_at_once_give_the_totals_of_one(book):
    _partners_with_bookings(5, 3)
    expected = payout_run_preview()
    total = sum((amount for _, amount in expected.values()), Decimal("0"))

    outcomes = run_in_processes(*[tasks.payout_run] * 4)

    assert outcomes.all_ok()
    assert sum(o.value["payouts_created"] for o in outcomes) == 5
    assert sum(Decimal(o.value["amount_created"]) for o in outcomes) == total
    assert Payout.objects.aggregate(t=Sum("amount"))["t"] == total
    _assert_paid_exactly_as(expected, book)


def test_attempt_task_twice_at_once_from_two_processes_transfers_once(book):
    with_attempt = payout_in(Payout.Status.SUBMITTED)
    attempt = PayoutAttempt.objects.get(payout=with_attempt)

    outcomes = run_in_processes(
        lambda: tasks.payout_attempt_process(attempt.pk), lambda: tasks.payout_attempt_process(attempt.pk)
    )

    assert outcomes.all_ok()
    with_attempt.refresh_from_db()
    attempt.refresh_from_db()
    assert with_attempt.status == Payout.Status.PAID
    assert attempt.status == PayoutAttempt.Status.SUCCEEDED
    # the second process found the attempt finished, or asked the gateway with the same key
    assert _transfers(book) == Counter({f"payout:{attempt.idempotency_key}": 1})
    assert LedgerTransaction.objects.filter(kind="payout").count() == 1
    assert ledger_reconcile().balanced


def test_attempt_task_twice_in_a_row_transfers_once(book):
    payout = payout_in(Payout.Status.SUBMITTED)
    attempt = PayoutAttempt.objects.get(payout=payout)

    tasks.payout_attempt_process(attempt.pk)
    tasks.payout_attempt_process(attempt.pk)

    payout.refresh_from_db()
    assert payout.status == Payout.Status.PAID
    assert _transfers(book) == Counter({f"payout:{attempt.idempotency_key}": 1})
    payout_calls = [row for row in SandboxGateway.read_book(str(book)) if row["key"].startswith("payout:")]
    assert len(payout_calls) == 1  # the second delivery never reached the bank
    assert LedgerTransaction.objects.filter(kind="payout").count() == 1
