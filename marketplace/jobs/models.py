from django.conf import settings
from django.db import models

from marketplace.core.money import AmountField

ACTIVE_STATES = ["submitted", "shortlisted", "hired"]


class JobApplication(models.Model):
    """A worker's application to a client's job listing. Hiring creates a booking."""

    class Status(models.TextChoices):
        SUBMITTED = "submitted", "Submitted"
        SHORTLISTED = "shortlisted", "Shortlisted"
        HIRED = "hired", "Hired"
        REJECTED = "rejected", "Rejected"
        WITHDRAWN = "withdrawn", "Withdrawn"

    listing = models.ForeignKey("catalog.Listing", on_delete=models.CASCADE, related_name="applications")
    applicant = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="applications")
    cover_letter = models.TextField(blank=True, default="")
    proposed_amount = AmountField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.SUBMITTED)
    decision_reason = models.TextField(blank=True, default="")
    booking = models.OneToOneField(
        "bookings.Booking", null=True, blank=True, on_delete=models.SET_NULL, related_name="job_application"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["listing", "applicant"],
                condition=models.Q(status__in=ACTIVE_STATES),
                name="application_one_active_per_applicant",
            ),
            models.CheckConstraint(condition=models.Q(proposed_amount__gt=0), name="application_amount_positive"),
            models.CheckConstraint(
                condition=models.Q(status__in=["submitted", "shortlisted", "hired", "rejected", "withdrawn"]),
                name="application_status_valid",
            ),
            models.CheckConstraint(
                condition=~models.Q(status="hired") | models.Q(booking__isnull=False),
                name="application_hired_has_booking",
            ),
        ]
        indexes = [models.Index(fields=["listing", "status", "created_at"], name="application_listing_idx")]

    def __str__(self):
        return f"Application #{self.pk} to {self.listing_id}"
