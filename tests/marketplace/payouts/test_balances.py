"""Partner balances from the ledger: refunds and chargebacks after a payout are netted by the next
payouts, currencies are never added together, manual adjustments are four-eyes ledger postings.

Every expected amount is worked out by hand in the test (15% commission, fee half up to the cent).
"""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db.models import F
from django.utils import timezone

from marketplace.accounts.services import StaffGroup
from marketplace.audit.models import Event
from marketplace.core.exceptions import InvalidInput, NotPermitted
from marketplace.ledger.models import LedgerEntry
from marketplace.partners.models import PartnerMembership
from marketplace.payments.models import Payment
from marketplace.payments.services import payment_refund
from marketplace.payouts.adjustments import adjustment_approve, adjustment_create
from marketplace.payouts.balances import partner_balances
from marketplace.payouts.chargebacks import payment_chargeback
from marketplace.payouts.models import BalanceAdjustment, Payout
from marketplace.payouts.reconciliation import ledger_reconcile, ledger_reconcile_check
from marketplace.payouts.runs import payout_run_execute
from marketplace.payouts.selectors import payout_run_preview
from marketplace.payouts.services import payout_create
from tests.factories import PartnerFactory, PayoutAccountFactory, UserFactory
from tests.factories.flows import settled_booking
from tests.factories.settlement import staff

P = Payout.Status
pytestmark = pytest.mark.django_db
D = Decimal


@pytest.fixture
def run(django_capture_on_commit_callbacks):
    def go():
        with django_capture_on_commit_callbacks(execute=True):
            return payout_run_execute()

    return go


@pytest.fixture
def partner():
    partner = PartnerFactory(name="Alpha")
    PayoutAccountFactory(partner=partner)
    PartnerMembership.objects.create(partner=partner, user=UserFactory(), role=PartnerMembership.Role.OWNER)
    return partner


def booked(partner, amount: str, fee: str, currency: str = "EUR", **kwargs):
    """A settled, captured booking past its hold and dispute window; the fee written by hand."""
    return settled_booking(
        listing__partner=partner,
        listing__currency=currency,
        amount=D(amount),
        platform_fee=D(fee),
        commission_rate=D("0.15"),
        currency=currency,
        **kwargs,
    )


def test_refund_after_the_payout_is_paid_reduces_the_next_payout_by_exactly_its_provider_share(run, partner):
    # given a 100.00 booking (fee 15.00) paid out: 85.00
    first = booked(partner, "100.00", "15.00")
    run()
    paid = Payout.objects.get(partner=partner)
    assert (paid.status, paid.amount) == (P.PAID, D("85.00"))
    # when Finance refunds 40.00 of it afterwards: fee back 40 * 15/100 = 6.00, provider's share 34.00
    refund = payment_refund(
        payment=Payment.objects.get(booking=first),
        amount=D("40.00"),
        actor=None,
        reason="Goodwill after payout",
        idempotency_key="manual:1",
    )
    assert (refund.platform_share, refund.provider_share) == (D("6.00"), D("34.00"))
    # then the partner owes 34.00, the ledger says so, and the books still reconcile
    balance = partner_balances(partner_ids=[partner.pk])[(partner.pk, "EUR")]
    assert (balance.owed, balance.carried, balance.payable_now) == (D("-34.00"), D("-34.00"), D("-34.00"))
    assert ledger_reconcile().balanced
    assert payout_run_preview() == {}
    # when the next booking of 200.00 (fee 30.00, share 170.00) is paid out
    booked(partner, "200.00", "30.00")
    assert payout_run_preview() == {(partner.pk, "EUR"): (1, D("136.00"))}
    run()
    # then that payout is 170.00 - 34.00 = 136.00, carrying -34.00, and the balance is back at zero
    second = Payout.objects.exclude(pk=paid.pk).get(partner=partner)
    assert (second.status, second.amount, second.carried) == (P.PAID, D("136.00"), D("-34.00"))
    assert sum(second.items.values_list("amount", flat=True)) == D("170.00")
    balance = partner_balances(partner_ids=[partner.pk])[(partner.pk, "EUR")]
    assert (balance.owed, balance.carried) == (D("0.00"), D("0.00"))
    assert ledger_reconcile().balanced


def test_negative_balance_larger_than_the_next_booking_waits_and_is_netted_later(run, partner):
    # given a paid-out 100.00 booking (85.00) charged back in full: the partner owes 85.00
    first = booked(partner, "100.00", "15.00")
    run()
    payment_chargeback(payment=Payment.objects.get(booking=first), amount=D("100.00"), reference="cb_1", reason="fraud")
    # when a 50.00 booking (fee 7.50, share 42.50) settles
    booked(partner, "50.00", "7.50")
    run()
    # then nothing is paid: 42.50 - 85.00 < 0 stays on the books
    assert Payout.objects.filter(partner=partner).count() == 1
    assert partner_balances(partner_ids=[partner.pk])[(partner.pk, "EUR")].payable_now == D("-42.50")
    # when a 120.00 booking (fee 18.00, share 102.00) settles too
    booked(partner, "120.00", "18.00")
    run()
    # then the next payout pays 42.50 + 102.00 - 85.00 = 59.50 and the balance is settled
    latest = Payout.objects.filter(partner=partner).latest("pk")
    assert (latest.status, latest.amount, latest.carried, latest.items.count()) == (P.PAID, D("59.50"), D("-85.00"), 2)
    assert partner_balances(partner_ids=[partner.pk])[(partner.pk, "EUR")].owed == D("0.00")
    assert ledger_reconcile().balanced


def test_payout_create_refuses_bookings_of_two_currencies(partner):
    # given a EUR and a USD booking of one partner
    eur, usd = booked(partner, "100.00", "15.00"), booked(partner, "100.00", "15.00", currency="USD")
    # when one payout is asked for both, then it is refused and nothing is written
    with pytest.raises(InvalidInput, match="one currency"):
        payout_create(partner=partner, bookings=[eur, usd])
    assert not Payout.objects.exists()


def test_run_and_preview_keep_currencies_apart(run, partner):
    # given 100.00 EUR (share 85.00) and 2 x 60.00 USD (fee 9.00, share 51.00 each)
    booked(partner, "100.00", "15.00")
    booked(partner, "60.00", "9.00", currency="USD")
    booked(partner, "60.00", "9.00", currency="USD")
    # then the preview and the run give one payout per currency, never a sum across them
    assert payout_run_preview() == {(partner.pk, "EUR"): (1, D("85.00")), (partner.pk, "USD"): (2, D("102.00"))}
    run()
    assert set(Payout.objects.values_list("currency", "amount", "status")) == {
        ("EUR", D("85.00"), P.PAID),
        ("USD", D("102.00"), P.PAID),
    }
    totals = ledger_reconcile().totals
    assert (totals["EUR"]["payouts"], totals["USD"]["payouts"]) == (D("85.00"), D("102.00"))


def test_approval_threshold_is_per_currency(run, partner, settings):
    # given thresholds of 1000 EUR and 50 GBP, and a GBP booking of 100.00 (share 85.00)
    settings.MARKETPLACE_PAYOUT_APPROVAL_ABOVE = {"EUR": D("1000"), "USD": D("1000"), "GBP": D("50")}
    booked(partner, "100.00", "15.00", currency="GBP")
    booked(partner, "100.00", "15.00")
    run()
    # then the GBP payout waits for a person, the EUR one is paid
    assert dict(Payout.objects.values_list("currency", "status")) == {"GBP": P.READY, "EUR": P.PAID}


def test_booking_inside_its_dispute_window_is_not_paid_even_past_the_hold(run, partner):
    # given a booking completed 10 days ago (past the 7-day hold) whose dispute window ends tomorrow
    booking = booked(partner, "100.00", "15.00", window_open=True)
    # when the run goes, then nothing is paid until the window closes
    run()
    assert not Payout.objects.exists()
    type(booking).objects.filter(pk=booking.pk).update(dispute_window_ends_at=timezone.now() - timedelta(minutes=1))
    run()
    assert Payout.objects.get().amount == D("85.00")


def test_adjustment_credit_under_the_threshold_is_posted_and_paid_by_the_next_run(run, partner):
    # given Finance credits 20.00 EUR (threshold 250.00)
    finance = staff(StaffGroup.FINANCE)
    adjustment = adjustment_create(partner=partner, amount=D("20.00"), currency="EUR", reason="Goodwill", actor=finance)
    # then it is posted at once: the partner is owed 20.00 and the platform's revenue is 20.00 lower
    assert adjustment.status == BalanceAdjustment.Status.POSTED
    entries = set(LedgerEntry.objects.values_list("account", "partner_id", "amount"))
    assert entries == {("platform_revenue", None, D("20.00")), ("provider_payable", partner.pk, D("-20.00"))}
    assert ledger_reconcile().balanced
    # and a 100.00 booking (share 85.00) is paid with it: 105.00, carrying 20.00
    booked(partner, "100.00", "15.00")
    run()
    payout = Payout.objects.get()
    assert (payout.amount, payout.carried, payout.status) == (D("105.00"), D("20.00"), P.PAID)


def test_adjustment_above_the_threshold_waits_for_a_second_person(partner):
    # given Finance debits 300.00 EUR (threshold 250.00)
    first, second = staff(StaffGroup.FINANCE), staff(StaffGroup.FINANCE)
    adjustment = adjustment_create(
        partner=partner, amount=D("-300.00"), currency="EUR", reason="Recovered overpayment", actor=first
    )
    # then nothing is posted until someone else approves; the requester cannot
    assert adjustment.status == BalanceAdjustment.Status.AWAITING_APPROVAL
    assert not LedgerEntry.objects.exists()
    with pytest.raises(NotPermitted, match="second person"):
        adjustment_approve(adjustment=adjustment, actor=first)
    adjustment_approve(adjustment=adjustment, actor=second)
    adjustment.refresh_from_db()
    assert (adjustment.status, adjustment.approved_by) == (BalanceAdjustment.Status.POSTED, second)
    assert partner_balances(partner_ids=[partner.pk])[(partner.pk, "EUR")].owed == D("-300.00")
    assert Event.objects.filter(verb="adjustment.approved", target_id=str(partner.pk)).count() == 1
    assert ledger_reconcile().balanced


def test_adjustment_refused_without_permission_or_in_another_currency(partner):
    # given an agent (no adjustment permission) and Finance
    agent, finance = staff(StaffGroup.OPERATIONS_AGENT, scope=partner), staff(StaffGroup.FINANCE)
    with pytest.raises(NotPermitted):
        adjustment_create(partner=partner, amount=D("5.00"), currency="EUR", reason="x", actor=agent)
    with pytest.raises(InvalidInput, match="not accepted"):
        adjustment_create(partner=partner, amount=D("5.00"), currency="XYZ", reason="x", actor=finance)
    assert not BalanceAdjustment.objects.exists()


def test_reconciliation_alerts_finance_on_a_balance_negative_for_too_long(run, partner, settings):
    # given a paid-out booking charged back 40 days ago (the alert age is 30 days)
    settings.MARKETPLACE_NEGATIVE_BALANCE_ALERT_DAYS = 30
    finance = staff(StaffGroup.FINANCE)
    first = booked(partner, "100.00", "15.00")
    run()
    payment_chargeback(payment=Payment.objects.get(booking=first), amount=D("40.00"), reference="cb_9", reason="x")
    # (the whole history moved 40 days and an hour back, in order)
    LedgerEntry.objects.update(created_at=F("created_at") - timedelta(days=40, hours=1))
    # when the reconciliation check runs twice
    check = ledger_reconcile_check()
    ledger_reconcile_check()
    # then the books balance, the 34.00 owed for 40 days is flagged, and Finance is told once
    assert check.balanced
    [row] = check.negative_balances
    assert (row["partner"], row["currency"], row["balance"], row["days"], row["alert"]) == (
        partner.pk,
        "EUR",
        "-34.00",
        40,
        True,
    )
    assert Event.objects.filter(verb="ledger.negative_balance", target_id=str(partner.pk)).count() == 1
    assert finance.notifications.filter(verb="ledger.negative_balance").count() == 1
