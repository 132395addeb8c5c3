from django.conf import settings
from django.db import models

from marketplace.core.money import AmountField, CurrencyField


class Booking(models.Model):
    """A client's booking of a provider's service (or a hire from a job application)."""

    class Status(models.TextChoices):
        REQUESTED = "requested", "Requested"
        PENDING_PAYMENT = "pending_payment", "Pending payment"
        AUTHORIZED = "authorized", "Authorized"
        ACCEPTED = "accepted", "Accepted"
        DECLINED = "declined", "Declined"
        EXPIRED = "expired", "Expired"
        CANCELLED = "cancelled", "Cancelled"
        IN_PROGRESS = "in_progress", "In progress"
        COMPLETED = "completed", "Completed"
        DISPUTED = "disputed", "Disputed"
        RESOLVED = "resolved", "Resolved"
        CLOSED = "closed", "Closed"

    listing = models.ForeignKey("catalog.Listing", on_delete=models.PROTECT, related_name="bookings")
    client = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="bookings_as_client")
    provider = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="bookings_as_provider"
    )
    # Copied from the listing at booking time: the scope and payout unit, and the fee terms agreed.
    partner = models.ForeignKey("partners.Partner", on_delete=models.PROTECT, related_name="bookings")
    category = models.ForeignKey("catalog.Category", on_delete=models.PROTECT, related_name="bookings")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.REQUESTED)
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    amount = AmountField()
    platform_fee = AmountField()
    commission_rate = models.DecimalField(max_digits=5, decimal_places=4)
    currency = CurrencyField()
    note = models.TextField(blank=True, default="")
    # The deadline of the current waiting state (payment, acceptance); timers read it.
    expires_at = models.DateTimeField(null=True, blank=True)
    authorized_at = models.DateTimeField(null=True, blank=True)
    accepted_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    review_window_ends_at = models.DateTimeField(null=True, blank=True)
    dispute_window_ends_at = models.DateTimeField(null=True, blank=True)
    cancellation_reason = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        permissions = [("operate_booking", "Can accept, decline, complete and cancel bookings as an operator")]
        constraints = [
            models.CheckConstraint(condition=models.Q(amount__gte=0), name="booking_amount_not_negative"),
            models.CheckConstraint(
                condition=models.Q(platform_fee__gte=0) & models.Q(platform_fee__lte=models.F("amount")),
                name="booking_fee_within_amount",
            ),
            models.CheckConstraint(
                condition=models.Q(commission_rate__gte=0) & models.Q(commission_rate__lte=1),
                name="booking_commission_between_0_and_1",
            ),
            models.CheckConstraint(
                condition=models.Q(ends_at__gt=models.F("starts_at")), name="booking_ends_after_start"
            ),
            models.CheckConstraint(
                condition=~models.Q(client=models.F("provider")), name="booking_client_not_provider"
            ),
            models.CheckConstraint(
                condition=models.Q(
                    status__in=[
                        "requested",
                        "pending_payment",
                        "authorized",
                        "accepted",
                        "declined",
                        "expired",
                        "cancelled",
                        "in_progress",
                        "completed",
                        "disputed",
                        "resolved",
                        "closed",
                    ]
                ),
                name="booking_status_valid",
            ),
        ]
        indexes = [
            models.Index(fields=["partner", "status", "-created_at"], name="booking_partner_status_idx"),
            models.Index(fields=["status", "-created_at"], name="booking_status_created_idx"),
            models.Index(fields=["-created_at", "-id"], name="booking_created_idx"),
            models.Index(fields=["category", "status"], name="booking_category_status_idx"),
            models.Index(fields=["client", "-created_at"], name="booking_client_idx"),
            models.Index(fields=["provider", "-created_at"], name="booking_provider_idx"),
            models.Index(
                fields=["status", "expires_at"],
                name="booking_timer_idx",
                condition=models.Q(status__in=["pending_payment", "authorized"]),
            ),
            models.Index(
                fields=["status", "completed_at"],
                name="booking_settlement_idx",
                condition=models.Q(status__in=["completed", "resolved", "closed"]),
            ),
            # The completion and review-window timers: only the rows still waiting for them.
            models.Index(
                fields=["ends_at"],
                name="booking_completion_timer_idx",
                condition=models.Q(status__in=["accepted", "in_progress"]),
            ),
            models.Index(
                fields=["review_window_ends_at"],
                name="booking_review_timer_idx",
                condition=models.Q(status__in=["completed", "resolved"]),
            ),
        ]

    def __str__(self):
        return f"Booking #{self.pk}"
