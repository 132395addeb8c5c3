"""Conversations about bookings and listings, and the messages in them."""

from django.db import transaction
from django.utils import timezone

from marketplace.bookings.models import Booking
from marketplace.catalog.models import Listing
from marketplace.core.exceptions import InvalidInput, NotPermitted
from marketplace.core.transitions import lock
from marketplace.messaging.models import Conversation, Message, Participant
from marketplace.notifications.services import notify

MAX_BODY = 5000


def conversation_for_booking(*, booking: Booking) -> Conversation:
    """The booking's conversation between client and provider, created on first use."""
    with transaction.atomic():
        conversation, created = Conversation.objects.get_or_create(booking=booking)
        if created:
            Participant.objects.bulk_create(
                [
                    Participant(conversation=conversation, user_id=booking.client_id),
                    Participant(conversation=conversation, user_id=booking.provider_id),
                ]
            )
    return conversation


def conversation_start_about_listing(*, listing: Listing, user) -> Conversation:
    """A would-be client asks the listing's owner a question."""
    if user.pk == listing.owner_id:
        raise InvalidInput("You cannot start a conversation with yourself.")
    with transaction.atomic():
        existing = Conversation.objects.filter(listing=listing, booking=None, memberships__user=user).first()
        if existing:
            return existing
        conversation = Conversation.objects.create(listing=listing)
        Participant.objects.bulk_create(
            [
                Participant(conversation=conversation, user=user),
                Participant(conversation=conversation, user_id=listing.owner_id),
            ]
        )
    return conversation


def message_send(*, conversation: Conversation, sender, body: str) -> Message:
    body = (body or "").strip()
    if not body:
        raise InvalidInput("A message cannot be empty.")
    if len(body) > MAX_BODY:
        raise InvalidInput(f"A message is at most {MAX_BODY} characters.")
    with transaction.atomic():
        conversation = lock(Conversation, conversation.pk)
        others = list(Participant.objects.filter(conversation=conversation).select_related("user"))
        if sender.pk not in {p.user_id for p in others}:
            raise NotPermitted("You are not part of this conversation.")
        message = Message.objects.create(conversation=conversation, sender=sender, body=body)
        conversation.last_message_at = message.created_at
        conversation.save(update_fields=["last_message_at"])
        Participant.objects.filter(conversation=conversation, user=sender).update(last_read_at=timezone.now())
        for participant in others:
            if participant.user_id != sender.pk:
                notify(
                    user=participant.user,
                    verb="message.received",
                    target=conversation,
                    title=f"New message from {sender.get_short_name()}",
                    body=body[:200],
                    email=False,
                )
    return message
