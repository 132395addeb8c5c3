from django.conf import settings
from django.db import models
from guardian.models import GroupObjectPermissionBase, UserObjectPermissionBase
from treebeard.mp_tree import MP_Node

from marketplace.core.money import AmountField, CurrencyField


class Category(MP_Node):
    """A node of the catalogue tree. Its commission rate applies to bookings of its listings."""

    name = models.CharField(max_length=120)
    slug = models.SlugField(max_length=120, unique=True)
    commission_rate = models.DecimalField(max_digits=5, decimal_places=4, default="0.1500")
    is_active = models.BooleanField(default=True)

    node_order_by = ["name"]

    class Meta:
        verbose_name_plural = "categories"
        permissions = [
            ("operate_category", "Operate on listings and bookings in this category and below"),
            ("change_category_commission", "Change a category's commission rate (new bookings only)"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(commission_rate__gte=0) & models.Q(commission_rate__lte=1),
                name="category_commission_between_0_and_1",
            ),
        ]

    def __str__(self):
        return self.name


class Listing(models.Model):
    """A SERVICE offered by a provider or a JOB posted by a client."""

    class Kind(models.TextChoices):
        SERVICE = "service", "Service"
        JOB = "job", "Job"

    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        PENDING_REVIEW = "pending_review", "Pending review"
        CHANGES_REQUESTED = "changes_requested", "Changes requested"
        REJECTED = "rejected", "Rejected"
        PUBLISHED = "published", "Published"
        PAUSED = "paused", "Paused"
        SUSPENDED = "suspended", "Suspended"
        EXPIRED = "expired", "Expired"
        ARCHIVED = "archived", "Archived"

    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.SERVICE)
    title = models.CharField(max_length=200)
    description = models.TextField(blank=True, default="")
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="listings")
    partner = models.ForeignKey("partners.Partner", on_delete=models.PROTECT, related_name="listings")
    category = models.ForeignKey(Category, on_delete=models.PROTECT, related_name="listings")
    price = AmountField()
    currency = CurrencyField()
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.DRAFT)
    moderation_reason = models.TextField(blank=True, default="")
    # A material edit of a live listing waits here for review while the live version stays.
    pending_changes = models.JSONField(null=True, blank=True)
    pending_changes_at = models.DateTimeField(null=True, blank=True)
    submitted_at = models.DateTimeField(null=True, blank=True)
    published_at = models.DateTimeField(null=True, blank=True)
    ends_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        permissions = [("moderate_listing", "Can moderate listings")]
        constraints = [
            models.CheckConstraint(condition=models.Q(price__gte=0), name="listing_price_not_negative"),
            models.CheckConstraint(condition=models.Q(kind__in=["service", "job"]), name="listing_kind_valid"),
            models.CheckConstraint(
                condition=models.Q(
                    status__in=[
                        "draft",
                        "pending_review",
                        "changes_requested",
                        "rejected",
                        "published",
                        "paused",
                        "suspended",
                        "expired",
                        "archived",
                    ]
                ),
                name="listing_status_valid",
            ),
            models.CheckConstraint(
                condition=~models.Q(status__in=["changes_requested", "rejected", "suspended"])
                | ~models.Q(moderation_reason=""),
                name="listing_moderation_has_reason",
            ),
        ]
        indexes = [
            models.Index(fields=["partner", "status", "-created_at"], name="listing_partner_status_idx"),
            models.Index(fields=["status", "submitted_at"], name="listing_queue_idx"),
            models.Index(fields=["category", "status"], name="listing_category_status_idx"),
            models.Index(
                fields=["ends_at"],
                name="listing_expiry_timer_idx",
                condition=models.Q(status__in=["published", "paused"]),
            ),
            models.Index(
                fields=["pending_changes_at"],
                name="listing_rereview_idx",
                condition=models.Q(pending_changes__isnull=False),
            ),
        ]

    def __str__(self):
        return self.title


class CategoryUserObjectPermission(UserObjectPermissionBase):
    content_object = models.ForeignKey(Category, on_delete=models.CASCADE)


class CategoryGroupObjectPermission(GroupObjectPermissionBase):
    content_object = models.ForeignKey(Category, on_delete=models.CASCADE)
