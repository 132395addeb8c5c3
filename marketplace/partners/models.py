from django.conf import settings
from django.db import models
from guardian.models import GroupObjectPermissionBase, UserObjectPermissionBase

from marketplace.core.money import CurrencyField


class Partner(models.Model):
    """A provider business or an integrator. The unit of scope for staff and of payouts."""

    class Kind(models.TextChoices):
        PROVIDER = "provider", "Provider business"
        INTEGRATOR = "integrator", "Integrator"

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        SUSPENDED = "suspended", "Suspended"

    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=200, unique=True)
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.PROVIDER)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    contact_email = models.EmailField(blank=True, default="")
    risk_flag = models.BooleanField(default=False, help_text="Payouts of a flagged partner need approval.")
    members = models.ManyToManyField(
        settings.AUTH_USER_MODEL, through="PartnerMembership", related_name="partners", blank=True
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        permissions = [
            ("operate_partner", "Operate on this partner's listings, bookings, disputes and payouts"),
            ("operate_all_partners", "Operate on every partner (unscoped)"),
            ("grant_partner_scope", "Grant and revoke staff scope on partners (object permissions)"),
            ("change_partner_risk", "Suspend and reinstate partners, set and clear their risk flag"),
        ]
        constraints = [
            models.CheckConstraint(condition=models.Q(kind__in=["provider", "integrator"]), name="partner_kind_valid"),
            models.CheckConstraint(condition=models.Q(status__in=["active", "suspended"]), name="partner_status_valid"),
        ]

    def __str__(self):
        return self.name


class PartnerMembership(models.Model):
    class Role(models.TextChoices):
        OWNER = "owner", "Owner"
        MEMBER = "member", "Member"

    partner = models.ForeignKey(Partner, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.MEMBER)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["partner", "user"], name="membership_unique"),
        ]

    def __str__(self):
        return f"{self.user} in {self.partner} ({self.role})"


class PayoutAccount(models.Model):
    """Where a partner's payouts go: a tokenised reference at the gateway, never bank details."""

    partner = models.OneToOneField(Partner, on_delete=models.CASCADE, related_name="payout_account")
    gateway_reference = models.CharField(max_length=100)
    currency = CurrencyField()
    holder_name = models.CharField(max_length=200, blank=True, default="")
    verified_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self):
        return f"{self.partner}: {self.gateway_reference}"


class PartnerAPIKey(models.Model):
    """A partner's key to the read API. Only a hash is stored; the prefix identifies it.

    Written only through `marketplace.partners.api_keys` (create, revoke, authenticate).
    """

    class Scope(models.TextChoices):
        """What a key may do: the one allow-list (the service refuses anything else)."""

        LISTINGS_READ = "listings:read", "Read listings"
        BOOKINGS_READ = "bookings:read", "Read bookings"
        PAYOUTS_READ = "payouts:read", "Read payouts"
        DISPUTES_READ = "disputes:read", "Read disputes"
        REVIEWS_READ = "reviews:read", "Read reviews"
        EVENTS_READ = "events:read", "Read the change feed"
        WEBHOOKS_MANAGE = "webhooks:manage", "Manage webhooks"

    partner = models.ForeignKey(Partner, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=12, unique=True)
    hashed_key = models.CharField(max_length=128)
    # A JSON list of Scope values (JSON rather than an array so the SQLite demo works too).
    scopes = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    revoke_reason = models.TextField(blank=True, default="")
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "partner API key"
        permissions = [("manage_api_keys", "Create and revoke the API keys of partners in scope")]

    def __str__(self):
        return f"{self.partner}: {self.name} ({self.prefix}…)"


# guardian's direct-foreign-key permission tables: one join instead of a generic object_pk cast.
class PartnerUserObjectPermission(UserObjectPermissionBase):
    content_object = models.ForeignKey(Partner, on_delete=models.CASCADE)


class PartnerGroupObjectPermission(GroupObjectPermissionBase):
    content_object = models.ForeignKey(Partner, on_delete=models.CASCADE)
