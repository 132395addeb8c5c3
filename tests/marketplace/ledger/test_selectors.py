"""Reading the ledger: balances and the reconciliation proof, to the cent."""

from decimal import Decimal

import pytest
from django.db.models import Sum

from marketplace.ledger.models import LedgerEntry, LedgerTransaction
from marketplace.ledger.selectors import ledger_balance
from marketplace.payments.models import Payment
from marketplace.payments.services import payment_refund
from marketplace.payouts.models import PayoutAttempt
from marketplace.payouts.reconciliation import ledger_reconcile
from marketplace.payouts.services import (
    payout_attempt_process,
    payout_auto_approve,
    payout_create,
    payout_mature,
    payout_reverse,
    payout_submit,
)
from tests.factories import PartnerFactory, flows
from tests.factories.settlement import staff, submissions_not_sent

pytestmark = pytest.mark.django_db

A = LedgerEntry.Account
K = LedgerTransaction.Kind


def every_transaction_sums_to_zero() -> bool:
    totals = LedgerTransaction.objects.annotate(total=Sum("entries__amount")).values_list("total", flat=True)
    return all(total in (None, Decimal("0.00")) for total in totals)


def test_ledger_reconcile_empty_books_are_balanced():
    # given no money moved
    # when the books are reconciled
    result = ledger_reconcile()

    # then they balance at zero
    assert result.balanced
    assert (result.unbalanced_transactions, result.mismatches) == ([], [])
    assert result.totals == {}


def test_ledger_reconcile_balanced_after_each_money_movement():
    # given a completed booking of 200.00 with a 30.00 fee: captured
    booking = flows.settled_booking(
        amount=Decimal("200.00"), commission_rate=Decimal("0.15"), platform_fee=Decimal("30.00")
    )
    result = ledger_reconcile()
    assert result.balanced, result.mismatches
    assert (
        result.totals["EUR"]["cash"],
        result.totals["EUR"]["provider_payable"],
        result.totals["EUR"]["platform_revenue"],
    ) == (
        Decimal("200.00"),
        Decimal("170.00"),
        Decimal("30.00"),
    )

    # when 50.00 is refunded (7.50 of it from the fee)
    payment = Payment.objects.get(booking=booking)
    payment_refund(payment=payment, amount=Decimal("50.00"), actor=None, reason="late", idempotency_key="r-1")
    result = ledger_reconcile()
    assert result.balanced, result.mismatches
    assert (
        result.totals["EUR"]["cash"],
        result.totals["EUR"]["provider_payable"],
        result.totals["EUR"]["platform_revenue"],
    ) == (
        Decimal("150.00"),
        Decimal("127.50"),
        Decimal("22.50"),
    )

    # when the 127.50 owed is paid out
    payout = payout_create(partner=booking.partner, bookings=[booking])
    assert payout.amount == Decimal("127.50")
    payout_mature(payout=payout)
    payout_auto_approve(payout=payout)
    with submissions_not_sent():
        attempt = payout_submit(payout=payout)
    payout_attempt_process(attempt_id=attempt.pk)
    result = ledger_reconcile()
    assert result.balanced, result.mismatches
    assert (
        result.totals["EUR"]["cash"],
        result.totals["EUR"]["provider_payable"],
        result.totals["EUR"]["payouts"],
    ) == (
        Decimal("22.50"),
        Decimal("0.00"),
        Decimal("127.50"),
    )

    # when the payout comes back from the bank
    payout_reverse(payout=payout, actor=staff("Finance"), reason="Account closed")
    result = ledger_reconcile()
    assert result.balanced, result.mismatches
    assert (
        result.totals["EUR"]["cash"],
        result.totals["EUR"]["provider_payable"],
        result.totals["EUR"]["payouts"],
    ) == (
        Decimal("150.00"),
        Decimal("127.50"),
        Decimal("0.00"),
    )

    # then every transaction along the way summed to zero, and cash = payments - refunds - paid payouts
    assert every_transaction_sums_to_zero()
    assert (
        ledger_balance(account=A.CASH)
        == result.totals["EUR"]["payments"] - result.totals["EUR"]["refunds"] - result.totals["EUR"]["payouts"]
    )
    assert set(LedgerTransaction.objects.values_list("kind", flat=True)) == {
        K.CAPTURE,
        K.PLATFORM_FEE,
        K.REFUND,
        K.PAYOUT,
        K.REVERSAL,
    }
    assert PayoutAttempt.objects.get(payout=payout).status == "succeeded"


def test_ledger_reconcile_reports_an_unbalanced_transaction():
    # given a balanced capture of 100.00, then an extra cash entry slipped into its transaction
    booking = flows.settled_booking(
        amount=Decimal("100.00"), commission_rate=Decimal("0.15"), platform_fee=Decimal("15.00")
    )
    capture = LedgerTransaction.objects.get(kind=K.CAPTURE, booking=booking)
    LedgerEntry.objects.create(transaction=capture, account=A.CASH, amount=Decimal("0.01"), currency="EUR")

    # when the books are reconciled
    result = ledger_reconcile()

    # then they do not balance, naming the transaction and the cash account that is a cent off
    assert not result.balanced
    assert result.unbalanced_transactions == [capture.pk]
    assert {"currency": "EUR", "account": "cash", "expected": "100.00", "ledger": "100.01"} in result.mismatches
    assert {"currency": "EUR", "account": "*", "expected": "0.00", "ledger": "0.01"} in result.mismatches


def test_ledger_reconcile_reports_payable_booked_to_the_wrong_partner():
    # given a balanced but wrong transaction that moves 10.00 of one partner's payable to another partner
    booking = flows.settled_booking(
        amount=Decimal("100.00"), commission_rate=Decimal("0.15"), platform_fee=Decimal("15.00")
    )
    other = PartnerFactory()
    txn = LedgerTransaction.objects.create(kind=K.CAPTURE, source="manual:1", idempotency_key="manual:1")
    LedgerEntry.objects.bulk_create(
        [
            LedgerEntry(transaction=txn, account=A.PROVIDER_PAYABLE, partner=booking.partner, amount=Decimal("10.00")),
            LedgerEntry(transaction=txn, account=A.PROVIDER_PAYABLE, partner=other, amount=Decimal("-10.00")),
        ]
    )

    # when the books are reconciled
    result = ledger_reconcile()

    # then every transaction sums to zero, yet both partners' balances are reported off by 10.00
    assert result.unbalanced_transactions == []
    assert not result.balanced
    assert {
        "account": "provider_payable",
        "partner": booking.partner_id,
        "currency": "EUR",
        "expected": "85.00",
        "ledger": "75.00",
    } in (result.mismatches)
    assert {
        "account": "provider_payable",
        "partner": other.pk,
        "currency": "EUR",
        "expected": "0.00",
        "ledger": "10.00",
    } in (result.mismatches)


def test_ledger_balance_per_partner():
    # given two partners with one captured booking each
    first = flows.settled_booking(
        amount=Decimal("100.00"), commission_rate=Decimal("0.10"), platform_fee=Decimal("10.00")
    )
    second = flows.settled_booking(
        amount=Decimal("40.00"), commission_rate=Decimal("0.25"), platform_fee=Decimal("10.00")
    )

    # then each partner's payable is its captures less its fees (credit balances are negative)
    assert ledger_balance(account=A.PROVIDER_PAYABLE, partner_id=first.partner_id) == Decimal("-90.00")
    assert ledger_balance(account=A.PROVIDER_PAYABLE, partner_id=second.partner_id) == Decimal("-30.00")
    assert ledger_balance(account=A.PROVIDER_PAYABLE) == Decimal("-120.00")
    assert ledger_balance(account=A.PLATFORM_REVENUE) == Decimal("-20.00")
