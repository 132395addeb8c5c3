"""Partner API keys (marketplace/partners/api_keys.py): only a hash is stored and the secret is
returned once; creating and revoking need `partners.manage_api_keys` and the partner in scope and
are audited; a key authenticates while it is not revoked, not expired and its partner is active."""

from datetime import timedelta

import pytest
from django.core import serializers
from django.utils import timezone

from marketplace.accounts.services import StaffGroup
from marketplace.audit.models import Event
from marketplace.core.exceptions import InvalidInput, NotPermitted, TransitionNotAllowed
from marketplace.partners.api_keys import (
    api_key_authenticate,
    api_key_create,
    api_key_for_user,
    api_key_has_scope,
    api_key_revoke,
)
from marketplace.partners.models import Partner, PartnerAPIKey
from tests.factories import PartnerFactory, StaffFactory
from tests.factories.settlement import staff

pytestmark = pytest.mark.django_db

PMGR, AGENT = StaffGroup.PARTNER_MANAGER, StaffGroup.OPERATIONS_AGENT


@pytest.fixture
def partner():
    return PartnerFactory(name="Acme")


@pytest.fixture
def manager(partner):
    return staff(PMGR, scope=partner)


def _events(verb):
    return Event.objects.filter(verb=verb)


def test_api_key_create_returns_a_secret_that_authenticates_and_is_stored_nowhere(manager, partner):
    # when a partner manager creates a key for their partner
    key, secret = api_key_create(actor=manager, partner=partner, name="ERP sync", scopes=["bookings:read"])

    # then the secret authenticates as that key, and the row holds its prefix and a hash only
    assert api_key_authenticate(secret) == key
    key.refresh_from_db()
    assert secret.startswith(f"{key.prefix}.")
    assert key.hashed_key != secret and len(key.hashed_key) == 64
    assert (key.name, key.scopes, key.created_by, key.expires_at) == ("ERP sync", ["bookings:read"], manager, None)
    # and the secret's random part appears in no key row and no audit event
    hidden = secret.split(".", 1)[1]
    dumped = serializers.serialize("json", [*PartnerAPIKey.objects.all(), *Event.objects.all()])
    assert hidden not in dumped
    event = _events("partner.api_key_created").get()
    assert (event.actor, event.target_id) == (manager, str(key.pk))
    assert event.data == {
        "partner": partner.pk,
        "name": "ERP sync",
        "prefix": key.prefix,
        "scopes": ["bookings:read"],
        "expires_at": None,
    }


def test_api_key_create_keeps_scopes_in_allow_list_order_without_duplicates(manager, partner):
    key, _ = api_key_create(
        actor=manager, partner=partner, name="k", scopes=["payouts:read", "listings:read", "payouts:read"]
    )
    assert PartnerAPIKey.objects.get(pk=key.pk).scopes == ["listings:read", "payouts:read"]
    assert api_key_has_scope(key, "payouts:read")
    assert not api_key_has_scope(key, "bookings:read")
    assert not api_key_has_scope(key, "admin:everything")


@pytest.mark.parametrize(
    ("scopes", "expires_in", "message"),
    [
        (["bookings:read", "bookings:write"], timedelta(days=1), "Unknown API key scope: bookings:write"),
        ([], timedelta(days=1), "at least one scope"),
        (["bookings:read"], -timedelta(minutes=1), "must be in the future"),
    ],
    ids=["unknown-scope", "no-scope", "past-expiry"],
)
def test_api_key_create_refuses_bad_input_and_writes_nothing(manager, partner, scopes, expires_in, message):
    with pytest.raises(InvalidInput, match=message):
        api_key_create(actor=manager, partner=partner, name="k", scopes=scopes, expires_at=timezone.now() + expires_in)
    assert not PartnerAPIKey.objects.exists()
    assert not _events("partner.api_key_created").exists()


def test_api_key_create_refuses_a_partner_outside_the_managers_scope(manager):
    other = PartnerFactory(name="Zenith Corp")
    with pytest.raises(NotPermitted) as exc:
        api_key_create(actor=manager, partner=other, name="k", scopes=["bookings:read"])
    assert "Zenith" not in exc.value.message and str(other.pk) not in exc.value.message
    assert not PartnerAPIKey.objects.exists()


def test_api_key_create_refuses_an_agent_without_the_permission_even_in_scope(partner):
    agent = staff(AGENT, scope=partner)
    with pytest.raises(NotPermitted, match="may not create partner API keys"):
        api_key_create(actor=agent, partner=partner, name="k", scopes=["bookings:read"])
    assert not PartnerAPIKey.objects.exists()


def test_api_key_create_by_a_superuser_on_any_partner(partner):
    root = StaffFactory(is_superuser=True)
    key, secret = api_key_create(actor=root, partner=partner, name="k", scopes=["events:read"])
    assert api_key_authenticate(secret) == key


def test_api_key_revoke_stops_authentication_is_audited_and_refuses_a_second_time(manager, partner):
    key, secret = api_key_create(actor=manager, partner=partner, name="k", scopes=["bookings:read"])

    api_key_revoke(actor=manager, key=key, reason="Leaked in a log")

    assert api_key_authenticate(secret) is None
    key.refresh_from_db()
    assert (key.revoked_by, key.revoke_reason) == (manager, "Leaked in a log")
    assert key.revoked_at is not None
    event = _events("partner.api_key_revoked").get()
    assert (event.actor, event.from_state, event.to_state, event.reason) == (
        manager,
        "active",
        "revoked",
        "Leaked in a log",
    )
    with pytest.raises(TransitionNotAllowed, match="is 'revoked': cannot revoke"):
        api_key_revoke(actor=manager, key=key, reason="again")
    assert _events("partner.api_key_revoked").count() == 1


def test_api_key_revoke_needs_a_reason_the_permission_and_the_scope(manager, partner):
    key, secret = api_key_create(actor=manager, partner=partner, name="k", scopes=["bookings:read"])
    outsider = staff(PMGR, scope=PartnerFactory())
    agent = staff(AGENT, scope=partner)
    with pytest.raises(InvalidInput, match="reason"):
        api_key_revoke(actor=manager, key=key, reason="  ")
    with pytest.raises(NotPermitted):
        api_key_revoke(actor=outsider, key=key, reason="x")
    with pytest.raises(NotPermitted):
        api_key_revoke(actor=agent, key=key, reason="x")
    assert PartnerAPIKey.objects.get(pk=key.pk).revoked_at is None
    assert api_key_authenticate(secret) == key


def test_api_key_authenticate_refuses_an_expired_key(manager, partner):
    key, secret = api_key_create(
        actor=manager, partner=partner, name="k", scopes=["bookings:read"], expires_at=timezone.now() + timedelta(1)
    )
    PartnerAPIKey.objects.filter(pk=key.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert api_key_authenticate(secret) is None


def test_api_key_authenticate_refuses_a_suspended_partners_key(manager, partner):
    key, secret = api_key_create(actor=manager, partner=partner, name="k", scopes=["bookings:read"])
    Partner.objects.filter(pk=partner.pk).update(status=Partner.Status.SUSPENDED)
    assert api_key_authenticate(secret) is None


def test_api_key_authenticate_refuses_a_wrong_secret_with_a_known_prefix(manager, partner):
    key, secret = api_key_create(actor=manager, partner=partner, name="k", scopes=["bookings:read"])
    forged = f"{key.prefix}.{'A' * 43}"
    assert forged != secret
    assert api_key_authenticate(forged) is None


@pytest.mark.parametrize(
    "raw", ["", "abc", "x.y.z", "\x00", "abcdef12.\x00", "\x00bcdef12.secretsecretsecretsecret", None, 12]
)
def test_api_key_authenticate_refuses_malformed_strings(manager, partner, raw, django_assert_num_queries):
    api_key_create(actor=manager, partner=partner, name="k", scopes=["bookings:read"])
    with django_assert_num_queries(0):
        assert api_key_authenticate(raw) is None


def test_api_key_authenticate_refuses_the_secret_with_an_extra_part(manager, partner):
    _, secret = api_key_create(actor=manager, partner=partner, name="k", scopes=["bookings:read"])
    assert api_key_authenticate(f"{secret}.x") is None


def test_api_key_authenticate_writes_last_used_at_once_a_minute(manager, partner, django_assert_num_queries):
    key, secret = api_key_create(actor=manager, partner=partner, name="k", scopes=["bookings:read"])

    # the first use reads the key and writes last_used_at
    with django_assert_num_queries(2):
        assert api_key_authenticate(secret) == key
    first = PartnerAPIKey.objects.get(pk=key.pk).last_used_at
    assert first is not None
    # a second use within the minute only reads
    with django_assert_num_queries(1):
        assert api_key_authenticate(secret) == key
    assert PartnerAPIKey.objects.get(pk=key.pk).last_used_at == first
    # a use more than a minute later writes it again
    PartnerAPIKey.objects.filter(pk=key.pk).update(last_used_at=first - timedelta(seconds=61))
    with django_assert_num_queries(2):
        api_key_authenticate(secret)
    assert PartnerAPIKey.objects.get(pk=key.pk).last_used_at > first


def test_api_key_for_user_lists_only_the_keys_of_partners_in_scope(manager, partner):
    mine, _ = api_key_create(actor=manager, partner=partner, name="mine", scopes=["bookings:read"])
    other = PartnerFactory()
    theirs, _ = api_key_create(actor=staff(PMGR, scope=other), partner=other, name="theirs", scopes=["bookings:read"])
    assert list(api_key_for_user(manager)) == [mine]
    assert set(api_key_for_user(StaffFactory(is_superuser=True))) == {mine, theirs}
