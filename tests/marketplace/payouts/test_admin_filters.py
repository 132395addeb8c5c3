"""The payouts and payout runs changelists: every filter together, deep links, search, and a
filtered page's query count at 10, 200 and 400 payouts. (Single filters, the approval filter and
the partner autocomplete's scope are in test_admin.py.)"""

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.utils import timezone

from marketplace.accounts.services import StaffGroup
from marketplace.payouts.models import Payout, PayoutRun
from tests.factories import PartnerFactory
from tests.factories.settlement import payout_in, staff
from tests.marketplace.changelist import listed, listed_from_bookmark, queries_by_size

pytestmark = pytest.mark.django_db
S = Payout.Status
MODEL = "payouts.payout"


def _payout(status, *, created=datetime(2026, 6, 30, 22, 0, tzinfo=UTC), amount="100.00", **kwargs) -> Payout:
    payout = payout_in(status, amount=Decimal(amount), commission_rate=Decimal("0.15"), **kwargs)
    Payout.objects.filter(pk=payout.pk).update(created_at=created, gateway_reference=f"po_ref_{payout.pk}")
    payout.refresh_from_db()
    return payout


@pytest.fixture
def payouts():
    match = _payout(S.READY)  # 85.00 to the partner
    listing = {"listing__partner": match.partner}
    return {
        "match": match,
        "other_status": _payout(S.ON_HOLD, **listing),
        "other_partner": _payout(S.READY),
        "too_dear": _payout(S.READY, amount="2000.00", **listing),
        "too_early": _payout(S.READY, created=datetime(2026, 5, 31, 23, 59, tzinfo=UTC), **listing),
    }


def _filters(payouts) -> dict:
    return {
        "status__exact": S.READY,
        "partner__id__exact": payouts["match"].partner_id,
        "amount_from": "50",
        "amount_to": "100",
        "created_at_from": "2026-06-01",
        "created_at_to": "2026-06-30",
    }


def test_payout_changelist_filters_by_status_partner_amount_and_days_together(client, payouts):
    client.force_login(staff(StaffGroup.FINANCE))

    assert listed(client, MODEL, _filters(payouts)) == {payouts["match"].pk}
    assert listed(client, MODEL, {"created_at_to": "2026-05-31"}) == {payouts["too_early"].pk}


def test_payout_changelist_filtered_address_is_a_bookmark(payouts):
    finance = staff(StaffGroup.FINANCE)
    assert listed_from_bookmark(finance, MODEL, _filters(payouts)) == {payouts["match"].pk}
    assert listed_from_bookmark(finance, MODEL, {"approval": "mine", "status__exact": S.READY}) == set()


def test_payout_search_finds_by_id_gateway_reference_and_partner_name_start(client, payouts):
    client.force_login(staff(StaffGroup.FINANCE))
    match = payouts["match"]

    assert listed(client, MODEL, {"q": f"#{match.pk}"}) == {match.pk}
    assert listed(client, MODEL, {"q": match.gateway_reference}) == {match.pk}
    same_partner = {p.pk for p in payouts.values() if p.partner_id == match.partner_id}
    assert listed(client, MODEL, {"q": match.partner.name}) == same_partner


def test_payout_changelist_filtered_costs_the_same_queries_for_10_200_and_400_payouts(client):
    partner, run = PartnerFactory(), PayoutRun.objects.create(cutoff=timezone.now())
    lead = staff(StaffGroup.OPERATIONS_LEAD)
    client.force_login(staff(StaffGroup.FINANCE))
    params = {
        "status__exact": S.AWAITING_APPROVAL,
        "partner__id__exact": partner.pk,
        "amount_from": "1",
        "created_at_from": "2000-01-01",
    }

    def grow_to(n):
        have = Payout.objects.count()
        Payout.objects.bulk_create(
            Payout(
                partner=partner,
                amount=Decimal("120.00"),
                currency="EUR",
                hold_until=timezone.now(),
                status=S.AWAITING_APPROVAL,
                requested_by=lead,
                run=run,
            )
            for _ in range(have, n)
        )

    counts = queries_by_size(client, MODEL, params, grow_to)

    # the unfiltered page's 14 (test_admin.CHANGELIST_QUERIES), and the chosen partner (2)
    assert counts[10] == PAYOUT_FILTERED_QUERIES


PAYOUT_FILTERED_QUERIES = 16


def test_payout_run_changelist_filters_by_status_and_day(client):
    finished = PayoutRun.objects.create(cutoff=timezone.now(), status=PayoutRun.Status.FINISHED)
    failed = PayoutRun.objects.create(cutoff=timezone.now(), status=PayoutRun.Status.FAILED)
    PayoutRun.objects.filter(pk=failed.pk).update(started_at=datetime(2026, 1, 2, 3, 0, tzinfo=UTC))
    client.force_login(staff(StaffGroup.FINANCE))

    assert listed(client, "payouts.payoutrun", {"status__exact": "finished"}) == {finished.pk}
    day = {"started_at_from": "2026-01-02", "started_at_to": "2026-01-02"}
    assert listed(client, "payouts.payoutrun", day) == {failed.pk}
    assert listed(client, "payouts.payoutrun", {"q": str(failed.pk)}) == {failed.pk}
    assert listed(client, "payouts.payoutrun", {"q": "not a number"}) == set()
