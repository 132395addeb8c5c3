"""The partner read API's first door (marketplace/api/): Bearer key authentication with one
generic refusal, no sessions, the one error shape, scopes, and GET /api/partner/v1/partner/."""

from datetime import UTC, datetime, timedelta

import pytest
from django.http import Http404
from django.urls import path
from django.utils import timezone
from rest_framework.response import Response
from rest_framework.test import APIClient

from marketplace.accounts.services import StaffGroup
from marketplace.api.common.views import PartnerAPIView
from marketplace.core.exceptions import InvalidInput, NotPermitted, TransitionNotAllowed
from marketplace.partners.api_keys import api_key_create, api_key_revoke
from marketplace.partners.models import Partner, PartnerAPIKey
from tests.factories import PartnerFactory
from tests.factories.settlement import staff

pytestmark = pytest.mark.django_db

URL = "/api/partner/v1/partner/"
NO_KEY = {
    "type": "client_error",
    "errors": [{"code": "not_authenticated", "detail": "Authentication credentials were not provided.", "attr": None}],
}
BAD_KEY = {
    "type": "client_error",
    "errors": [{"code": "authentication_failed", "detail": "Invalid API key.", "attr": None}],
}


@pytest.fixture
def acme():
    partner = PartnerFactory(name="Acme Cleaning", slug="acme-cleaning", kind="provider", risk_flag=True)
    Partner.objects.filter(pk=partner.pk).update(created_at=datetime(2026, 3, 1, 9, 30, tzinfo=UTC))
    return partner


@pytest.fixture
def globex():
    return PartnerFactory(name="Globex Integrations", slug="globex", kind="integrator")


def _key(partner, scopes=("reviews:read",), **kwargs):
    manager = staff(StaffGroup.PARTNER_MANAGER, scope=partner)
    key, secret = api_key_create(actor=manager, partner=partner, name="ERP", scopes=list(scopes), **kwargs)
    return key, secret, manager


def _get(secret=None, url=URL, **extra):
    client = APIClient()
    if secret is not None:
        extra["HTTP_AUTHORIZATION"] = f"Bearer {secret}"
    return client.get(url, **extra)


def test_partner_profile_without_a_key_is_401_with_bearer_challenge():
    # when no Authorization header is sent
    response = _get()

    # then 401, a Bearer challenge, and the error shape
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Bearer"
    assert response["Content-Type"] == "application/json"
    assert response.json() == NO_KEY


def test_partner_profile_refuses_every_bad_key_with_the_same_body(acme):
    # given a revoked key, an expired key and a key of a suspended partner
    revoked, revoked_secret, manager = _key(acme)
    api_key_revoke(actor=manager, key=revoked, reason="leaked")
    expired, expired_secret, _ = _key(acme, expires_at=timezone.now() + timedelta(days=1))
    PartnerAPIKey.objects.filter(pk=expired.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    suspended = PartnerFactory()
    _, suspended_secret, _ = _key(suspended)
    Partner.objects.filter(pk=suspended.pk).update(status=Partner.Status.SUSPENDED)
    _, good_secret, _ = _key(acme)
    prefix = good_secret.split(".")[0]

    # when each is presented, with malformed and unknown ones
    cases = {
        "malformed": "not-a-key",
        "unknown": f"{'0' * len(prefix)}.{good_secret.split('.', 1)[1]}",
        "wrong secret": f"{prefix}.{'A' * (len(good_secret) - len(prefix) - 1)}",
        "revoked": revoked_secret,
        "expired": expired_secret,
        "suspended partner": suspended_secret,
    }
    responses = {name: _get(secret) for name, secret in cases.items()}
    wrong_scheme = APIClient().get(URL, HTTP_AUTHORIZATION=f"Token {good_secret}")

    # then each is 401 with one and the same body, never saying which check failed
    for name, response in [*responses.items(), ("wrong scheme", wrong_scheme)]:
        assert (name, response.status_code, response["WWW-Authenticate"]) == (name, 401, "Bearer")
        assert (name, response.json()) == (name, BAD_KEY)


def test_partner_profile_returns_the_keys_own_partner(acme, globex, django_assert_num_queries):
    # given keys of two partners
    _, acme_secret, _ = _key(acme)
    _, globex_secret, _ = _key(globex, scopes=["bookings:read"])
    _get(acme_secret)  # last_used_at is written on first use; pin the steady state

    # when Acme's key reads its profile: the key with its partner, then the partner's row
    with django_assert_num_queries(2):
        response = _get(acme_secret)

    # then Acme's profile, and no risk flag
    assert response.status_code == 200
    assert response.json() == {
        "id": acme.pk,
        "name": "Acme Cleaning",
        "slug": "acme-cleaning",
        "kind": "provider",
        "status": "active",
        "created_at": "2026-03-01T09:30:00Z",
    }
    # and Globex's key sees Globex only
    other = _get(globex_secret).json()
    assert (other["id"], other["name"], other["kind"]) == (globex.pk, "Globex Integrations", "integrator")


def test_partner_profile_does_not_accept_a_staff_session():
    # given a signed-in superuser, with no key
    client = APIClient()
    client.force_login(staff(is_superuser=True))

    # then the API answers 401: sessions are not a way in
    response = client.get(URL)
    assert response.status_code == 401
    assert response.json() == NO_KEY


def test_partner_profile_is_json_only(acme):
    # given a browser asking for HTML
    _, secret, _ = _key(acme)
    response = _get(secret, HTTP_ACCEPT="text/html")

    # then 406 in the error shape (no browsable API)
    assert response.status_code == 406
    assert response.json()["type"] == "client_error"
    assert response.json()["errors"][0]["code"] == "not_acceptable"


# --- The base view's scope check and error mapping, through a test-only route ------------


class _ListingsView(PartnerAPIView):
    required_scope = PartnerAPIKey.Scope.LISTINGS_READ

    def get(self, request):
        refusals = {
            "invalid": InvalidInput("The cursor is not valid."),
            "forbidden": NotPermitted("Not yours."),
            "conflict": TransitionNotAllowed("booking", "cancel", state="completed"),
            "missing": Http404("No such listing."),
        }
        name = request.query_params.get("raise")
        if name:
            raise refusals[name]
        return Response({"ok": True})


urlpatterns = [path("scoped/", _ListingsView.as_view())]


@pytest.mark.urls(__name__)
def test_partner_api_view_refuses_a_key_without_the_scope_naming_it(acme):
    # given a key with bookings:read only, and one with listings:read
    _, bookings_only, _ = _key(acme, scopes=["bookings:read"])
    _, listings, _ = _key(acme, scopes=["listings:read"])

    # then the first is 403 naming the scope, the second passes
    refused = _get(bookings_only, url="/scoped/")
    assert refused.status_code == 403
    assert refused.json() == {
        "type": "client_error",
        "errors": [
            {"code": "permission_denied", "detail": "This API key lacks the 'listings:read' scope.", "attr": None}
        ],
    }
    assert _get(listings, url="/scoped/").json() == {"ok": True}


@pytest.mark.urls(__name__)
def test_partner_api_view_maps_domain_errors(acme):
    _, secret, _ = _key(acme, scopes=["listings:read"])

    answers = {
        name: _get(secret, url=f"/scoped/?raise={name}") for name in ("invalid", "forbidden", "conflict", "missing")
    }

    assert {name: (r.status_code, r.json()) for name, r in answers.items()} == {
        "invalid": (
            400,
            {
                "type": "client_error",
                "errors": [{"code": "invalid", "detail": "The cursor is not valid.", "attr": None}],
            },
        ),
        "forbidden": (
            403,
            {"type": "client_error", "errors": [{"code": "permission_denied", "detail": "Not yours.", "attr": None}]},
        ),
        "conflict": (
            409,
            {
                "type": "client_error",
                "errors": [
                    {"code": "transition_not_allowed", "detail": "booking is 'completed': cannot cancel.", "attr": None}
                ],
            },
        ),
        "missing": (
            404,
            {"type": "client_error", "errors": [{"code": "not_found", "detail": "Not found.", "attr": None}]},
        ),
    }


def test_partner_api_unknown_path_is_a_json_404(acme):
    # given a valid key, when it asks for a resource the API does not have
    _, secret, _ = _key(acme)
    response = _get(secret, url="/api/partner/v1/no-such-thing/")

    # then a 404 in the error shape, not the CMS's HTML page
    assert response.status_code == 404
    assert response.json() == {
        "type": "client_error",
        "errors": [{"code": "not_found", "detail": "Not found.", "attr": None}],
    }
