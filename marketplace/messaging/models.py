from django.conf import settings
from django.db import models


class Conversation(models.Model):
    """A thread about a booking or a listing between its participants."""

    booking = models.OneToOneField(
        "bookings.Booking", null=True, blank=True, on_delete=models.CASCADE, related_name="conversation"
    )
    listing = models.ForeignKey(
        "catalog.Listing", null=True, blank=True, on_delete=models.CASCADE, related_name="conversations"
    )
    participants = models.ManyToManyField(settings.AUTH_USER_MODEL, through="Participant", related_name="conversations")
    created_at = models.DateTimeField(auto_now_add=True)
    last_message_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(booking__isnull=False) | models.Q(listing__isnull=False),
                name="conversation_has_subject",
            ),
        ]

    def __str__(self):
        return f"Conversation #{self.pk}"


class Participant(models.Model):
    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    last_read_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["conversation", "user"], name="participant_unique")]

    def __str__(self):
        return f"{self.user_id} in {self.conversation_id}"


class Message(models.Model):
    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="messages")
    sender = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    body = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["conversation", "created_at"], name="message_conversation_idx")]
        constraints = [models.CheckConstraint(condition=~models.Q(body=""), name="message_not_empty")]

    def __str__(self):
        return f"Message #{self.pk}"
