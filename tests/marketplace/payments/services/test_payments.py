"""Capture and refund of a booking's payment, with the ledger postings each movement makes."""

from decimal import Decimal

import pytest
from django.db import transaction
from django.db.models import Sum

from marketplace.audit.models import Event
from marketplace.core.exceptions import InvalidInput, PaymentFailed, TransitionNotAllowed
from marketplace.ledger.models import LedgerEntry, LedgerTransaction
from marketplace.payments.models import Payment, Refund
from marketplace.payments.services import booking_accept, payment_capture, payment_refund
from marketplace.payouts.reconciliation import ledger_reconcile
from tests.factories import flows

pytestmark = pytest.mark.django_db

A = LedgerEntry.Account
K = LedgerTransaction.Kind


def booking_of(amount: str, fee: str, status: str = "completed"):
    """A booking of `amount` whose agreed platform fee is `fee`, brought to `status`."""
    amount, fee = Decimal(amount), Decimal(fee)
    return flows.booking_in(
        status, amount=amount, platform_fee=fee, commission_rate=(fee / amount).quantize(Decimal("0.0001"))
    )


def legs(txn: LedgerTransaction) -> set[tuple[str, int | None, Decimal]]:
    return set(txn.entries.values_list("account", "partner_id", "amount"))


def txn_sum(txn: LedgerTransaction) -> Decimal:
    return txn.entries.aggregate(total=Sum("amount"))["total"]


def snapshot(payment: Payment) -> dict:
    """Everything a refund may change, counted."""
    payment.refresh_from_db()
    return {
        "payment": (payment.status, payment.refunded_amount, payment.updated_at),
        "refunds": Refund.objects.count(),
        "ledger_transactions": LedgerTransaction.objects.count(),
        "ledger_entries": LedgerEntry.objects.count(),
        "audit_events": Event.objects.count(),
    }


def refund(payment: Payment, amount: str, key: str) -> Refund:
    return payment_refund(payment=payment, amount=Decimal(amount), actor=None, reason="test", idempotency_key=key)


# --- capture ----------------------------------------------------------------------------------


def test_payment_capture_posts_capture_and_fee_transactions_that_each_sum_to_zero():
    # given an authorised booking of 123.45 with a fee of 18.52
    booking = booking_of("123.45", "18.52", status="authorized")

    # when the provider accepts it
    booking_accept(booking=booking, actor=booking.provider)

    # then the payment is captured in full
    payment = Payment.objects.get(booking=booking)
    assert payment.status == Payment.Status.CAPTURED
    assert payment.captured_amount == Decimal("123.45")
    assert payment.captured_at is not None
    # and a capture and a fee transaction are posted, each balanced
    capture = LedgerTransaction.objects.get(kind=K.CAPTURE)
    fee = LedgerTransaction.objects.get(kind=K.PLATFORM_FEE)
    assert capture.source == fee.source == f"payments.payment:{payment.pk}"
    assert capture.booking_id == fee.booking_id == booking.pk
    assert legs(capture) == {
        (A.CASH, None, Decimal("123.45")),
        (A.PROVIDER_PAYABLE, booking.partner_id, Decimal("-123.45")),
    }
    assert legs(fee) == {
        (A.PROVIDER_PAYABLE, booking.partner_id, Decimal("18.52")),
        (A.PLATFORM_REVENUE, None, Decimal("-18.52")),
    }
    assert txn_sum(capture) == txn_sum(fee) == Decimal("0.00")
    # and the capture is in the audit log
    event = Event.objects.get(verb="payment.captured", target_id=str(payment.pk))
    assert (event.from_state, event.to_state, event.actor_id) == ("authorized", "captured", booking.provider_id)
    assert event.data["amount"] == "123.45"
    # and the books balance
    assert ledger_reconcile().balanced


def test_payment_capture_of_captured_payment_raises_transition_not_allowed():
    # given a captured payment
    booking = booking_of("100.00", "15.00", status="accepted")
    payment = Payment.objects.get(booking=booking)
    entries = LedgerEntry.objects.count()

    # when it is captured again
    with pytest.raises(TransitionNotAllowed) as exc, transaction.atomic():
        payment_capture(payment=payment, booking=booking, actor=booking.provider)

    # then it is refused by name and nothing is posted twice
    assert exc.value.message == f"Payment #{payment.pk} is 'captured': cannot capture."
    assert LedgerEntry.objects.count() == entries


def test_payment_capture_gateway_failure_writes_nothing(sandbox_gateway):
    # given an authorised booking and a gateway that will refuse the capture
    booking = booking_of("100.00", "15.00", status="authorized")
    sandbox_gateway.fail_next("capture")
    events = Event.objects.count()

    # when the provider accepts it
    with pytest.raises(PaymentFailed, match="refused to capture"):
        booking_accept(booking=booking, actor=booking.provider)

    # then the booking and the payment stay as they were, with no ledger posting and no audit
    booking.refresh_from_db()
    payment = Payment.objects.get(booking=booking)
    assert booking.status == "authorized"
    assert (payment.status, payment.captured_amount) == ("authorized", Decimal("0.00"))
    assert not LedgerTransaction.objects.exists()
    assert Event.objects.count() == events


# --- refund -----------------------------------------------------------------------------------


def test_payment_refund_partial_splits_provider_and_platform_shares_in_proportion():
    # given a captured payment of 100.00 with a 15.00 fee
    booking = booking_of("100.00", "15.00")
    payment = Payment.objects.get(booking=booking)

    # when 33.33 is refunded
    result = refund(payment, "33.33", "r-1")

    # then the platform gives back 15% of it (4.9995 -> 5.00) and the provider the rest
    assert (result.amount, result.platform_share, result.provider_share) == (
        Decimal("33.33"),
        Decimal("5.00"),
        Decimal("28.33"),
    )
    payment.refresh_from_db()
    assert (payment.status, payment.refunded_amount, payment.refundable) == (
        "partially_refunded",
        Decimal("33.33"),
        Decimal("66.67"),
    )
    # and the refund is posted as one balanced transaction
    txn = LedgerTransaction.objects.get(kind=K.REFUND)
    assert txn.source == f"payments.refund:{result.pk}"
    assert legs(txn) == {
        (A.PROVIDER_PAYABLE, booking.partner_id, Decimal("28.33")),
        (A.PLATFORM_REVENUE, None, Decimal("5.00")),
        (A.CASH, None, Decimal("-33.33")),
    }
    assert txn_sum(txn) == Decimal("0.00")
    event = Event.objects.get(verb="payment.refunded", target_id=str(payment.pk))
    assert (event.from_state, event.to_state, event.data["amount"]) == ("captured", "partially_refunded", "33.33")
    assert ledger_reconcile().balanced


def test_payment_refund_last_refund_takes_exactly_what_is_left():
    # given 10.00 captured with a 1.25 fee, refunded 3.33 twice; the first gives back 0.42 of fee (0.41625)
    booking = booking_of("10.00", "1.25")
    payment = Payment.objects.get(booking=booking)
    first, second = refund(payment, "3.33", "r-1"), refund(payment, "3.33", "r-2")
    assert (first.platform_share, first.provider_share) == (Decimal("0.42"), Decimal("2.91"))

    # when the last 3.34 is refunded
    last = refund(payment, "3.34", "r-3")

    # then it takes exactly the fee and the provider's part that are left, whatever the rounding before
    assert last.platform_share == Decimal("1.25") - first.platform_share - second.platform_share
    assert last.provider_share == Decimal("8.75") - first.provider_share - second.provider_share
    assert all(r.platform_share >= 0 and r.provider_share >= 0 for r in (first, second, last))
    refunds = Refund.objects.filter(payment=payment)
    assert refunds.aggregate(s=Sum("platform_share"))["s"] == Decimal("1.25")
    assert refunds.aggregate(s=Sum("provider_share"))["s"] == Decimal("8.75")
    payment.refresh_from_db()
    assert (payment.status, payment.refunded_amount) == ("refunded", Decimal("10.00"))
    assert ledger_reconcile().balanced


def test_payment_refund_full_in_one_go_returns_every_share():
    # given a captured payment of 80.00 with a 12.00 fee
    booking = booking_of("80.00", "12.00")
    payment = Payment.objects.get(booking=booking)

    # when all of it is refunded
    result = refund(payment, "80.00", "r-1")

    # then the provider gives back 68.00 and the platform its 12.00
    assert (result.provider_share, result.platform_share) == (Decimal("68.00"), Decimal("12.00"))
    payment.refresh_from_db()
    assert (payment.status, payment.refundable) == ("refunded", Decimal("0.00"))
    reconciliation = ledger_reconcile()
    assert reconciliation.balanced
    assert reconciliation.totals["EUR"]["cash"] == reconciliation.totals["EUR"]["provider_payable"] == Decimal("0.00")
    assert reconciliation.totals["EUR"]["platform_revenue"] == Decimal("0.00")


@pytest.mark.parametrize(
    "amount, fee, refunds",
    [
        ("100.00", "15.00", ["0.01", "0.01", "0.01", "99.97"]),
        ("0.07", "0.01", ["0.01", "0.01", "0.05"]),
        ("999.99", "333.33", ["333.33", "333.33", "333.33"]),
        ("19.99", "19.99", ["5.00", "14.99"]),
        ("250.00", "0.00", ["125.00", "125.00"]),
    ],
)
def test_payment_refund_shares_sum_to_what_was_captured(amount, fee, refunds):
    # given a captured payment
    booking = booking_of(amount, fee)
    payment = Payment.objects.get(booking=booking)

    # when it is refunded in several parts down to nothing
    made = [refund(payment, value, f"r-{i}") for i, value in enumerate(refunds)]

    # then every share is >= 0, and the platform shares add up to the fee, the provider shares to the rest
    assert all(r.provider_share >= 0 and r.platform_share >= 0 for r in made)
    assert sum(r.platform_share for r in made) == Decimal(fee)
    assert sum(r.provider_share for r in made) == Decimal(amount) - Decimal(fee)
    assert ledger_reconcile().balanced


def test_payment_refund_many_small_parts_never_gives_a_negative_share():
    # given 100.00 captured with a 15.00 fee, refunded 20.03 four times and 19.87 once: the fee share
    # of each is rounded down (3.0045 -> 3.00), so the provider has given back more than 85% so far
    booking = booking_of("100.00", "15.00")
    payment = Payment.objects.get(booking=booking)
    for i, value in enumerate(["20.03", "20.03", "20.03", "20.03", "19.87"]):
        refund(payment, value, f"r-{i}")

    # when the last cent is refunded
    last = refund(payment, "0.01", "r-last")

    # then it is split without a negative share, and the shares add up to what was captured
    assert last.provider_share >= 0 and last.platform_share >= 0
    refunds = Refund.objects.filter(payment=payment)
    assert refunds.aggregate(s=Sum("platform_share"))["s"] == Decimal("15.00")
    assert refunds.aggregate(s=Sum("provider_share"))["s"] == Decimal("85.00")
    assert ledger_reconcile().balanced


def test_payment_refund_larger_than_refundable_raises_and_changes_nothing(sandbox_gateway):
    # given 100.00 captured of which 40.00 is refunded already
    booking = booking_of("100.00", "15.00")
    payment = Payment.objects.get(booking=booking)
    refund(payment, "40.00", "r-1")
    before = snapshot(payment)
    gateway_calls = len(sandbox_gateway.calls)

    # when 60.01 is refunded
    with pytest.raises(InvalidInput) as exc:
        refund(payment, "60.01", "r-2")

    # then it is refused with the amount left, and no row changed, nothing reached the gateway
    assert exc.value.message == (
        f"A refund of 60.01 EUR exceeds the 60.00 EUR left to refund on payment #{payment.pk}."
    )
    assert snapshot(payment) == before
    assert payment.refunded_amount == Decimal("40.00")
    assert not Refund.objects.filter(idempotency_key="r-2").exists()
    assert len(sandbox_gateway.calls) == gateway_calls
    assert ledger_reconcile().balanced


def test_payment_refund_same_idempotency_key_twice_returns_the_same_refund(sandbox_gateway):
    # given a captured payment refunded 25.00 under key "dispute:7"
    booking = booking_of("100.00", "15.00")
    payment = Payment.objects.get(booking=booking)
    first = refund(payment, "25.00", "dispute:7")
    before = snapshot(payment)

    # when the same refund is asked again with the same key
    again = refund(payment, "25.00", "dispute:7")

    # then the first refund comes back and nothing moves twice
    assert again.pk == first.pk
    assert snapshot(payment) == before
    assert payment.refunded_amount == Decimal("25.00")
    assert LedgerTransaction.objects.filter(kind=K.REFUND).count() == 1
    assert [call for call in sandbox_gateway.calls if call[0] == "refund"] == [("refund", "refund:dispute:7:attempt:1")]


@pytest.mark.parametrize("amount", ["0", "-5.00", "0.004"])
def test_payment_refund_of_nothing_raises_invalid_input(amount):
    # given a captured payment
    payment = Payment.objects.get(booking=booking_of("100.00", "15.00"))
    before = snapshot(payment)

    # when zero, a negative amount or less than a cent is refunded
    with pytest.raises(InvalidInput, match="A refund must be more than zero."):
        refund(payment, amount, "r-1")

    # then nothing changed
    assert snapshot(payment) == before


def test_payment_refund_of_uncaptured_payment_raises_transition_not_allowed():
    # given an authorised (not captured) payment
    payment = Payment.objects.get(booking=booking_of("100.00", "15.00", status="authorized"))
    before = snapshot(payment)

    # when it is refunded
    with pytest.raises(TransitionNotAllowed) as exc:
        refund(payment, "10.00", "r-1")

    # then it is refused by name and state
    assert exc.value.message == f"Payment #{payment.pk} is 'authorized': cannot refund."
    assert snapshot(payment) == before


def test_payment_refund_of_fully_refunded_payment_raises_transition_not_allowed():
    # given a payment refunded in full
    payment = Payment.objects.get(booking=booking_of("100.00", "15.00"))
    refund(payment, "100.00", "r-1")
    before = snapshot(payment)

    # when anything more is refunded
    with pytest.raises(TransitionNotAllowed) as exc:
        refund(payment, "0.01", "r-2")

    # then it is refused and nothing changed
    assert exc.value.message == f"Payment #{payment.pk} is 'refunded': cannot refund."
    assert snapshot(payment) == before


def test_payment_refund_gateway_failure_writes_nothing(sandbox_gateway):
    # given a captured payment and a gateway that will refuse the refund
    payment = Payment.objects.get(booking=booking_of("100.00", "15.00"))
    before = snapshot(payment)
    sandbox_gateway.fail_next("refund")

    # when a refund is made
    with pytest.raises(PaymentFailed, match="refused the refund"):
        refund(payment, "10.00", "r-1")

    # then nothing changed, and the same key can be used again once the gateway answers
    assert snapshot(payment) == before
    assert refund(payment, "10.00", "r-1").amount == Decimal("10.00")
