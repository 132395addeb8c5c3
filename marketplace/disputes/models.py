from django.conf import settings
from django.db import models
from guardian.models import GroupObjectPermissionBase, UserObjectPermissionBase

from marketplace.core.money import AmountField

OPEN_STATES = ["opened", "awaiting_response", "under_review", "escalated"]


class Dispute(models.Model):
    """A party's complaint about a completed booking. Its payout is held until it is resolved."""

    class Status(models.TextChoices):
        OPENED = "opened", "Opened"
        AWAITING_RESPONSE = "awaiting_response", "Awaiting response"
        UNDER_REVIEW = "under_review", "Under review"
        ESCALATED = "escalated", "Escalated"
        RESOLVED_RELEASE = "resolved_release", "Resolved: released to provider"
        RESOLVED_PARTIAL_REFUND = "resolved_partial_refund", "Resolved: partial refund"
        RESOLVED_FULL_REFUND = "resolved_full_refund", "Resolved: full refund"
        WITHDRAWN = "withdrawn", "Withdrawn"

    class Reason(models.TextChoices):
        NOT_DELIVERED = "not_delivered", "Service not delivered"
        NOT_AS_DESCRIBED = "not_as_described", "Not as described"
        QUALITY = "quality", "Quality of work"
        NO_SHOW = "no_show", "Client no-show"
        BILLING = "billing", "Billing error"
        OTHER = "other", "Other"

    booking = models.ForeignKey("bookings.Booking", on_delete=models.PROTECT, related_name="disputes")
    partner = models.ForeignKey("partners.Partner", on_delete=models.PROTECT, related_name="disputes")
    opened_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    reason_code = models.CharField(max_length=32, choices=Reason.choices)
    description = models.TextField()
    status = models.CharField(max_length=32, choices=Status.choices, default=Status.OPENED)
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="assigned_disputes"
    )
    response_due_at = models.DateTimeField(null=True, blank=True)
    sla_due_at = models.DateTimeField(null=True, blank=True)
    escalated_at = models.DateTimeField(null=True, blank=True)
    # A refund above the threshold is proposed by one person and approved by a second.
    proposed_outcome = models.CharField(max_length=32, blank=True, default="")
    proposed_refund = AmountField(null=True, blank=True)
    proposed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    proposed_at = models.DateTimeField(null=True, blank=True)
    resolution_code = models.CharField(max_length=32, blank=True, default="")
    resolution_note = models.TextField(blank=True, default="")
    refund_amount = AmountField(null=True, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    resolved_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        permissions = [
            ("resolve_dispute", "Can resolve disputes"),
            ("assign_dispute", "Can assign disputes to agents"),
            ("approve_refund", "Can approve refunds above the threshold (second person)"),
            ("handle_dispute", "Handles this dispute (granted on assignment)"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["booking"], condition=models.Q(status__in=OPEN_STATES), name="dispute_one_open_per_booking"
            ),
            models.CheckConstraint(
                condition=models.Q(refund_amount__isnull=True) | models.Q(refund_amount__gte=0),
                name="dispute_refund_not_negative",
            ),
            models.CheckConstraint(
                condition=models.Q(
                    status__in=[
                        *OPEN_STATES,
                        "resolved_release",
                        "resolved_partial_refund",
                        "resolved_full_refund",
                        "withdrawn",
                    ]
                ),
                name="dispute_status_valid",
            ),
            models.CheckConstraint(
                condition=models.Q(status__in=OPEN_STATES) | models.Q(resolved_at__isnull=False),
                name="dispute_closed_has_time",
            ),
        ]
        indexes = [
            models.Index(fields=["partner", "status", "-created_at"], name="dispute_partner_status_idx"),
            models.Index(fields=["status", "-created_at"], name="dispute_status_created_idx"),
            models.Index(fields=["assignee", "status", "created_at"], name="dispute_assignee_idx"),
            models.Index(
                fields=["status", "response_due_at"],
                name="dispute_response_due_idx",
                condition=models.Q(status="awaiting_response"),
            ),
            models.Index(
                fields=["sla_due_at"], name="dispute_sla_open_idx", condition=models.Q(status__in=OPEN_STATES)
            ),
        ]

    def __str__(self):
        return f"Dispute #{self.pk}"


class DisputeEvidence(models.Model):
    dispute = models.ForeignKey(Dispute, on_delete=models.CASCADE, related_name="evidence")
    submitted_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    text = models.TextField(blank=True, default="")
    file = models.FileField(upload_to="disputes/evidence/%Y/%m/", blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "dispute evidence"
        constraints = [
            models.CheckConstraint(condition=~models.Q(text="") | ~models.Q(file=""), name="evidence_not_empty"),
        ]

    def __str__(self):
        return f"Evidence #{self.pk} on {self.dispute}"


class DisputeUserObjectPermission(UserObjectPermissionBase):
    content_object = models.ForeignKey(Dispute, on_delete=models.CASCADE)


class DisputeGroupObjectPermission(GroupObjectPermissionBase):
    content_object = models.ForeignKey(Dispute, on_delete=models.CASCADE)
