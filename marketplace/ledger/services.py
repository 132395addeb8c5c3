"""Posting to the double-entry ledger. Every money movement calls exactly one function here."""

from decimal import Decimal

from django.db import IntegrityError, transaction

from marketplace.core.money import ZERO
from marketplace.ledger.models import LedgerEntry, LedgerTransaction

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


def ledger_post_adjustment(*, adjustment) -> None:
    """A manual balance adjustment: a credit to the partner is the platform's cost, a debit its income."""
    ledger_post(
        kind=K.ADJUSTMENT,
        source=f"payouts.balanceadjustment:{adjustment.pk}",
        idempotency_key=f"adjustment:{adjustment.pk}",
        currency=adjustment.currency,
        memo=adjustment.reason[:200],
        legs=[
            (A.PLATFORM_REVENUE, None, adjustment.amount),
            (A.PROVIDER_PAYABLE, adjustment.partner_id, -adjustment.amount),
        ],
    )
