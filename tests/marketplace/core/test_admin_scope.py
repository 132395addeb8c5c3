"""The operations admin reads through the scope selectors: an agent never sees another partner's rows."""

import pytest
from django.urls import reverse

from marketplace.partners.services import partner_scope_grant
from tests.factories import ListingFactory, PartnerFactory
from tests.factories.flows import booking_in

pytestmark = pytest.mark.django_db


@pytest.fixture
def two_partners(make_staff):
    own, other = PartnerFactory(), PartnerFactory()
    agent = make_staff("Operations agent")
    partner_scope_grant(partner=own, grantee=agent)
    return agent, own, other


def test_listing_changelist_agent_sees_only_granted_partner(client, two_partners):
    # given an agent granted one partner, and a listing at each partner
    agent, own, other = two_partners
    mine, theirs = ListingFactory(partner=own, title="Mine-1"), ListingFactory(partner=other, title="Theirs-1")
    client.force_login(agent)
    # when the agent opens the listings changelist
    response = client.get(reverse("admin:catalog_listing_changelist"))
    # then only the granted partner's listing is there
    assert response.status_code == 200
    body = response.content.decode()
    assert mine.title in body
    assert theirs.title not in body


def test_listing_change_page_of_other_partner_is_not_shown(client, two_partners):
    agent, own, other = two_partners
    theirs = ListingFactory(partner=other, title="Theirs-2")
    client.force_login(agent)
    response = client.get(reverse("admin:catalog_listing_change", args=[theirs.pk]))
    assert response.status_code == 404
    assert theirs.title not in response.content.decode()


def test_booking_changelist_agent_sees_only_granted_partner(client, two_partners):
    agent, own, other = two_partners
    mine = booking_in("requested", listing__partner=own)
    theirs = booking_in("requested", listing__partner=other)
    client.force_login(agent)
    response = client.get(reverse("admin:bookings_booking_changelist"))
    assert response.status_code == 200
    ids = set(response.context["cl"].result_list.values_list("pk", flat=True))
    assert ids == {mine.pk}
    assert theirs.pk not in ids


def test_audit_log_hidden_from_scoped_agent(client, two_partners):
    agent, _, _ = two_partners
    client.force_login(agent)
    response = client.get(reverse("admin:audit_event_changelist"))
    assert response.status_code == 403
