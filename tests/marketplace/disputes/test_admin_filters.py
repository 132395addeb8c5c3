"""The disputes changelist: filters, deep links, search, the autocomplete filters' scope (partner;
assignee offers staff only), and a query count that does not grow with rows."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.utils import timezone

from marketplace.accounts.services import StaffGroup
from marketplace.disputes.models import Dispute
from tests.factories import ClientFactory, ListingFactory, PartnerFactory
from tests.factories.flows import settled_booking
from tests.factories.settlement import dispute_in, staff
from tests.marketplace.changelist import listed, listed_from_bookmark, offered, queries_by_size

pytestmark = pytest.mark.django_db
S = Dispute.Status
MODEL = "disputes.dispute"
APRIL = datetime(2026, 4, 15, 12, 0, tzinfo=UTC)


def _dispute(status, *, created=APRIL, **booking_kwargs) -> Dispute:
    dispute = dispute_in(status, **booking_kwargs)
    Dispute.objects.filter(pk=dispute.pk).update(created_at=created)
    return dispute


@pytest.fixture
def disputes():
    listing = ListingFactory(status="published", partner=PartnerFactory(), title="Roof repair")
    return {
        "match": _dispute(S.OPENED, listing=listing, amount=Decimal("80.00")),
        "other_status": _dispute(S.UNDER_REVIEW, listing=listing, amount=Decimal("80.00")),
        "other_partner": _dispute(S.OPENED, amount=Decimal("80.00")),
        "too_dear": _dispute(S.OPENED, listing=listing, amount=Decimal("500.00")),
        "too_late": _dispute(
            S.OPENED, created=datetime(2026, 5, 1, 0, 0, tzinfo=UTC), listing=listing, amount=Decimal("80.00")
        ),
    }


def _filters(disputes) -> dict:
    return {
        "status__exact": S.OPENED,
        "reason_code__exact": Dispute.Reason.NOT_AS_DESCRIBED,
        "partner__id__exact": disputes["match"].partner_id,
        "booking__amount_from": "50",
        "booking__amount_to": "100",
        "created_at_from": "2026-04-01",
        "created_at_to": "2026-04-30",
    }


def test_dispute_changelist_filters_by_status_reason_partner_amount_and_days(client, disputes):
    lead = staff(StaffGroup.OPERATIONS_LEAD)
    client.force_login(lead)

    assert listed(client, MODEL, _filters(disputes)) == {disputes["match"].pk}
    assert listed(client, MODEL, {"booking__amount_from": "100"}) == {disputes["too_dear"].pk}
    assert listed(client, MODEL, {"created_at_from": "2026-05-01"}) == {disputes["too_late"].pk}


def test_dispute_changelist_filters_by_assignee_and_assignment(client, disputes):
    lead, agent = staff(StaffGroup.OPERATIONS_LEAD), staff(StaffGroup.OPERATIONS_AGENT)
    Dispute.objects.filter(pk=disputes["match"].pk).update(assignee=agent)
    Dispute.objects.filter(pk=disputes["too_dear"].pk).update(assignee=lead)
    client.force_login(lead)

    assert listed(client, MODEL, {"assignee__id__exact": agent.pk}) == {disputes["match"].pk}
    assert listed(client, MODEL, {"assignment": "mine"}) == {disputes["too_dear"].pk}
    unassigned = {d.pk for d in disputes.values()} - {disputes["match"].pk, disputes["too_dear"].pk}
    assert listed(client, MODEL, {"assignment": "none"}) == unassigned


def test_dispute_changelist_filtered_address_is_a_bookmark(disputes):
    lead = staff(StaffGroup.OPERATIONS_LEAD)
    assert listed_from_bookmark(lead, MODEL, _filters(disputes)) == {disputes["match"].pk}


def test_dispute_search_finds_by_dispute_or_booking_id_opener_email_and_listing_title(client, disputes):
    client.force_login(staff(StaffGroup.OPERATIONS_LEAD))
    match = disputes["match"]

    assert listed(client, MODEL, {"q": str(match.pk)}) == {match.pk}
    assert listed(client, MODEL, {"q": str(match.booking_id)}) == {match.pk}
    assert listed(client, MODEL, {"q": match.opened_by.email}) == {match.pk}
    same_listing = {d.pk for d in disputes.values() if d.booking.listing_id == match.booking.listing_id}
    assert listed(client, MODEL, {"q": "roof"}) == same_listing


def test_dispute_autocomplete_filters_offer_in_scope_partners_and_staff_assignees(client, disputes):
    mine, theirs = disputes["match"].partner, disputes["other_partner"].partner
    agent = staff(StaffGroup.OPERATIONS_AGENT, scope=mine)
    client.force_login(agent)

    assert offered(client, MODEL, "partner") == {mine.pk}
    assert offered(client, MODEL, "partner", term=theirs.name) == set()
    assert listed(client, MODEL, {"partner__id__exact": theirs.pk}) == set()
    # the assignee filter offers staff only: the agent, not the clients who opened the disputes
    assignees = offered(client, MODEL, "assignee")
    assert agent.pk in assignees
    assert disputes["match"].opened_by_id not in assignees


def test_dispute_changelist_filtered_costs_the_same_queries_for_10_200_and_400_disputes(client):
    # given closed disputes of one booking (an open one is unique per booking), assigned to one agent
    booking, agent = settled_booking(window_open=True), staff(StaffGroup.OPERATIONS_AGENT)
    opener = ClientFactory()
    client.force_login(staff(StaffGroup.OPERATIONS_LEAD))
    params = {
        "status__exact": S.WITHDRAWN,
        "partner__id__exact": booking.partner_id,
        "assignee__id__exact": agent.pk,
        "booking__amount_from": "1",
        "created_at_from": "2000-01-01",
    }

    def grow_to(n):
        have = Dispute.objects.count()
        Dispute.objects.bulk_create(
            Dispute(
                booking=booking,
                partner=booking.partner,
                opened_by=opener,
                reason_code=Dispute.Reason.QUALITY,
                description="Half done.",
                status=S.WITHDRAWN,
                resolved_at=timezone.now(),
                assignee=agent,
            )
            for _ in range(have, n)
        )

    counts = queries_by_size(client, MODEL, params, grow_to)

    # session, user, permissions, count and estimate, the rows, the sidebar's badges, and
    # the chosen partner and assignee shown in their filters (2 each)
    assert counts[10] == DISPUTE_FILTERED_QUERIES


# With the verified second-factor device that django-otp reads once per request.
DISPUTE_FILTERED_QUERIES = 18
