"""'My work': the disputes assigned to me, the payouts waiting for my approval and the listings
waiting for review, oldest first, with their age and SLA, and a query count that does not grow."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from marketplace.accounts.services import StaffGroup
from marketplace.catalog.models import Listing
from marketplace.disputes.models import Dispute
from marketplace.disputes.services import dispute_assign
from marketplace.payouts.models import Payout
from tests.factories import PartnerFactory
from tests.factories.settlement import dispute_in, payout_in, staff
from tests.factories.states import listing_in

pytestmark = pytest.mark.django_db


def _section(html: str, title: str) -> str:
    start = html.index(f'data-queue="{title}"')
    end = html.find("data-queue=", start + 20)
    return html[start : end if end > 0 else len(html)]


def test_agent_sees_their_disputes_and_their_partners_listings_oldest_first(client):
    partner, other = PartnerFactory(), PartnerFactory()
    agent = staff(StaffGroup.OPERATIONS_AGENT, scope=partner)
    lead = staff(StaffGroup.OPERATIONS_LEAD)
    late = dispute_in(Dispute.Status.OPENED, listing__partner=partner)
    Dispute.objects.filter(pk=late.pk).update(sla_due_at=timezone.now() - timedelta(hours=3))
    dispute_assign(dispute=late, actor=lead, assignee=agent)
    not_mine = dispute_in(Dispute.Status.OPENED, listing__partner=partner)
    older = listing_in(Listing.Status.PENDING_REVIEW, partner=partner, title="Older listing")
    Listing.objects.filter(pk=older.pk).update(submitted_at=timezone.now() - timedelta(days=2))
    newer = listing_in(Listing.Status.PENDING_REVIEW, partner=partner, title="Newer listing")
    foreign = listing_in(Listing.Status.PENDING_REVIEW, partner=other, title="Foreign listing")
    client.force_login(agent)

    html = client.get(reverse("my-work")).content.decode()

    disputes = _section(html, "Disputes assigned to me")
    assert str(late) in disputes and str(not_mine) not in disputes
    assert "overdue" in disputes
    listings = _section(html, "Listings waiting for review")
    assert listings.index(older.title) < listings.index(newer.title)
    assert foreign.title not in listings
    assert "Payouts waiting for my approval" not in html  # agents do not approve payouts


def test_finance_sees_payouts_requested_by_others_only(client):
    finance = staff(StaffGroup.FINANCE)
    someone_elses = payout_in(Payout.Status.AWAITING_APPROVAL)
    client.force_login(finance)
    html = client.get(reverse("my-work")).content.decode()
    assert str(someone_elses) in _section(html, "Payouts waiting for my approval")


def test_my_work_query_count_does_not_grow_with_the_queues(client):
    partner = PartnerFactory()
    agent = staff(StaffGroup.OPERATIONS_AGENT, scope=partner)
    client.force_login(agent)
    listing_in(Listing.Status.PENDING_REVIEW, partner=partner)
    client.get(reverse("my-work"))  # warm caches (content types, permissions)
    with CaptureQueriesContext(connection) as few:
        client.get(reverse("my-work"))
    for _ in range(6):
        listing_in(Listing.Status.PENDING_REVIEW, partner=partner)
    with CaptureQueriesContext(connection) as many:
        client.get(reverse("my-work"))
    assert len(many.captured_queries) == len(few.captured_queries)
