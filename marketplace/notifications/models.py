from django.conf import settings
from django.db import models


class Notification(models.Model):
    """An in-app notification for one user."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications")
    verb = models.CharField(max_length=64)
    title = models.CharField(max_length=200)
    body = models.TextField(blank=True, default="")
    target_type = models.CharField(max_length=64, blank=True, default="")
    target_id = models.CharField(max_length=64, blank=True, default="")
    read_at = models.DateTimeField(null=True, blank=True)
    # Set by callers that may run twice (timers, reminders): a second notify() with it writes nothing.
    dedupe_key = models.CharField(max_length=200, null=True, blank=True, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["user", "read_at", "-created_at"], name="notif_user_unread_idx")]

    def __str__(self):
        return f"{self.user_id}: {self.title}"


class EmailOutbox(models.Model):
    """An email waiting to be sent by a task. Never sent inside a request.

    pending -> sending -> sent | failed. A send first claims the row (`sending`, committed), sends
    outside any transaction, then marks it. A failed row with `next_attempt_at` is retried from
    then on; without it the attempts are used up and the row stays failed for a person to see.
    A row left in `sending` (the process died mid-send) may or may not have gone out: it is never
    resent automatically, only reported.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SENDING = "sending", "Sending"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"

    to = models.EmailField()
    from_email = models.CharField(max_length=254, blank=True, default="")
    reply_to = models.EmailField(blank=True, default="")
    template = models.CharField(max_length=100)
    subject = models.CharField(max_length=200)
    context = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.TextField(blank=True, default="")
    dedupe_key = models.CharField(max_length=200, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # When the current (or last) attempt claimed the row.
    claimed_at = models.DateTimeField(null=True, blank=True)
    # A failed row is retried from this time on; None on a failed row means no attempts are left.
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "email outbox"
        indexes = [
            models.Index(fields=["status", "created_at"], name="outbox_status_idx"),
            models.Index(fields=["status", "next_attempt_at"], name="outbox_status_next_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(status__in=["pending", "sending", "sent", "failed"]), name="outbox_status_valid"
            ),
            models.CheckConstraint(
                condition=~models.Q(status="sent") | models.Q(sent_at__isnull=False), name="outbox_sent_has_time"
            ),
            models.CheckConstraint(
                condition=~models.Q(status="sending") | models.Q(claimed_at__isnull=False),
                name="outbox_sending_has_claim",
            ),
        ]

    def __str__(self):
        return f"{self.template} to {self.to} ({self.status})"
