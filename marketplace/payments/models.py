from django.conf import settings
from django.db import models
from django.db.models.functions import Round

from marketplace.core.money import AmountField, CurrencyField


class PaymentMethod(models.Model):
    """A card or account saved at the gateway. Only the gateway's token is stored, never numbers."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="payment_methods")
    gateway_token = models.CharField(max_length=100)
    brand = models.CharField(max_length=30, blank=True, default="")
    last4 = models.CharField(max_length=4, blank=True, default="")
    exp_month = models.PositiveSmallIntegerField(null=True, blank=True)
    exp_year = models.PositiveSmallIntegerField(null=True, blank=True)
    is_default = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "gateway_token"], name="payment_method_unique_token"),
            models.UniqueConstraint(
                fields=["user"], condition=models.Q(is_default=True), name="payment_method_one_default"
            ),
            models.CheckConstraint(
                condition=models.Q(last4__regex=r"^[0-9]{0,4}$"), name="payment_method_last4_digits"
            ),
        ]

    def __str__(self):
        return f"{self.brand} ****{self.last4}"


class Payment(models.Model):
    """The client's payment for one booking: authorised, then captured, possibly refunded."""

    class Status(models.TextChoices):
        AUTHORIZED = "authorized", "Authorized"
        CAPTURED = "captured", "Captured"
        VOIDED = "voided", "Voided"
        PARTIALLY_REFUNDED = "partially_refunded", "Partially refunded"
        REFUNDED = "refunded", "Refunded"

    booking = models.OneToOneField("bookings.Booking", on_delete=models.PROTECT, related_name="payment")
    method = models.ForeignKey(PaymentMethod, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    amount = AmountField()
    currency = CurrencyField()
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.AUTHORIZED)
    captured_amount = AmountField(default=0)
    refunded_amount = AmountField(default=0)
    gateway_reference = models.CharField(max_length=100)
    authorized_at = models.DateTimeField(auto_now_add=True)
    captured_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=models.Q(amount__gte=0), name="payment_amount_not_negative"),
            models.CheckConstraint(
                condition=models.Q(captured_amount__gte=0) & models.Q(captured_amount__lte=models.F("amount")),
                name="payment_captured_within_amount",
            ),
            models.CheckConstraint(
                condition=models.Q(refunded_amount__gte=0) & models.Q(refunded_amount__lte=models.F("captured_amount")),
                name="payment_refunded_within_captured",
            ),
            models.CheckConstraint(
                condition=models.Q(status__in=["authorized", "captured", "voided", "partially_refunded", "refunded"]),
                name="payment_status_valid",
            ),
        ]
        indexes = [models.Index(fields=["status", "-authorized_at"], name="payment_status_idx")]

    def __str__(self):
        return f"Payment #{self.pk} ({self.status})"

    @property
    def refundable(self):
        return self.captured_amount - self.refunded_amount


class Refund(models.Model):
    """Money returned to the client. Split between the provider's share and the platform's fee."""

    payment = models.ForeignKey(Payment, on_delete=models.PROTECT, related_name="refunds")
    amount = AmountField()
    provider_share = AmountField()
    platform_share = AmountField()
    currency = CurrencyField()
    reason = models.TextField(blank=True, default="")
    gateway_reference = models.CharField(max_length=100)
    idempotency_key = models.CharField(max_length=128, unique=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=models.Q(amount__gt=0), name="refund_amount_positive"),
            models.CheckConstraint(
                condition=models.Q(provider_share__gte=0) & models.Q(platform_share__gte=0),
                name="refund_shares_not_negative",
            ),
            models.CheckConstraint(
                # Rounded so SQLite, which keeps decimals as floats, checks it to the cent too.
                condition=models.Q(amount=Round(models.F("provider_share") + models.F("platform_share"), 2)),
                name="refund_shares_sum_to_amount",
            ),
        ]

    def __str__(self):
        return f"Refund #{self.pk} of {self.amount} {self.currency}"


class GatewayCall(models.Model):
    """One call to the payment gateway: its intent, written and committed before the call, and its outcome.

    A money workflow records the call (with its idempotency key) in a first transaction that holds
    the booking's lock, commits, asks the gateway with no transaction open, then records the answer
    in a second transaction (`marketplace.payments.services.calls`). A call left `pending` (the
    process died, the gateway did not answer) is asked again later with the same key, which the
    gateway answers as it did the first time; a definite answer is final, and a new try is a new
    call with the next `number` and so a new key (a declined card does not block the booking).
    At most one call per booking is pending at a time.

    `then` (a dotted path) and `then_args` are the workflow's continuation: after the money is
    recorded, `then(call=call, **then_args)` completes the workflow in the same second transaction.
    """

    class Operation(models.TextChoices):
        AUTHORIZE = "authorize", "Authorize"
        CAPTURE = "capture", "Capture"
        VOID = "void", "Void"
        REFUND = "refund", "Refund"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    operation = models.CharField(max_length=10, choices=Operation.choices)
    booking = models.ForeignKey("bookings.Booking", on_delete=models.PROTECT, related_name="gateway_calls")
    payment = models.ForeignKey(Payment, null=True, blank=True, on_delete=models.PROTECT, related_name="gateway_calls")
    method = models.ForeignKey(PaymentMethod, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    # The attempt number of this operation on this booking (1, 2, ...): part of the key.
    number = models.PositiveIntegerField()
    idempotency_key = models.CharField(max_length=200, unique=True)
    amount = AmountField()
    currency = CurrencyField()
    # A refund's own key (`Refund.idempotency_key`): the same refund asked twice is made once.
    refund_key = models.CharField(max_length=128, blank=True, default="")
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reason = models.TextField(blank=True, default="")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    reference = models.CharField(max_length=100, blank=True, default="")
    error = models.TextField(blank=True, default="")
    # Times the gateway was asked; a pending call is (re)asked by `gateway_calls_resume` after `next_try_at`.
    tries = models.PositiveSmallIntegerField(default=0)
    next_try_at = models.DateTimeField()
    then = models.CharField(max_length=200, blank=True, default="")
    then_args = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["booking"],
                condition=models.Q(status="pending"),
                name="gateway_call_one_pending_per_booking",
            ),
            models.UniqueConstraint(fields=["booking", "operation", "number"], name="gateway_call_unique_attempt"),
            models.CheckConstraint(
                condition=models.Q(operation__in=["authorize", "capture", "void", "refund"]),
                name="gateway_call_operation_valid",
            ),
            models.CheckConstraint(
                condition=models.Q(status__in=["pending", "succeeded", "failed"]), name="gateway_call_status_valid"
            ),
            models.CheckConstraint(condition=models.Q(amount__gte=0), name="gateway_call_amount_not_negative"),
        ]
        indexes = [
            models.Index(fields=["next_try_at"], condition=models.Q(status="pending"), name="gateway_call_pending_idx"),
        ]

    def __str__(self):
        return f"{self.idempotency_key} ({self.status})"


class RefundRequest(models.Model):
    """A refund a person chose that is above the second-approval threshold, waiting for a second person.

    Written only by `payments.services.refunds`; approving it makes the refund through the same
    refund rule (`refund_policy_check`) as every other door.
    """

    class Status(models.TextChoices):
        AWAITING_APPROVAL = "awaiting_approval", "Awaiting approval"
        REFUNDED = "refunded", "Refunded"
        REJECTED = "rejected", "Rejected"

    class Door(models.TextChoices):
        CANCEL = "cancel", "Booking cancellation"
        MANUAL = "manual", "Manual refund"

    payment = models.ForeignKey(Payment, on_delete=models.PROTECT, related_name="refund_requests")
    amount = AmountField()
    currency = CurrencyField()
    door = models.CharField(max_length=16, choices=Door.choices)
    reason = models.TextField()
    # The refund's own idempotency key: approving twice refunds once.
    idempotency_key = models.CharField(max_length=128, unique=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.AWAITING_APPROVAL)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    refund = models.ForeignKey(Refund, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=models.Q(amount__gt=0), name="refund_request_amount_positive"),
            models.CheckConstraint(
                condition=models.Q(status__in=["awaiting_approval", "refunded", "rejected"]),
                name="refund_request_status_valid",
            ),
            models.CheckConstraint(
                condition=models.Q(decided_by__isnull=True) | ~models.Q(decided_by=models.F("requested_by")),
                name="refund_request_four_eyes",
            ),
        ]

    def __str__(self):
        return f"Refund request #{self.pk} of {self.amount} {self.currency} ({self.get_status_display().lower()})"
