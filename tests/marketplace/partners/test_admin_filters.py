"""The partners changelist: filters, a deep link, search, and the scope of what it (and so every
partner autocomplete filter) offers."""

from datetime import UTC, datetime

import pytest

from marketplace.accounts.services import StaffGroup
from marketplace.partners.models import Partner
from tests.factories import PartnerFactory
from tests.factories.settlement import staff
from tests.marketplace.changelist import listed, listed_from_bookmark, queries_by_size

pytestmark = pytest.mark.django_db
MODEL = "partners.partner"


@pytest.fixture
def partners():
    made = {
        "match": PartnerFactory(name="Acme Plumbing", contact_email="ops@acme.test", risk_flag=True),
        "suspended": PartnerFactory(status=Partner.Status.SUSPENDED, risk_flag=True),
        "integrator": PartnerFactory(kind=Partner.Kind.INTEGRATOR, risk_flag=True),
        "not_flagged": PartnerFactory(),
        "older": PartnerFactory(risk_flag=True),
    }
    Partner.objects.update(created_at=datetime(2026, 7, 1, 9, 0, tzinfo=UTC))
    Partner.objects.filter(pk=made["older"].pk).update(created_at=datetime(2025, 7, 1, 9, 0, tzinfo=UTC))
    return made


FILTERS = {
    "status__exact": Partner.Status.ACTIVE,
    "kind__exact": Partner.Kind.PROVIDER,
    "risk_flag__exact": "1",
    "created_at_from": "2026-07-01",
    "created_at_to": "2026-07-01",
}


def test_partner_changelist_filters_by_status_kind_risk_and_days(client, partners):
    lead = staff(StaffGroup.OPERATIONS_LEAD)
    client.force_login(lead)

    assert listed(client, MODEL, FILTERS) == {partners["match"].pk}
    assert listed_from_bookmark(lead, MODEL, FILTERS) == {partners["match"].pk}


def test_partner_search_finds_by_name_slug_and_contact_email(client, partners):
    client.force_login(staff(StaffGroup.OPERATIONS_LEAD))
    match = partners["match"]

    assert listed(client, MODEL, {"q": "plumb"}) == {match.pk}
    assert listed(client, MODEL, {"q": match.slug}) == {match.pk}
    assert listed(client, MODEL, {"q": "ops@acme.test"}) == {match.pk}


def test_an_agent_lists_and_searches_only_their_partners(client, partners):
    mine = partners["not_flagged"]
    client.force_login(staff(StaffGroup.OPERATIONS_AGENT, scope=mine))

    assert listed(client, MODEL, {}) == {mine.pk}
    assert listed(client, MODEL, {"q": "Acme"}) == set()


def test_partner_changelist_filtered_costs_the_same_queries_for_10_200_and_400_partners(client):
    client.force_login(staff(StaffGroup.OPERATIONS_LEAD))

    def grow_to(n):
        have = Partner.objects.count()
        Partner.objects.bulk_create(Partner(name=f"P {i}", slug=f"p-{i}") for i in range(have, n))

    counts = queries_by_size(client, MODEL, {"status__exact": "active", "created_at_from": "2000-01-01"}, grow_to)

    # Django's own paginator here (an exact count: partners are few), flat at every size
    assert counts[10] == PARTNER_FILTERED_QUERIES


# With the verified second-factor device that django-otp reads once per request.
PARTNER_FILTERED_QUERIES = 14
