"""Each workflow object's change page shows its timeline: audit events and staff notes."""

import pytest
from django.urls import reverse

from marketplace.audit.models import Note
from marketplace.catalog.models import Listing
from marketplace.catalog.services import listing_reject
from tests.factories import PartnerFactory
from tests.factories.states import listing_in, operator_with

pytestmark = pytest.mark.django_db


def _agent(partner):
    return operator_with("moderate_listing", "view_listing", scope=partner)


def test_timeline_shows_transitions_with_actor_and_reason_and_notes(client):
    listing = listing_in(Listing.Status.PENDING_REVIEW)
    agent = _agent(listing.partner)
    listing_reject(listing=listing, actor=agent, reason="Photos show another company's van.")
    client.force_login(agent)
    change = reverse("admin:catalog_listing_change", args=[listing.pk])

    response = client.post(reverse("admin:catalog_listing_note_add", args=[listing.pk]), {"body": "Called the owner."})
    assert response.status_code == 302
    html = client.get(change).content.decode()

    timeline = html[html.index("data-timeline") :]
    assert "listing.reject: pending_review → rejected" in timeline
    assert "Photos show another company&#x27;s van." in timeline
    assert str(agent) in timeline
    assert "Called the owner." in timeline
    # newest first: the note was added after the rejection
    assert timeline.index("Called the owner.") < timeline.index("listing.reject")


def test_an_empty_note_is_refused_and_nothing_written(client):
    listing = listing_in(Listing.Status.PENDING_REVIEW)
    client.force_login(_agent(listing.partner))
    response = client.post(reverse("admin:catalog_listing_note_add", args=[listing.pk]), {"body": "   "}, follow=True)
    assert "A note cannot be empty." in [str(m) for m in response.context["messages"]]
    assert not Note.objects.exists()


def test_a_note_on_another_partners_object_is_404(client):
    listing = listing_in(Listing.Status.PENDING_REVIEW)
    client.force_login(_agent(PartnerFactory()))
    response = client.post(reverse("admin:catalog_listing_note_add", args=[listing.pk]), {"body": "Hello"})
    assert response.status_code == 404
    assert not Note.objects.exists()
