from django.conf import settings
from django.db import models

from marketplace.core.money import AmountField, CurrencyField


class PayoutRun(models.Model):
    """One scheduled (or manual) payout run: what it gathered, approved, submitted and skipped.

    A run that was killed stays `running` until a later run marks it `interrupted`; its committed
    batches stand, and the next run carries on from what is left.
    """

    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        FINISHED = "finished", "Finished"
        FAILED = "failed", "Failed"
        INTERRUPTED = "interrupted", "Interrupted"

    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    triggered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    cutoff = models.DateTimeField(help_text="Bookings completed before this are past their hold period.")
    bookings = models.PositiveIntegerField(default=0, help_text="Bookings gathered into new payouts.")
    payouts_created = models.PositiveIntegerField(default=0)
    amount_created = AmountField(default=0)
    auto_approved = models.PositiveIntegerField(default=0)
    needs_approval = models.PositiveIntegerField(default=0, help_text="Ready payouts waiting for a person.")
    submitted = models.PositiveIntegerField(default=0)
    retried = models.PositiveIntegerField(default=0)
    resumed_attempts = models.PositiveIntegerField(default=0)
    held = models.PositiveIntegerField(default=0, help_text="Payouts on hold (open dispute, risk flag, manual).")
    disputed_bookings = models.PositiveIntegerField(default=0, help_text="Past the hold period but disputed.")
    report = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True, default="")
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(status__in=["running", "finished", "failed", "interrupted"]),
                name="payout_run_status_valid",
            ),
        ]

    def __str__(self):
        return f"Payout run #{self.pk}"


class Payout(models.Model):
    """Money owed to one partner for a set of settled bookings, on its way to their account."""

    class Status(models.TextChoices):
        ACCRUING = "accruing", "Accruing"
        ON_HOLD = "on_hold", "On hold"
        READY = "ready", "Ready"
        AWAITING_APPROVAL = "awaiting_approval", "Awaiting approval"
        APPROVED = "approved", "Approved"
        SUBMITTED = "submitted", "Submitted"
        PAID = "paid", "Paid"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"
        REVERSED = "reversed", "Reversed"

    partner = models.ForeignKey("partners.Partner", on_delete=models.PROTECT, related_name="payouts")
    # amount = its items (the bookings it settles) + carried (the rest of the partner's balance:
    # a negative balance left by refunds or chargebacks after earlier payouts, or adjustments).
    amount = AmountField()
    carried = AmountField(
        default=0, help_text="Balance brought forward: negative when earlier refunds or chargebacks are netted here."
    )
    currency = CurrencyField()
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.ACCRUING)
    hold_until = models.DateTimeField(help_text="End of the hold period; the payout matures after it.")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    attempt_count = models.PositiveSmallIntegerField(default=0)
    gateway_reference = models.CharField(max_length=100, blank=True, default="")
    failure_reason = models.TextField(blank=True, default="")
    note = models.TextField(blank=True, default="")
    run = models.ForeignKey(
        PayoutRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="payouts", db_index=False
    )
    # After a failed attempt the system retries on its own, with backoff, a few times; then a person decides.
    next_retry_at = models.DateTimeField(null=True, blank=True)
    approved_at = models.DateTimeField(null=True, blank=True)
    submitted_at = models.DateTimeField(null=True, blank=True)
    paid_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        permissions = [
            ("approve_payout", "Can approve payouts (four-eyes)"),
            ("hold_payout", "Can hold and release payouts"),
        ]
        constraints = [
            models.CheckConstraint(condition=models.Q(amount__gt=0), name="payout_amount_positive"),
            models.CheckConstraint(
                condition=models.Q(
                    status__in=[
                        "accruing",
                        "on_hold",
                        "ready",
                        "awaiting_approval",
                        "approved",
                        "submitted",
                        "paid",
                        "failed",
                        "cancelled",
                        "reversed",
                    ]
                ),
                name="payout_status_valid",
            ),
            models.CheckConstraint(
                condition=models.Q(approved_by__isnull=True)
                | models.Q(requested_by__isnull=True)
                | ~models.Q(approved_by=models.F("requested_by")),
                name="payout_four_eyes",
            ),
        ]
        indexes = [
            models.Index(fields=["partner", "status", "-created_at"], name="payout_partner_status_idx"),
            models.Index(fields=["status", "-created_at"], name="payout_status_created_idx"),
            models.Index(fields=["status", "hold_until"], name="payout_maturity_idx"),
            models.Index(fields=["run", "status"], name="payout_run_status_idx"),
            models.Index(fields=["next_retry_at"], condition=models.Q(status="failed"), name="payout_retry_due_idx"),
        ]

    def __str__(self):
        return f"Payout #{self.pk}"


class PayoutItem(models.Model):
    """One booking settled by a payout. A booking is in at most one live payout."""

    payout = models.ForeignKey(Payout, on_delete=models.CASCADE, related_name="items")
    # No plain index on booking: the partial unique index below serves every lookup that matters
    # (the live item of a booking), and one index fewer makes a payout run's bulk insert cheaper.
    booking = models.ForeignKey(
        "bookings.Booking", on_delete=models.PROTECT, related_name="payout_items", db_index=False
    )
    amount = AmountField()
    is_active = models.BooleanField(default=True, help_text="False once the payout is cancelled.")

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["booking"], condition=models.Q(is_active=True), name="payout_item_one_per_booking"
            ),
            models.CheckConstraint(condition=models.Q(amount__gte=0), name="payout_item_amount_not_negative"),
        ]

    def __str__(self):
        return f"{self.booking} in {self.payout}"


class PayoutHold(models.Model):
    """A reason a payout may not move: an open dispute, a risk flag, or an operator's hold."""

    class Kind(models.TextChoices):
        DISPUTE = "dispute", "Open dispute"
        RISK = "risk", "Risk flag"
        MANUAL = "manual", "Manual"

    payout = models.ForeignKey(Payout, on_delete=models.CASCADE, related_name="holds")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    reason = models.TextField()
    dispute_id = models.BigIntegerField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    released_at = models.DateTimeField(null=True, blank=True)
    released_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["payout", "dispute_id"],
                condition=models.Q(released_at__isnull=True, kind="dispute"),
                name="payout_hold_one_per_dispute",
            ),
        ]
        indexes = [
            models.Index(fields=["payout"], condition=models.Q(released_at__isnull=True), name="payout_hold_active_idx")
        ]

    def __str__(self):
        return f"{self.kind} hold on {self.payout}"


class PayoutAttempt(models.Model):
    """One submission to the gateway. Its idempotency key is payout id + attempt number."""

    class Status(models.TextChoices):
        SUBMITTED = "submitted", "Submitted"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    payout = models.ForeignKey(Payout, on_delete=models.CASCADE, related_name="attempts")
    number = models.PositiveSmallIntegerField()
    idempotency_key = models.CharField(max_length=64, unique=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.SUBMITTED)
    gateway_reference = models.CharField(max_length=100, blank=True, default="")
    error = models.TextField(blank=True, default="")
    # The gateway did not answer (timeout, outage): the same attempt, with the same key, is tried
    # again after `next_try_at`; the gateway's idempotency makes the repeat safe.
    tries = models.PositiveSmallIntegerField(default=0)
    next_try_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["payout", "number"]
        indexes = [
            models.Index(
                fields=["next_try_at"], condition=models.Q(status="submitted"), name="payout_attempt_pending_idx"
            ),
        ]
        constraints = [
            models.UniqueConstraint(fields=["payout", "number"], name="payout_attempt_unique_number"),
        ]

    def __str__(self):
        return self.idempotency_key


class BalanceAdjustment(models.Model):
    """A manual credit (positive) or debit (negative) to a partner's balance in one currency.

    Posted to the ledger when applied; above MARKETPLACE_ADJUSTMENT_SECOND_APPROVAL_ABOVE a second
    person applies it (four-eyes). Written only by `payouts.adjustments` services.
    """

    class Status(models.TextChoices):
        AWAITING_APPROVAL = "awaiting_approval", "Awaiting approval"
        POSTED = "posted", "Posted"
        REJECTED = "rejected", "Rejected"

    partner = models.ForeignKey("partners.Partner", on_delete=models.PROTECT, related_name="balance_adjustments")
    amount = AmountField(help_text="Positive credits the partner, negative debits them.")
    currency = CurrencyField()
    reason = models.TextField()
    status = models.CharField(max_length=20, choices=Status.choices)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        permissions = [("approve_balanceadjustment", "Can approve balance adjustments (four-eyes)")]
        constraints = [
            models.CheckConstraint(condition=~models.Q(amount=0), name="adjustment_not_zero"),
            models.CheckConstraint(
                condition=models.Q(status__in=["awaiting_approval", "posted", "rejected"]),
                name="adjustment_status_valid",
            ),
            models.CheckConstraint(
                condition=models.Q(approved_by__isnull=True) | ~models.Q(approved_by=models.F("requested_by")),
                name="adjustment_four_eyes",
            ),
        ]
        indexes = [models.Index(fields=["partner", "currency", "status"], name="adjustment_partner_idx")]

    def __str__(self):
        return f"Adjustment #{self.pk}: {self.amount} {self.currency}"
