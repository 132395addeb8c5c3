from django.conf import settings
from django.db import models


class Review(models.Model):
    """A double-blind rating: hidden until both parties reviewed or the review window closed."""

    class Role(models.TextChoices):
        CLIENT = "client", "Client"
        PROVIDER = "provider", "Provider"

    booking = models.ForeignKey("bookings.Booking", on_delete=models.CASCADE, related_name="reviews")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="reviews_written")
    subject = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="reviews_received")
    author_role = models.CharField(max_length=16, choices=Role.choices)
    rating = models.PositiveSmallIntegerField()
    comment = models.TextField(blank=True, default="")
    submitted_at = models.DateTimeField(auto_now_add=True)
    published_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["booking", "author"], name="review_one_per_party_per_booking"),
            models.UniqueConstraint(fields=["booking", "author_role"], name="review_one_per_role_per_booking"),
            models.CheckConstraint(
                condition=models.Q(rating__gte=1) & models.Q(rating__lte=5), name="review_rating_1_to_5"
            ),
            models.CheckConstraint(condition=~models.Q(author=models.F("subject")), name="review_not_self"),
        ]
        indexes = [
            models.Index(
                fields=["subject", "-published_at"],
                name="review_subject_published_idx",
                condition=models.Q(published_at__isnull=False),
            ),
        ]

    def __str__(self):
        return f"{self.rating}★ by {self.author_id} on booking {self.booking_id}"
