"""One refund rule for every door: a chosen refund above the threshold waits for a second person.

Amounts are worked out in the tests (booking of 1,000.00 EUR at 15%: fee 150.00; threshold 500.00 EUR).
"""

from decimal import Decimal

import pytest

from marketplace.accounts.services import StaffGroup
from marketplace.bookings.models import Booking
from marketplace.core.exceptions import NotPermitted
from marketplace.payments.models import Payment, Refund, RefundRequest
from marketplace.payments.services import booking_cancel
from marketplace.payments.services.refunds import (
    NeedsSecondApproval,
    refund_manual,
    refund_request_approve,
    refund_request_reject,
)
from marketplace.payouts.reconciliation import ledger_reconcile
from tests.factories.flows import booking_in
from tests.factories.settlement import staff

pytestmark = pytest.mark.django_db
D = Decimal


def accepted(amount="1000.00", fee="150.00"):
    return booking_in("accepted", amount=D(amount), platform_fee=D(fee), commission_rate=D("0.15"))


def test_booking_cancel_refund_above_the_threshold_waits_for_a_second_person():
    # given an accepted, captured booking of 1,000.00 and a lead who chooses to refund 800.00 (> 500.00)
    booking = accepted()
    lead, finance = staff(StaffGroup.OPERATIONS_LEAD), staff(StaffGroup.FINANCE)
    # when the lead cancels with that refund
    booking_cancel(booking=booking, actor=lead, reason="Provider no-show", refund_amount=D("800.00"))
    # then the booking is cancelled, nothing is refunded yet, and a request waits for approval
    booking.refresh_from_db()
    payment = Payment.objects.get(booking=booking)
    assert (booking.status, payment.refunded_amount) == (Booking.Status.CANCELLED, D("0.00"))
    request = RefundRequest.objects.get(payment=payment)
    assert (request.amount, request.status, request.requested_by) == (D("800.00"), "awaiting_approval", lead)
    # and the lead cannot approve their own request
    with pytest.raises(NotPermitted, match="second person"):
        refund_request_approve(request=request, actor=lead)
    assert not Refund.objects.exists()
    # when Finance approves, twice (a double click)
    refund = refund_request_approve(request=request, actor=finance)
    with pytest.raises(Exception, match="refunded"):
        refund_request_approve(request=request, actor=finance)
    # then 800.00 is refunded once: fee back 800 * 150/1000 = 120.00, provider's share 680.00
    payment.refresh_from_db()
    assert (refund.amount, refund.platform_share, refund.provider_share) == (D("800.00"), D("120.00"), D("680.00"))
    assert (payment.refunded_amount, Refund.objects.count()) == (D("800.00"), 1)
    assert ledger_reconcile().balanced


def test_booking_cancel_refund_at_the_threshold_is_made_at_once():
    # given a lead choosing exactly 500.00 (not above the threshold)
    booking = accepted()
    lead = staff(StaffGroup.OPERATIONS_LEAD)
    booking_cancel(booking=booking, actor=lead, reason="Goodwill", refund_amount=D("500.00"))
    # then it is refunded at once, with no request
    assert Payment.objects.get(booking=booking).refunded_amount == D("500.00")
    assert not RefundRequest.objects.exists()


def test_refund_request_rejected_refunds_nothing():
    booking = accepted()
    lead, finance = staff(StaffGroup.OPERATIONS_LEAD), staff(StaffGroup.FINANCE)
    booking_cancel(booking=booking, actor=lead, reason="No-show", refund_amount=D("900.00"))
    request = RefundRequest.objects.get()
    refund_request_reject(request=request, actor=finance, reason="Policy refund applies")
    request.refresh_from_db()
    assert (request.status, request.decided_by) == ("rejected", finance)
    assert Payment.objects.get(booking=booking).refunded_amount == D("0.00")


def test_manual_refund_by_finance_follows_the_same_rule():
    # given a completed 1,000.00 booking
    booking = booking_in("completed", amount=D("1000.00"), platform_fee=D("150.00"), commission_rate=D("0.15"))
    first, second = staff(StaffGroup.FINANCE), staff(StaffGroup.FINANCE)
    payment = Payment.objects.get(booking=booking)
    # when Finance refunds 100.00 by hand: made at once (fee back 15.00)
    small = refund_manual(payment=payment, amount=D("100.00"), actor=first, reason="Late arrival")
    assert (small.amount, small.platform_share) == (D("100.00"), D("15.00"))
    # when Finance asks for 600.00 more: it waits for someone else
    request = refund_manual(payment=payment, amount=D("600.00"), actor=first, reason="Damage")
    assert isinstance(request, RefundRequest)
    with pytest.raises(NeedsSecondApproval):
        refund_request_approve(request=request, actor=first)
    refund_request_approve(request=request, actor=second)
    payment.refresh_from_db()
    assert payment.refunded_amount == D("700.00")
    assert ledger_reconcile().balanced
