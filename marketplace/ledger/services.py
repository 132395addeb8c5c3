"""Posting to the double-entry ledger. Every money movement calls exactly one function here."""

import time
from datetime import timedelta
from decimal import Decimal

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from marketplace.audit.services import event_record
from marketplace.core.locks import single_flight
from marketplace.core.money import ZERO
from marketplace.ledger.models import LedgerEntry, LedgerTransaction, ReconciliationCheck
from marketplace.ledger.selectors import Reconciliation, ledger_reconcile

A = LedgerEntry.Account
K = LedgerTransaction.Kind


class UnbalancedPosting(Exception):
    """A programming error: the legs of a posting do not sum to zero."""


def ledger_post(
    *,
    kind: str,
    source: str,
    idempotency_key: str,
    currency: str,
    legs: list[tuple[str, int | None, Decimal]],
    booking_id: int | None = None,
    memo: str = "",
) -> LedgerTransaction:
    """Write one balanced transaction. `legs` are (account, partner_id, signed amount).

    Posting the same `idempotency_key` twice returns the first transaction and writes nothing.
    """
    legs = [(account, partner_id, amount) for account, partner_id, amount in legs if amount != ZERO]
    if sum((amount for _, _, amount in legs), ZERO) != ZERO:
        raise UnbalancedPosting(f"{kind} {source}: legs sum to {sum(a for _, _, a in legs)}")
    try:
        with transaction.atomic():
            txn = LedgerTransaction.objects.create(
                kind=kind,
                source=source,
                idempotency_key=idempotency_key,
                currency=currency,
                booking_id=booking_id,
                memo=memo,
            )
    except IntegrityError:
        return LedgerTransaction.objects.get(idempotency_key=idempotency_key)
    LedgerEntry.objects.bulk_create(
        LedgerEntry(transaction=txn, account=account, partner_id=partner_id, amount=amount, currency=currency)
        for account, partner_id, amount in legs
    )
    return txn


def ledger_post_capture(*, payment, booking) -> None:
    """The client's money arrives: all of it is owed to the provider until the fee is taken."""
    ledger_post(
        kind=K.CAPTURE,
        source=f"payments.payment:{payment.pk}",
        idempotency_key=f"capture:{payment.pk}",
        currency=payment.currency,
        booking_id=booking.pk,
        legs=[
            (A.CASH, None, payment.captured_amount),
            (A.PROVIDER_PAYABLE, booking.partner_id, -payment.captured_amount),
        ],
    )
    ledger_post(
        kind=K.PLATFORM_FEE,
        source=f"payments.payment:{payment.pk}",
        idempotency_key=f"fee:{payment.pk}",
        currency=payment.currency,
        booking_id=booking.pk,
        legs=[
            (A.PROVIDER_PAYABLE, booking.partner_id, booking.platform_fee),
            (A.PLATFORM_REVENUE, None, -booking.platform_fee),
        ],
    )


def ledger_post_refund(*, refund, booking) -> None:
    """Money goes back to the client, taken from the provider's share and the platform's fee."""
    ledger_post(
        kind=K.REFUND,
        source=f"payments.refund:{refund.pk}",
        idempotency_key=f"refund:{refund.pk}",
        currency=refund.currency,
        booking_id=booking.pk,
        legs=[
            (A.PROVIDER_PAYABLE, booking.partner_id, refund.provider_share),
            (A.PLATFORM_REVENUE, None, refund.platform_share),
            (A.CASH, None, -refund.amount),
        ],
    )


def ledger_post_payout(*, payout) -> None:
    """The provider is paid: the payable shrinks and cash leaves."""
    ledger_post(
        kind=K.PAYOUT,
        source=f"payouts.payout:{payout.pk}",
        idempotency_key=f"payout:{payout.pk}",
        currency=payout.currency,
        legs=[(A.PROVIDER_PAYABLE, payout.partner_id, payout.amount), (A.CASH, None, -payout.amount)],
    )


def ledger_post_payout_reversal(*, payout) -> None:
    """A paid payout came back from the bank: the provider is owed the money again."""
    ledger_post(
        kind=K.REVERSAL,
        source=f"payouts.payout:{payout.pk}",
        idempotency_key=f"reversal:{payout.pk}",
        currency=payout.currency,
        legs=[(A.CASH, None, payout.amount), (A.PROVIDER_PAYABLE, payout.partner_id, -payout.amount)],
    )


def _reconcile_in_one_snapshot() -> Reconciliation:
    # The proof is a dozen aggregate queries. Under READ COMMITTED a capture committed between two
    # of them (payment row counted, ledger entries not yet) would look like a mismatch; one
    # REPEATABLE READ, READ ONLY transaction makes every figure come from the same instant. Inside
    # an outer transaction (tests, or a caller's atomic block) the caller's snapshot rules instead.
    if connection.vendor != "postgresql" or connection.in_atomic_block:
        return ledger_reconcile()
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        return ledger_reconcile()


def ledger_reconcile_check() -> ReconciliationCheck | None:
    """Run the reconciliation proof and record its outcome as a `ReconciliationCheck` row.

    A failed proof writes a `ledger.mismatch` audit event naming the check, once per distinct
    finding: a later check that sees exactly the same mismatches records its row (the admin keeps
    showing the alert) but raises no second event. Nothing is ever posted to the ledger here: a
    mismatch is evidence for people to investigate, not something to fix automatically.

    One check runs at a time (a named lock across processes); a check started while another one
    runs returns None at once and writes nothing.
    """
    with single_flight("ledger.reconcile_check") as acquired:
        if not acquired:
            return None
        return _check()


def _check() -> ReconciliationCheck:
    ran_at = timezone.now()
    started = time.monotonic()
    result = _reconcile_in_one_snapshot()
    duration = timedelta(seconds=time.monotonic() - started)
    with transaction.atomic():
        previous = ReconciliationCheck.objects.order_by("-ran_at", "-id").first()
        check = ReconciliationCheck.objects.create(
            ran_at=ran_at,
            balanced=result.balanced,
            totals={name: str(amount) for name, amount in result.totals.items()},
            mismatches=result.mismatches,
            unbalanced_transaction_ids=list(result.unbalanced_transactions),
            duration=duration,
        )
        already_reported = (
            previous is not None
            and not previous.balanced
            and previous.mismatches == check.mismatches
            and previous.unbalanced_transaction_ids == check.unbalanced_transaction_ids
        )
        if not result.balanced and not already_reported:
            event_record(
                verb="ledger.mismatch",
                target=check,
                to_state="mismatch",
                reason=(
                    f"{len(result.mismatches)} account mismatch(es), "
                    f"{len(result.unbalanced_transactions)} unbalanced transaction(s)"
                ),
                data={
                    "check": check.pk,
                    "mismatches": check.mismatches,
                    "unbalanced_transactions": check.unbalanced_transaction_ids,
                    "totals": check.totals,
                },
            )
    return check
