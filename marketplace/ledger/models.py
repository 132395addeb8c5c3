from django.db import models

from marketplace.core.money import AmountField, CurrencyField


class LedgerTransaction(models.Model):
    """One money movement: a set of entries that sum to zero."""

    class Kind(models.TextChoices):
        CAPTURE = "capture", "Capture"
        PLATFORM_FEE = "platform_fee", "Platform fee"
        REFUND = "refund", "Refund"
        PAYOUT = "payout", "Payout"
        REVERSAL = "reversal", "Payout reversal"
        ADJUSTMENT = "adjustment", "Balance adjustment"

    kind = models.CharField(max_length=16, choices=Kind.choices)
    booking = models.ForeignKey("bookings.Booking", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    # What caused it, as "<app>.<model>:<pk>" (payments and payouts sit above the ledger).
    source = models.CharField(max_length=64)
    # One posting per cause and kind: a retried service never posts twice.
    idempotency_key = models.CharField(max_length=128, unique=True)
    currency = CurrencyField()
    memo = models.CharField(max_length=200, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [
            models.Index(fields=["source"], name="ledger_txn_source_idx"),
            models.Index(fields=["kind", "-created_at"], name="ledger_txn_kind_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(kind__in=["capture", "platform_fee", "refund", "payout", "reversal", "adjustment"]),
                name="ledger_txn_kind_valid",
            ),
        ]

    def __str__(self):
        return f"{self.kind} {self.source}"


class LedgerEntry(models.Model):
    """One side of a transaction. Positive amounts are debits, negative amounts credits."""

    class Account(models.TextChoices):
        CASH = "cash", "Cash at the payment gateway"
        PROVIDER_PAYABLE = "provider_payable", "Payable to providers"
        PLATFORM_REVENUE = "platform_revenue", "Platform revenue"

    transaction = models.ForeignKey(LedgerTransaction, on_delete=models.PROTECT, related_name="entries")
    account = models.CharField(max_length=32, choices=Account.choices)
    partner = models.ForeignKey("partners.Partner", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    amount = AmountField()
    currency = CurrencyField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "ledger entries"
        indexes = [
            models.Index(fields=["account", "partner"], name="ledger_entry_account_idx"),
            # A partner's balance per currency, summed from the index alone (payout runs, balances).
            models.Index(
                fields=["partner", "currency"],
                include=["amount"],
                condition=models.Q(account="provider_payable"),
                name="ledger_payable_balance_idx",
            ),
        ]
        constraints = [
            models.CheckConstraint(condition=~models.Q(amount=0), name="ledger_entry_not_zero"),
            models.CheckConstraint(
                condition=models.Q(account__in=["cash", "provider_payable", "platform_revenue"]),
                name="ledger_entry_account_valid",
            ),
            models.CheckConstraint(
                condition=~models.Q(account="provider_payable") | models.Q(partner__isnull=False),
                name="ledger_payable_has_partner",
            ),
        ]

    def __str__(self):
        return f"{self.account} {self.amount} {self.currency}"


class ReconciliationCheck(models.Model):
    """One run of the scheduled reconciliation: what `payouts.reconciliation.ledger_reconcile()` found, kept as evidence.

    Written only by `ledger_reconcile_check()`; never edited. A failed check is investigated by
    people: nothing is ever posted to the ledger to make the books agree.
    """

    ran_at = models.DateTimeField()
    balanced = models.BooleanField()
    # Figures as strings of cents-exact decimals, e.g. {"cash": "170.00", ...}.
    totals = models.JSONField(default=dict)
    # [{"account": ..., "partner": ..., "expected": ..., "ledger": ...}]
    mismatches = models.JSONField(default=list)
    # Ids of ledger transactions whose entries do not sum to zero (the first 100).
    unbalanced_transaction_ids = models.JSONField(default=list)
    # Partners owing the platform money: [{"partner", "currency", "balance", "since", "days", "alert"}]
    negative_balances = models.JSONField(default=list)
    duration = models.DurationField()

    class Meta:
        ordering = ["-ran_at", "-id"]
        indexes = [models.Index(fields=["-ran_at", "-id"], name="ledger_check_ran_at_idx")]

    def __str__(self):
        return f"{'balanced' if self.balanced else 'MISMATCH'} at {self.ran_at:%Y-%m-%d %H:%M:%S}"
