"""The ledger entries and reconciliation checks changelists: filters, deep links, exact search, the
partner autocomplete, and a filtered page's query count at 10, 200 and 400 entries."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from marketplace.accounts.services import StaffGroup
from marketplace.ledger.models import LedgerEntry, LedgerTransaction, ReconciliationCheck
from tests.factories import PartnerFactory
from tests.factories.flows import settled_booking
from tests.factories.settlement import staff
from tests.marketplace.changelist import (
    autocomplete,
    changelist_url,
    listed,
    listed_from_bookmark,
    offered,
    queries_by_size,
)

pytestmark = pytest.mark.django_db
A, K = LedgerEntry.Account, LedgerTransaction.Kind
MODEL = "ledger.ledgerentry"


@pytest.fixture
def entries():
    """Two settled bookings of two partners (a capture each, with its provider share) and the
    payable entry of the first moved to an earlier day."""
    first = settled_booking(amount=Decimal("100.00"))
    second = settled_booking(amount=Decimal("300.00"))
    payable = LedgerEntry.objects.filter(account=A.PROVIDER_PAYABLE)
    match = payable.get(partner=first.partner, transaction__kind=K.CAPTURE)
    LedgerEntry.objects.filter(pk=match.pk).update(created_at=datetime(2026, 9, 9, 23, 59, tzinfo=UTC))
    return {"first": first, "second": second, "match": match}


def _filters(entries) -> dict:
    match = entries["match"]
    low, high = sorted([match.amount - Decimal("1"), match.amount + Decimal("1")])
    return {
        "account__exact": A.PROVIDER_PAYABLE,
        "transaction__kind__exact": K.CAPTURE,
        "partner__id__exact": match.partner_id,
        "amount_from": str(low),
        "amount_to": str(high),
        "created_at_from": "2026-09-09",
        "created_at_to": "2026-09-09",
    }


def test_ledger_changelist_filters_by_account_kind_partner_amount_and_days(client, entries):
    finance = staff(StaffGroup.FINANCE)
    client.force_login(finance)

    assert listed(client, MODEL, _filters(entries)) == {entries["match"].pk}
    assert listed_from_bookmark(finance, MODEL, _filters(entries)) == {entries["match"].pk}
    second_partner = {e.pk for e in LedgerEntry.objects.filter(partner=entries["second"].partner)}
    assert listed(client, MODEL, {"partner__id__exact": entries["second"].partner_id}) == second_partner


def test_ledger_search_is_exact_on_ids_and_transaction_references(client, entries):
    client.force_login(staff(StaffGroup.FINANCE))
    match = entries["match"]
    of_transaction = {e.pk for e in LedgerEntry.objects.filter(transaction=match.transaction)}

    assert match.pk in listed(client, MODEL, {"q": str(match.pk)})
    assert listed(client, MODEL, {"q": match.transaction.idempotency_key}) == of_transaction
    assert listed(client, MODEL, {"q": match.transaction.idempotency_key[:-1]}) == set()
    assert listed(client, MODEL, {"q": "someone@example.test"}) == set()


def test_ledger_partner_autocomplete_is_for_unscoped_staff(client, entries):
    client.force_login(staff(StaffGroup.FINANCE))
    assert offered(client, MODEL, "partner") >= {entries["first"].partner_id, entries["second"].partner_id}

    # an agent may not read the ledger; the partner autocomplete still answers within their scope
    client.force_login(staff(StaffGroup.OPERATIONS_AGENT, scope=entries["first"].partner))
    assert client.get(changelist_url(MODEL)).status_code == 403
    assert offered(client, MODEL, "partner") == {entries["first"].partner_id}
    assert autocomplete(client, MODEL, "transaction").status_code == 403  # not a filter: no admin searches it


def test_ledger_changelist_filtered_costs_the_same_queries_for_10_200_and_400_entries(client):
    partner = PartnerFactory()
    txn = LedgerTransaction.objects.create(kind=K.CAPTURE, source="test", idempotency_key="bulk")
    client.force_login(staff(StaffGroup.FINANCE))
    params = {
        "account__exact": A.PROVIDER_PAYABLE,
        "transaction__kind__exact": K.CAPTURE,
        "partner__id__exact": partner.pk,
        "amount_to": "-1",
        "created_at_from": "2000-01-01",
    }

    def grow_to(n):
        have = LedgerEntry.objects.count()
        LedgerEntry.objects.bulk_create(
            LedgerEntry(transaction=txn, account=A.PROVIDER_PAYABLE, partner=partner, amount=Decimal("-10.00"))
            for _ in range(have, n)
        )

    counts = queries_by_size(client, MODEL, params, grow_to)

    # session, user, permissions, count and estimate, the rows, the sidebar's badges, and the
    # chosen partner shown in its filter (2)
    assert counts[10] == LEDGER_FILTERED_QUERIES


# With the verified second-factor device that django-otp reads once per request.
LEDGER_FILTERED_QUERIES = 16


def test_reconciliation_check_changelist_filters_by_state_and_day(client):
    now = timezone.now()
    ok = ReconciliationCheck.objects.create(ran_at=now, balanced=True, duration=timedelta(seconds=1))
    bad = ReconciliationCheck.objects.create(
        ran_at=datetime(2026, 10, 1, 2, 0, tzinfo=UTC), balanced=False, duration=timedelta(seconds=1)
    )
    client.force_login(staff(StaffGroup.FINANCE))

    assert listed(client, "ledger.reconciliationcheck", {"balanced__exact": "1"}) == {ok.pk}
    day = {"balanced__exact": "0", "ran_at_from": "2026-10-01", "ran_at_to": "2026-10-01"}
    assert listed(client, "ledger.reconciliationcheck", day) == {bad.pk}
    assert listed(client, "ledger.reconciliationcheck", {"q": str(bad.pk)}) == {bad.pk}
