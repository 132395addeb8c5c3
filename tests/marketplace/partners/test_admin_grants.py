"""Leads and Finance grant and revoke partner scope in the admin (guardian's object permissions),
through the scope services: every grant and revoke is in the audit log and takes effect at once."""

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse

from marketplace.accounts.services import StaffGroup
from marketplace.audit.models import Event
from marketplace.bookings.selectors import booking_for_user
from tests.factories import PartnerFactory
from tests.factories.flows import booking_in
from tests.factories.settlement import staff

pytestmark = pytest.mark.django_db


def _manage_user(partner, user):
    return reverse("admin:partners_partner_permissions_manage_user", args=[partner.pk, user.pk])


@pytest.mark.parametrize("granter_group", [StaffGroup.OPERATIONS_LEAD, StaffGroup.FINANCE])
def test_lead_or_finance_grants_then_revokes_an_agents_scope(client, granter_group):
    partner = PartnerFactory()
    booking = booking_in("requested", listing__partner=partner)
    agent = staff(StaffGroup.OPERATIONS_AGENT)
    granter = staff(granter_group)
    client.force_login(granter)
    assert client.get(reverse("admin:partners_partner_permissions", args=[partner.pk])).status_code == 200
    page = client.get(_manage_user(partner, agent))
    assert page.status_code == 200
    assert "operate_partner" in page.content.decode()
    assert "delete_partner" not in page.content.decode()  # only the scope permission is offered

    response = client.post(_manage_user(partner, agent), {"permissions": ["operate_partner"]})

    assert response.status_code == 302
    assert booking_for_user(type(agent).objects.get(pk=agent.pk)).filter(pk=booking.pk).exists()
    grant = Event.objects.get(verb="scope.granted", target_id=str(partner.pk))
    assert grant.actor_id == granter.pk and grant.data["grantee"] == str(agent)

    # nothing selected (a browser still posts its CSRF token and the button): revoke
    client.post(_manage_user(partner, agent), {"submit_manage_user": "Save"})

    assert not booking_for_user(type(agent).objects.get(pk=agent.pk)).filter(pk=booking.pk).exists()
    revoke = Event.objects.get(verb="scope.revoked", target_id=str(partner.pk))
    assert revoke.actor_id == granter.pk


def test_a_group_grant_is_audited_too(client):
    partner = PartnerFactory()
    group = Group.objects.create(name="North desk")
    lead = staff(StaffGroup.OPERATIONS_LEAD)
    client.force_login(lead)
    url = reverse("admin:partners_partner_permissions_manage_group", args=[partner.pk, group.pk])
    assert client.post(url, {"permissions": ["operate_partner"]}).status_code == 302
    event = Event.objects.get(verb="scope.granted", target_id=str(partner.pk))
    assert event.data["grantee_type"] == "group" and event.actor_id == lead.pk


def test_an_agent_may_not_grant_scope(client):
    partner = PartnerFactory()
    agent = staff(StaffGroup.OPERATIONS_AGENT, scope=partner)
    other_agent = staff(StaffGroup.OPERATIONS_AGENT)
    client.force_login(agent)
    assert client.get(reverse("admin:partners_partner_permissions", args=[partner.pk])).status_code == 403
    response = client.post(_manage_user(partner, other_agent), {"permissions": ["operate_partner"]})
    assert response.status_code == 403
    assert not Event.objects.filter(verb="scope.granted", data__grantee=str(other_agent)).exists()
