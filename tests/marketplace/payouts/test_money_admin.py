"""The money doors in the admin: a manual refund on a booking, refund requests, balance adjustments,
and the carried balance on a payout. Each goes through its service (one rule, audited)."""

from decimal import Decimal

import pytest
from django.urls import reverse

from marketplace.accounts.services import StaffGroup
from marketplace.audit.models import Event
from marketplace.ledger.models import LedgerEntry
from marketplace.payments.models import Payment, Refund, RefundRequest
from marketplace.payouts.models import BalanceAdjustment
from tests.factories import PartnerFactory
from tests.factories.flows import booking_in
from tests.factories.settlement import staff

pytestmark = pytest.mark.django_db
D = Decimal


def _messages(response) -> list[str]:
    return [str(m) for m in response.context["messages"]] if response.context else []


def completed():
    return booking_in("completed", amount=D("1000.00"), platform_fee=D("150.00"), commission_rate=D("0.15"))


def test_booking_refund_step_above_the_threshold_asks_a_second_person_who_approves_in_the_admin(client):
    # given a completed booking of 1,000.00 and a Finance user who refunds 700.00 (> 500.00) by hand
    booking = completed()
    first, second = staff(StaffGroup.FINANCE), staff(StaffGroup.FINANCE)
    client.force_login(first)
    url = reverse("admin:bookings_booking_refund", args=[booking.pk])
    assert client.get(url).status_code == 200
    done = client.post(url, {"amount": "700.00", "reason": "Damaged on arrival"}, follow=True)
    # then nothing is refunded yet; a request waits, and the message says so
    request = RefundRequest.objects.get()
    assert f"{request}." in _messages(done)
    assert "awaiting approval" in str(request)
    assert Payment.objects.get(booking=booking).refunded_amount == D("0.00")
    # when the same user tries to approve it, they are refused
    approve = reverse("admin:payments_refundrequest_approve", args=[request.pk])
    refused = client.post(approve, {}, follow=True)
    assert any("second person" in m for m in _messages(refused))
    assert not Refund.objects.exists()
    # when a second Finance user approves it, 700.00 is refunded once (fee back 105.00)
    client.force_login(second)
    client.post(approve, {}, follow=True)
    client.post(approve, {}, follow=True)  # a double click
    refund = Refund.objects.get()
    assert (refund.amount, refund.platform_share, refund.provider_share) == (D("700.00"), D("105.00"), D("595.00"))
    assert RefundRequest.objects.get().status == RefundRequest.Status.REFUNDED


def test_booking_refund_step_under_the_threshold_refunds_at_once(client):
    booking = completed()
    client.force_login(staff(StaffGroup.FINANCE))
    client.post(
        reverse("admin:bookings_booking_refund", args=[booking.pk]),
        {"amount": "120.00", "reason": "Late"},
        follow=True,
    )
    assert Payment.objects.get(booking=booking).refunded_amount == D("120.00")
    assert not RefundRequest.objects.exists()


def test_adjustment_added_in_the_admin_is_posted_by_the_service_with_an_audit_event(client):
    # given a partner and a Finance user
    partner = PartnerFactory()
    finance = staff(StaffGroup.FINANCE)
    client.force_login(finance)
    # when they add a credit of 30.00 EUR
    response = client.post(
        reverse("admin:payouts_balanceadjustment_add"),
        {"partner": partner.pk, "amount": "30.00", "currency": "EUR", "reason": "Goodwill for a late payout"},
        follow=True,
    )
    # then it is posted: the ledger owes the partner 30.00 more, and the audit log names them
    assert response.status_code == 200
    adjustment = BalanceAdjustment.objects.get()
    assert (adjustment.status, adjustment.requested_by) == (BalanceAdjustment.Status.POSTED, finance)
    assert LedgerEntry.objects.get(account="provider_payable").amount == D("-30.00")
    assert Event.objects.filter(verb="adjustment.posted", actor=finance, target_id=str(partner.pk)).count() == 1


def test_adjustment_in_a_currency_outside_the_allow_list_is_refused_by_the_form(client):
    partner = PartnerFactory()
    client.force_login(staff(StaffGroup.FINANCE))
    response = client.post(
        reverse("admin:payouts_balanceadjustment_add"),
        {"partner": partner.pk, "amount": "30.00", "currency": "XYZ", "reason": "x"},
    )
    assert response.status_code == 200  # the form again, with the error
    assert not BalanceAdjustment.objects.exists()


def test_adjustment_add_is_refused_to_an_agent(client):
    partner = PartnerFactory()
    client.force_login(staff(StaffGroup.OPERATIONS_AGENT, scope=partner))
    response = client.get(reverse("admin:payouts_balanceadjustment_add"))
    assert response.status_code == 403


def test_partner_page_shows_a_negative_balance_carried_forward(client):
    # given a partner paid 85.00 for a 100.00 booking, then charged back 40.00 (provider's share 34.00)
    from django.utils import timezone

    from marketplace.payouts.chargebacks import payment_chargeback
    from marketplace.payouts.services import payout_create
    from tests.factories.flows import settled_booking

    booking = settled_booking(amount=D("100.00"), platform_fee=D("15.00"), commission_rate=D("0.15"))
    payout = payout_create(partner=booking.partner, bookings=[booking])
    from marketplace.ledger.services import ledger_post_payout
    from marketplace.payouts.models import Payout

    Payout.objects.filter(pk=payout.pk).update(status="paid", paid_at=timezone.now())
    payout.refresh_from_db()
    ledger_post_payout(payout=payout)
    payment_chargeback(payment=Payment.objects.get(booking=booking), amount=D("40.00"), reference="cb1", reason="x")
    # when Finance opens the partner's page
    client.force_login(staff(StaffGroup.FINANCE))
    html = client.get(reverse("admin:partners_partner_change", args=[booking.partner_id])).content.decode()
    # then the balance shows the 34.00 owed back, carried forward
    assert 'data-balance="EUR"' in html
    assert 'data-figure="owed">-34.00<' in html
    assert 'data-figure="carried">-34.00<' in html
