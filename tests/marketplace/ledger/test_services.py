"""Posting to the double-entry ledger: balanced transactions, once per cause."""

from decimal import Decimal

import pytest
from django.db.models import Sum

from marketplace.ledger.models import LedgerEntry, LedgerTransaction
from marketplace.ledger.selectors import ledger_balance
from marketplace.ledger.services import UnbalancedPosting, ledger_post
from marketplace.payouts.reconciliation import ledger_reconcile
from tests.factories import PartnerFactory
from tests.factories.settlement import payout_in

pytestmark = pytest.mark.django_db

A = LedgerEntry.Account
K = LedgerTransaction.Kind


def legs(txn: LedgerTransaction) -> set[tuple[str, int | None, Decimal]]:
    return set(txn.entries.values_list("account", "partner_id", "amount"))


def test_ledger_post_unbalanced_legs_raise_and_write_nothing():
    # given legs that do not sum to zero
    partner = PartnerFactory()
    unbalanced = [(A.CASH, None, Decimal("10.00")), (A.PROVIDER_PAYABLE, partner.pk, Decimal("-9.99"))]

    # when they are posted
    with pytest.raises(UnbalancedPosting, match=r"capture test:1: legs sum to 0.01"):
        ledger_post(kind=K.CAPTURE, source="test:1", idempotency_key="k-1", currency="EUR", legs=unbalanced)

    # then no transaction and no entry is written
    assert not LedgerTransaction.objects.exists()
    assert not LedgerEntry.objects.exists()


def test_ledger_post_same_idempotency_key_twice_writes_once():
    # given a posted transaction
    partner = PartnerFactory()
    legs_ = [(A.CASH, None, Decimal("10.00")), (A.PROVIDER_PAYABLE, partner.pk, Decimal("-10.00"))]
    first = ledger_post(kind=K.CAPTURE, source="test:1", idempotency_key="k-1", currency="EUR", legs=legs_)

    # when the same cause is posted again
    again = ledger_post(kind=K.CAPTURE, source="test:1", idempotency_key="k-1", currency="EUR", legs=legs_)

    # then the first transaction comes back and its two entries are all there is
    assert again.pk == first.pk
    assert LedgerTransaction.objects.count() == 1
    assert LedgerEntry.objects.count() == 2


def test_ledger_post_drops_zero_legs():
    # given a posting with a zero leg (a booking without a fee)
    partner = PartnerFactory()

    # when it is posted
    txn = ledger_post(
        kind=K.PLATFORM_FEE,
        source="test:1",
        idempotency_key="k-1",
        currency="EUR",
        legs=[(A.PROVIDER_PAYABLE, partner.pk, Decimal("0.00")), (A.PLATFORM_REVENUE, None, Decimal("0.00"))],
    )

    # then no zero entry is written (the table refuses them) and the books still balance
    assert not txn.entries.exists()
    assert ledger_reconcile().balanced


def test_ledger_post_payout_when_payout_is_paid():
    # given a booking of 100.00 (fee 15.00) paid out to its partner
    payout = payout_in("paid", amount=Decimal("100.00"), commission_rate=Decimal("0.15"), platform_fee=Decimal("15.00"))

    # then one payout transaction moves 85.00 from the partner's payable out of cash
    txn = LedgerTransaction.objects.get(kind=K.PAYOUT)
    assert txn.source == f"payouts.payout:{payout.pk}"
    assert legs(txn) == {(A.PROVIDER_PAYABLE, payout.partner_id, Decimal("85.00")), (A.CASH, None, Decimal("-85.00"))}
    assert txn.entries.aggregate(total=Sum("amount"))["total"] == Decimal("0.00")
    # and the partner is owed nothing more, cash holds only the platform's fee
    assert ledger_balance(account=A.PROVIDER_PAYABLE, partner_id=payout.partner_id) == Decimal("0.00")
    assert ledger_balance(account=A.CASH) == Decimal("15.00")
    assert ledger_reconcile().balanced


def test_ledger_post_payout_reversal_when_payout_is_reversed():
    # given a payout of 85.00 that was paid and came back from the bank
    payout = payout_in(
        "reversed", amount=Decimal("100.00"), commission_rate=Decimal("0.15"), platform_fee=Decimal("15.00")
    )

    # then one reversal transaction puts the 85.00 back in cash, owed to the partner again
    txn = LedgerTransaction.objects.get(kind=K.REVERSAL)
    assert txn.source == f"payouts.payout:{payout.pk}"
    assert legs(txn) == {(A.CASH, None, Decimal("85.00")), (A.PROVIDER_PAYABLE, payout.partner_id, Decimal("-85.00"))}
    assert txn.entries.aggregate(total=Sum("amount"))["total"] == Decimal("0.00")
    assert ledger_balance(account=A.PROVIDER_PAYABLE, partner_id=payout.partner_id) == Decimal("-85.00")
    assert ledger_balance(account=A.CASH) == Decimal("100.00")
    assert ledger_reconcile().balanced
