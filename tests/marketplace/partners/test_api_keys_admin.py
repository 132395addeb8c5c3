"""Partner API keys in the admin (marketplace/partners/api_key_admin.py), through HTTP: a partner
manager creates a key and is shown the full key once, lists only their partners' keys, gets 404 on
another partner's key, and revokes a key with a reason."""

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from marketplace.accounts.services import StaffGroup
from marketplace.audit.models import Event
from marketplace.partners.api_keys import api_key_authenticate, api_key_create
from marketplace.partners.models import PartnerAPIKey
from tests.factories import PartnerFactory
from tests.factories.settlement import staff

pytestmark = pytest.mark.django_db

PMGR, AGENT = StaffGroup.PARTNER_MANAGER, StaffGroup.OPERATIONS_AGENT
ADD = reverse("admin:partners_partnerapikey_add")
CHANGELIST = reverse("admin:partners_partnerapikey_changelist")


def _change(key):
    return reverse("admin:partners_partnerapikey_change", args=[key.pk])


def _revoke(key):
    return reverse("admin:partners_partnerapikey_revoke", args=[key.pk])


@pytest.fixture
def partner():
    return PartnerFactory(name="Acme")


@pytest.fixture
def manager(partner):
    return staff(PMGR, scope=partner)


def test_api_key_add_form_creates_a_key_and_shows_the_full_key_once(client, manager, partner):
    client.force_login(manager)
    # given the add form, which offers only the manager's partners
    other = PartnerFactory(name="Zenith Corp")
    form = client.get(ADD)
    assert form.status_code == 200
    assert list(form.context["form"].fields["partner"].queryset) == [partner]
    assert "Zenith Corp" not in form.content.decode()

    # when it is posted
    response = client.post(
        ADD,
        {
            "name": "ERP sync",
            "partner": partner.pk,
            "scopes": ["bookings:read", "payouts:read"],
            "expires_at_0": "2030-01-31",
            "expires_at_1": "12:00:00",
        },
    )

    # then the key exists, and the answer shows its full key, which authenticates
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    key = PartnerAPIKey.objects.get()
    assert (key.partner, key.name, key.scopes, key.created_by) == (
        partner,
        "ERP sync",
        ["bookings:read", "payouts:read"],
        manager,
    )
    assert key.expires_at.year == 2030
    secret = response.context["secret"]
    assert secret in response.content.decode()
    assert api_key_authenticate(secret) == key
    # and no later page shows it again
    for url in (ADD, CHANGELIST, _change(key)):
        page = client.get(url)
        assert page.status_code == 200
        assert secret.split(".", 1)[1] not in page.content.decode()
    assert not PartnerAPIKey.objects.filter(partner=other).exists()


def test_api_key_add_form_refuses_another_partner_and_an_unknown_scope(client, manager):
    client.force_login(manager)
    other = PartnerFactory()
    response = client.post(ADD, {"name": "k", "partner": other.pk, "scopes": ["bookings:read"]})
    assert response.status_code == 200
    assert "partner" in response.context["form"].errors
    response = client.post(ADD, {"name": "k", "partner": other.pk, "scopes": ["bookings:write"]})
    assert "scopes" in response.context["form"].errors
    assert not PartnerAPIKey.objects.exists()


def test_api_key_add_form_shows_the_services_refusal(client, manager, partner):
    client.force_login(manager)
    response = client.post(
        ADD,
        {
            "name": "k",
            "partner": partner.pk,
            "scopes": ["bookings:read"],
            "expires_at_0": "2001-01-01",
            "expires_at_1": "00:00:00",
        },
    )
    assert response.status_code == 200
    assert "must be in the future" in response.content.decode()
    assert "secret" not in response.context
    assert not PartnerAPIKey.objects.exists()


def test_api_key_add_form_is_forbidden_without_the_permission(client, partner):
    client.force_login(staff(AGENT, scope=partner))
    assert client.get(ADD).status_code == 403
    assert client.post(ADD, {"name": "k", "partner": partner.pk, "scopes": ["bookings:read"]}).status_code == 403
    assert not PartnerAPIKey.objects.exists()


def test_api_key_changelist_lists_only_the_managers_partners_keys(client, manager, partner):
    mine, _ = api_key_create(actor=manager, partner=partner, name="Mine", scopes=["bookings:read"])
    other = PartnerFactory()
    theirs, _ = api_key_create(actor=staff(PMGR, scope=other), partner=other, name="Theirs", scopes=["events:read"])
    client.force_login(manager)

    response = client.get(CHANGELIST)

    assert response.status_code == 200
    assert list(response.context["cl"].result_list) == [mine]
    body = response.content.decode()
    assert mine.prefix in body and "bookings:read" in body
    assert theirs.prefix not in body
    assert mine.hashed_key not in body
    assert client.get(_change(mine)).status_code == 200
    assert client.get(_change(theirs)).status_code == 404
    assert client.get(_revoke(theirs)).status_code == 404


def test_api_key_revoke_step_revokes_with_a_reason(client, manager, partner):
    key, secret = api_key_create(actor=manager, partner=partner, name="k", scopes=["bookings:read"])
    client.force_login(manager)
    assert client.get(_revoke(key)).status_code == 200

    # a POST without a reason changes nothing
    assert client.post(_revoke(key), {"reason": " "}).status_code == 200
    assert PartnerAPIKey.objects.get(pk=key.pk).revoked_at is None

    response = client.post(_revoke(key), {"reason": "Leaked in a log"})

    assert response.status_code == 302
    key.refresh_from_db()
    assert (key.revoked_by, key.revoke_reason) == (manager, "Leaked in a log")
    assert api_key_authenticate(secret) is None
    assert Event.objects.filter(verb="partner.api_key_revoked", target_id=str(key.pk)).count() == 1
    # a second POST (a double click) is told and writes nothing
    client.post(_revoke(key), {"reason": "again"})
    assert Event.objects.filter(verb="partner.api_key_revoked", target_id=str(key.pk)).count() == 1
    page = client.get(_change(key)).content.decode()
    assert "revoked" in page


def test_api_key_revoke_step_is_forbidden_without_the_permission(client, manager, partner):
    key, _ = api_key_create(actor=manager, partner=partner, name="k", scopes=["bookings:read"])
    viewer = staff(AGENT, scope=partner)
    viewer.user_permissions.add(Permission.objects.get(codename="view_partnerapikey"))
    viewer = type(viewer).objects.get(pk=viewer.pk)  # no stale permission cache
    client.force_login(viewer)
    assert client.post(_revoke(key), {"reason": "x"}).status_code == 403
    assert PartnerAPIKey.objects.get(pk=key.pk).revoked_at is None
