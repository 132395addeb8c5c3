"""Every moderation decision on a listing reaches its owner, in-app and by email."""

import pytest
from django.core import mail

from marketplace.catalog import services as catalog
from marketplace.notifications.models import EmailOutbox, Notification
from marketplace.notifications.services import email_send
from tests.factories.states import LISTING_SERVICES, listing_in, listing_moderator

pytestmark = pytest.mark.django_db

# transition -> the state the listing is in before it, and the reason the moderator gives (if any)
MODERATION = [
    ("approve", "pending_review", ""),
    ("reject", "pending_review", "Prohibited service."),
    ("request_changes", "pending_review", "Add photos of your work."),
    ("suspend", "published", "Complaints."),
    ("reinstate", "suspended", ""),
]


def _told(listing, verb: str) -> tuple[Notification, EmailOutbox]:
    notification = Notification.objects.get(user=listing.owner, verb=verb)
    outbox = EmailOutbox.objects.get(to=listing.owner.email, template=f"notifications/email/{verb}")
    return notification, outbox


def _sent_to_owner(listing, outbox: EmailOutbox):
    assert email_send(outbox_id=outbox.pk)
    [message] = [m for m in mail.outbox if m.to == [listing.owner.email]]
    return message


@pytest.mark.parametrize(("transition", "state", "reason"), MODERATION, ids=[t for t, _, _ in MODERATION])
def test_listing_moderation_notifies_the_owner_by_email(transition, state, reason):
    # given a listing in `state` and a moderator in scope
    listing = listing_in(state, title="Garden tidy-up")
    moderator = listing_moderator(scope=listing.partner)
    mail.outbox.clear()

    # when the moderator decides
    LISTING_SERVICES[transition](listing, moderator)

    # then the owner has a notification and an email, sent with the listing template and the reason
    notification, outbox = _told(listing, f"listing.{transition}")
    assert notification.target_id == str(listing.pk) and notification.body == reason
    assert "Garden tidy-up" in outbox.subject
    message = _sent_to_owner(listing, outbox)
    html = message.alternatives[0][0]
    assert "Listing moderation" in message.body and "Listing moderation" in html
    if reason:
        assert reason in message.body and reason in html
        assert "Reason given by our team" in message.body


def test_listing_revision_decisions_notify_the_owner_by_email():
    # given a live listing with a proposed edit, and a moderator in scope
    listing = listing_in("published", title="Garden tidy-up")
    moderator = listing_moderator(scope=listing.partner)
    catalog.listing_update(listing=listing, actor=listing.owner, data={"title": "Garden and hedge tidy-up"})

    # when the moderator turns the edit down, the owner proposes another, and it is approved
    catalog.listing_reject_revision(listing=listing, actor=moderator, reason="Hedges are not in this category.")
    catalog.listing_update(listing=listing, actor=listing.owner, data={"title": "Garden tidy-up, all year"})
    catalog.listing_approve_revision(listing=listing, actor=moderator)

    # then the owner was told both times, by email too
    _, rejected = _told(listing, "listing.revision_rejected")
    _, approved = _told(listing, "listing.revision_approved")
    assert "Hedges are not in this category." in _sent_to_owner(listing, rejected).body
    mail.outbox.clear()
    assert "are live" in _sent_to_owner(listing, approved).subject
