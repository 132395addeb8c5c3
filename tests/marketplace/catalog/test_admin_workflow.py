"""Listing moderation from the admin: the workflow base (confirmation page, service call, messages)."""

import pytest
from django.urls import reverse

from marketplace.audit.models import Event
from marketplace.catalog.models import Listing
from tests.factories import PartnerFactory
from tests.factories.states import listing_in, operator_with

pytestmark = pytest.mark.django_db
S = Listing.Status


def _moderator(partner):
    """An agent who moderates listings of `partner` and may open the listings admin."""
    return operator_with("moderate_listing", "view_listing", scope=partner)


def _messages(response):
    return [str(m) for m in response.context["messages"]] if response.context else []


def test_approve_asks_for_confirmation_then_calls_the_service_once(client):
    listing = listing_in(S.PENDING_REVIEW)
    moderator = _moderator(listing.partner)
    client.force_login(moderator)
    url = reverse("admin:catalog_listing_approve", args=[listing.pk])

    page = client.get(url)
    assert page.status_code == 200
    assert listing.title in page.content.decode()
    listing.refresh_from_db()
    assert listing.status == S.PENDING_REVIEW  # a GET changes nothing

    done = client.post(url, follow=True)
    listing.refresh_from_db()
    assert listing.status == S.PUBLISHED
    assert f"{listing} is approved and published." in _messages(done)
    assert Event.objects.filter(verb="listing.approve", target_id=str(listing.pk)).count() == 1

    # a double click: the second post finds it published, says so, writes nothing
    again = client.post(url, follow=True)
    assert f"{listing} is already published; nothing to do." in _messages(again)
    assert Event.objects.filter(verb="listing.approve", target_id=str(listing.pk)).count() == 1


def test_approve_of_a_listing_outside_scope_is_404(client):
    listing = listing_in(S.PENDING_REVIEW)
    moderator = _moderator(PartnerFactory())
    client.force_login(moderator)
    response = client.post(reverse("admin:catalog_listing_approve", args=[listing.pk]))
    assert response.status_code == 404
    listing.refresh_from_db()
    assert listing.status == S.PENDING_REVIEW


def test_a_refused_step_shows_the_service_message_and_changes_nothing(client):
    listing = listing_in(S.DRAFT)
    client.force_login(_moderator(listing.partner))
    response = client.post(reverse("admin:catalog_listing_approve", args=[listing.pk]), follow=True)
    assert f"Listing #{listing.pk} is 'draft': cannot approve." in _messages(response)
    listing.refresh_from_db()
    assert listing.status == S.DRAFT
