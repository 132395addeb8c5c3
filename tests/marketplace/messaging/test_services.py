"""Conversations and messages (marketplace/messaging/services.py): participants only, bodies
neither empty nor too long, and the other participants notified in-app (no email)."""

import pytest

from marketplace.catalog.models import Listing
from marketplace.core.exceptions import InvalidInput, NotPermitted
from marketplace.messaging.models import Conversation, Message, Participant
from marketplace.messaging.services import (
    MAX_BODY,
    conversation_for_booking,
    conversation_start_about_listing,
    message_send,
)
from marketplace.notifications.models import EmailOutbox, Notification
from tests.factories import BookingFactory, ClientFactory, StaffFactory
from tests.factories.states import listing_in

pytestmark = pytest.mark.django_db


def _snapshot(conversation: Conversation) -> dict:
    row = Conversation.objects.get(pk=conversation.pk)
    return {
        "last_message_at": row.last_message_at,
        "messages": Message.objects.count(),
        "notifications": Notification.objects.count(),
        "read": list(Participant.objects.filter(conversation=row).values_list("user_id", "last_read_at")),
    }


def test_conversation_for_booking_joins_client_and_provider_once():
    # given
    booking = BookingFactory()
    # when asked for twice
    first = conversation_for_booking(booking=booking)
    second = conversation_for_booking(booking=booking)
    # then one conversation, with exactly the two parties
    assert first.pk == second.pk
    assert set(first.participants.all()) == {booking.client, booking.provider}


def test_message_send_by_participant_notifies_the_other_party_only():
    # given
    booking = BookingFactory()
    conversation = conversation_for_booking(booking=booking)
    # when the client writes
    message = message_send(conversation=conversation, sender=booking.client, body="  Is 9am fine?  ")
    # then the message is stored trimmed, the provider is notified in-app, the client is not
    assert (message.body, message.sender) == ("Is 9am fine?", booking.client)
    conversation.refresh_from_db()
    assert conversation.last_message_at == message.created_at
    provider_note = Notification.objects.get(verb="message.received")
    assert (provider_note.user, provider_note.body, provider_note.target_id) == (
        booking.provider,
        "Is 9am fine?",
        str(conversation.pk),
    )
    assert provider_note.title == f"New message from {booking.client.get_short_name()}"
    # messages are not emailed
    assert EmailOutbox.objects.filter(template="notifications/email/message.received").count() == 0
    # the sender has read up to their own message
    assert Participant.objects.get(conversation=conversation, user=booking.client).last_read_at is not None
    assert Participant.objects.get(conversation=conversation, user=booking.provider).last_read_at is None


def test_message_send_notification_body_is_a_preview():
    # given
    booking = BookingFactory()
    conversation = conversation_for_booking(booking=booking)
    # when
    message_send(conversation=conversation, sender=booking.provider, body="x" * 300)
    # then
    assert Notification.objects.get(user=booking.client).body == "x" * 200


@pytest.mark.parametrize("stranger", [ClientFactory, StaffFactory], ids=["another-client", "staff"])
def test_message_send_by_non_participant_is_refused(stranger):
    # given
    booking = BookingFactory()
    conversation = conversation_for_booking(booking=booking)
    before = _snapshot(conversation)
    # when
    with pytest.raises(NotPermitted) as raised:
        message_send(conversation=conversation, sender=stranger(), body="Hello")
    # then
    assert str(raised.value) == "You are not part of this conversation."
    assert _snapshot(conversation) == before


@pytest.mark.parametrize("body", ["", "   \n\t ", None])
def test_message_send_empty_is_refused(body):
    # given
    booking = BookingFactory()
    conversation = conversation_for_booking(booking=booking)
    before = _snapshot(conversation)
    # when
    with pytest.raises(InvalidInput) as raised:
        message_send(conversation=conversation, sender=booking.client, body=body)
    # then
    assert str(raised.value) == "A message cannot be empty."
    assert _snapshot(conversation) == before


def test_message_send_too_long_is_refused():
    # given
    booking = BookingFactory()
    conversation = conversation_for_booking(booking=booking)
    before = _snapshot(conversation)
    # when
    with pytest.raises(InvalidInput) as raised:
        message_send(conversation=conversation, sender=booking.client, body="y" * (MAX_BODY + 1))
    # then
    assert str(raised.value) == f"A message is at most {MAX_BODY} characters."
    assert _snapshot(conversation) == before


def test_message_send_of_exactly_the_maximum_length_is_accepted():
    # given
    booking = BookingFactory()
    conversation = conversation_for_booking(booking=booking)
    # when
    message = message_send(conversation=conversation, sender=booking.client, body="z" * MAX_BODY)
    # then
    assert len(message.body) == MAX_BODY


def test_conversation_start_about_listing_reuses_the_askers_thread():
    # given a published listing and a would-be client
    listing = listing_in(Listing.Status.PUBLISHED)
    asker = ClientFactory()
    # when they start a conversation twice
    first = conversation_start_about_listing(listing=listing, user=asker)
    second = conversation_start_about_listing(listing=listing, user=asker)
    # then it is one thread between them and the owner, and the owner hears about messages
    assert first.pk == second.pk
    assert set(first.participants.all()) == {asker, listing.owner}
    message_send(conversation=first, sender=asker, body="Do you work weekends?")
    assert Notification.objects.get(verb="message.received").user == listing.owner


def test_conversation_start_about_listing_keeps_askers_apart():
    # given
    listing = listing_in(Listing.Status.PUBLISHED)
    one, other = ClientFactory(), ClientFactory()
    # when
    first = conversation_start_about_listing(listing=listing, user=one)
    second = conversation_start_about_listing(listing=listing, user=other)
    # then each asker has their own thread and cannot write in the other's
    assert first.pk != second.pk
    with pytest.raises(NotPermitted):
        message_send(conversation=first, sender=other, body="Me too")


def test_conversation_start_about_own_listing_is_refused():
    # given
    listing = listing_in(Listing.Status.PUBLISHED)
    # when
    with pytest.raises(InvalidInput) as raised:
        conversation_start_about_listing(listing=listing, user=listing.owner)
    # then
    assert str(raised.value) == "You cannot start a conversation with yourself."
    assert Conversation.objects.count() == 0
