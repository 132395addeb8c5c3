"""The scheduled reconciliation check: a row per run, an audit event and an admin alert on mismatch, no fixes."""

import time
from decimal import Decimal

import pytest
from django.db import connection
from django.db.models import F, Sum
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from marketplace.audit.models import Event
from marketplace.core.locks import single_flight
from marketplace.ledger.models import LedgerEntry, LedgerTransaction, ReconciliationCheck
from marketplace.payouts import tasks
from marketplace.payouts.reconciliation import ledger_reconcile_check
from tests.factories import flows
from tests.processes import run_in_processes

A = LedgerEntry.Account
ALERT = "Ledger reconciliation failed"


@pytest.fixture
def superuser(django_user_model):
    return django_user_model.objects.create_superuser(email="root@example.com", password="x")


def ledger_state():
    return (
        LedgerTransaction.objects.count(),
        list(LedgerEntry.objects.order_by("pk").values_list("pk", "amount")),
    )


def corrupt_one_entry() -> LedgerEntry:
    entry = LedgerEntry.objects.filter(account=A.CASH).order_by("pk").first()
    LedgerEntry.objects.filter(pk=entry.pk).update(amount=F("amount") + Decimal("0.01"))
    return entry


@pytest.mark.django_db
def test_ledger_reconcile_check_balanced_books_write_a_balanced_row():
    # given a settled booking with its capture and fee posted
    flows.settled_booking(amount=Decimal("200.00"), platform_fee=Decimal("30.00"), commission_rate=Decimal("0.15"))
    # when the check runs
    check = ledger_reconcile_check()
    # then it records a balanced row with the totals, and no mismatch event
    check.refresh_from_db()
    assert check.balanced
    assert (check.mismatches, check.unbalanced_transaction_ids) == ([], [])
    assert check.totals["EUR"]["payments"] == "200.00"
    assert check.totals["EUR"]["platform_revenue"] == "30.00"
    assert check.totals["EUR"]["ledger_sum"] == "0.00"
    assert check.duration.total_seconds() >= 0
    assert not Event.objects.filter(verb="ledger.mismatch").exists()


@pytest.mark.django_db
def test_ledger_reconcile_check_corrupt_entry_is_reported_not_fixed():
    # given a settled booking and one cash entry changed by a cent behind the services' back
    flows.settled_booking(amount=Decimal("200.00"), platform_fee=Decimal("30.00"), commission_rate=Decimal("0.15"))
    entry = corrupt_one_entry()
    before = ledger_state()
    # when the check runs (through the scheduled task)
    result = tasks.ledger_reconcile_check()
    # then the row says mismatch, naming the unbalanced transaction and the cash account
    check = ReconciliationCheck.objects.get(pk=result["check"])
    assert result == {"check": check.pk, "balanced": False, "mismatches": 2, "negative_balances": 0}
    assert not check.balanced
    assert check.unbalanced_transaction_ids == [entry.transaction_id]
    assert {"currency": "EUR", "account": "cash", "expected": "200.00", "ledger": "200.01"} in check.mismatches
    # and one ledger.mismatch audit event points at the check
    event = Event.objects.get(verb="ledger.mismatch")
    assert (event.target, event.actor) == (check, None)
    assert event.data["unbalanced_transactions"] == [entry.transaction_id]
    # and nothing was written to the ledger to paper over it
    assert ledger_state() == before
    assert LedgerEntry.objects.aggregate(total=Sum("amount"))["total"] == Decimal("0.01")


@pytest.mark.django_db
def test_ledger_reconcile_check_admin_index_shows_alert_only_while_latest_failed(client, superuser):
    flows.settled_booking()
    client.force_login(superuser)
    # given a balanced check: no alert
    ledger_reconcile_check()
    assert ALERT not in client.get(reverse("admin:index")).content.decode()
    # when a later check fails: the alert links to it
    entry = corrupt_one_entry()
    failed = ledger_reconcile_check()
    body = client.get(reverse("admin:index")).content.decode()
    assert ALERT in body
    assert reverse("admin:ledger_reconciliationcheck_change", args=[failed.pk]) in body
    # and once the books are mended by people and a check passes again, the alert goes away
    LedgerEntry.objects.filter(pk=entry.pk).update(amount=F("amount") - Decimal("0.01"))
    assert ledger_reconcile_check().balanced
    assert ALERT not in client.get(reverse("admin:index")).content.decode()


@pytest.mark.django_db
def test_ledger_reconcile_check_admin_index_alert_hidden_from_staff_without_permission(client, make_staff):
    flows.settled_booking()
    corrupt_one_entry()
    ledger_reconcile_check()
    agent = make_staff("Operations agent")
    client.force_login(agent)
    response = client.get(reverse("admin:index"))
    assert response.status_code == 200
    assert ALERT not in response.content.decode()


@pytest.mark.django_db
def test_reconciliation_check_admin_is_read_only(client, superuser):
    # given a failed check
    flows.settled_booking(amount=Decimal("200.00"), platform_fee=Decimal("30.00"), commission_rate=Decimal("0.15"))
    corrupt_one_entry()
    check = ledger_reconcile_check()
    client.force_login(superuser)
    # when the superuser opens the changelist and the change page: the state badge shows
    changelist = client.get(reverse("admin:ledger_reconciliationcheck_changelist"))
    assert changelist.status_code == 200
    assert "Mismatch" in changelist.content.decode()
    change_url = reverse("admin:ledger_reconciliationcheck_change", args=[check.pk])
    change = client.get(change_url)
    assert change.status_code == 200
    assert "200.01" in change.content.decode()  # the cash mismatch, expected 200.00
    # then nothing can be added, changed or deleted
    assert client.get(reverse("admin:ledger_reconciliationcheck_add")).status_code == 403
    assert client.post(change_url, {"balanced": "on"}).status_code == 403
    assert client.post(reverse("admin:ledger_reconciliationcheck_delete", args=[check.pk])).status_code == 403
    check.refresh_from_db()
    assert not check.balanced


@pytest.mark.django_db
def test_reconciliation_check_changelist_query_count_is_fixed(client, superuser):
    # given one check, then five: the changelist costs the same number of queries
    client.force_login(superuser)
    url = reverse("admin:ledger_reconciliationcheck_changelist")
    ledger_reconcile_check()
    client.get(url)
    with CaptureQueriesContext(connection) as one:
        assert client.get(url).status_code == 200
    for _ in range(4):
        ledger_reconcile_check()
    with CaptureQueriesContext(connection) as five:
        assert client.get(url).status_code == 200
    assert len(five) == len(one), "\n".join(q["sql"] for q in five.captured_queries)


@pytest.mark.django_db
def test_ledger_reconcile_check_twice_in_a_row_reports_a_mismatch_once():
    # given corrupted books
    flows.settled_booking()
    corrupt_one_entry()
    before = ledger_state()
    # when the task runs twice in a row
    first, second = tasks.ledger_reconcile_check(), tasks.ledger_reconcile_check()
    # then each run leaves its row (the alert stays up), but the same finding is one audit event
    assert (first["balanced"], second["balanced"]) == (False, False)
    assert ReconciliationCheck.objects.count() == 2
    assert Event.objects.filter(verb="ledger.mismatch").count() == 1
    assert ledger_state() == before


@pytest.mark.django_db
def test_ledger_reconcile_check_a_new_finding_is_a_new_event():
    flows.settled_booking()
    corrupt_one_entry()
    tasks.ledger_reconcile_check()
    # a second, different corruption appears
    entry = LedgerEntry.objects.filter(account=A.CASH).order_by("-pk").first()
    LedgerEntry.objects.filter(pk=entry.pk).update(amount=F("amount") + Decimal("1.00"))
    tasks.ledger_reconcile_check()
    assert Event.objects.filter(verb="ledger.mismatch").count() == 2


@pytest.mark.django_db(transaction=True)
def test_ledger_reconcile_check_twice_at_once_from_two_processes_reports_once():
    # given corrupted books, committed
    flows.settled_booking()
    corrupt_one_entry()
    before = ledger_state()
    # when the task runs at the same moment in two processes
    outcomes = run_in_processes(tasks.ledger_reconcile_check, tasks.ledger_reconcile_check)
    # then neither fails; one checked (the other either waited its turn out or saw the same finding),
    # the mismatch is one audit event, and the ledger is untouched
    assert outcomes.all_ok()
    assert any(o.value.get("balanced") is False for o in outcomes)
    assert 1 <= ReconciliationCheck.objects.count() <= 2
    assert Event.objects.filter(verb="ledger.mismatch").count() == 1
    assert ledger_state() == before


@pytest.mark.django_db(transaction=True)
def test_ledger_reconcile_check_while_another_runs_is_skipped():
    # given one process holding the check's lock (a check in progress) ...
    def hold_the_lock():
        with single_flight("ledger.reconcile_check") as held:
            time.sleep(2)
            return held

    # ... when the task starts in another process meanwhile
    def check_meanwhile():
        time.sleep(0.5)
        return tasks.ledger_reconcile_check()

    outcomes = run_in_processes(hold_the_lock, check_meanwhile)
    # then it returns at once, writing nothing
    assert outcomes.all_ok()
    assert outcomes[0].value is True
    assert outcomes[1].value == {"skipped": "another reconciliation check is running"}
    assert ReconciliationCheck.objects.count() == 0
