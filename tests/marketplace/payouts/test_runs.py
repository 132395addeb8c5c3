"""The payout run: gather settled bookings into payouts per partner, submit, retry, resume, report."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db.models import Sum
from django.utils import timezone

from marketplace.audit.models import Event
from marketplace.bookings.models import Booking
from marketplace.disputes.models import Dispute
from marketplace.ledger.models import LedgerEntry
from marketplace.notifications.models import Notification
from marketplace.partners.models import PartnerMembership
from marketplace.payments.models import Payment
from marketplace.payouts.models import Payout, PayoutAttempt, PayoutHold, PayoutItem, PayoutRun
from marketplace.payouts.reconciliation import ledger_reconcile
from marketplace.payouts.runs import payout_run_execute
from marketplace.payouts.selectors import payout_run_preview
from tests.factories import PartnerFactory, PayoutAccountFactory, UserFactory
from tests.factories.flows import booking_in, settled_booking
from tests.factories.settlement import PARTIAL_REFUND, dispute_in

P = Payout.Status
pytestmark = pytest.mark.django_db


def _settled(partner, n=1, **kwargs):
    return [settled_booking(listing__partner=partner, **kwargs) for _ in range(n)]


@pytest.fixture
def run_payouts(django_capture_on_commit_callbacks):
    """One payout run, with what it queues on commit (the gateway attempts) run inline as the
    test settings' sync cluster would after a real commit."""

    def run():
        with django_capture_on_commit_callbacks(execute=True):
            return payout_run_execute()

    return run


@pytest.fixture
def partners():
    a, b = PartnerFactory(name="Alpha"), PartnerFactory(name="Beta")
    for partner in (a, b):
        PayoutAccountFactory(partner=partner)
        PartnerMembership.objects.create(partner=partner, user=UserFactory(), role=PartnerMembership.Role.OWNER)
    return a, b


def test_run_pays_each_partner_once_for_its_settled_bookings(run_payouts, partners):
    alpha, beta = partners
    alpha_bookings = _settled(alpha, 2)
    _settled(beta, 1)
    recent = booking_in("completed", listing__partner=alpha)  # still inside the hold period
    assert payout_run_preview() == {
        # each booking: 100.00 at 15% -> fee 15.00, the provider's 85.00
        (alpha.pk, "EUR"): (2, Decimal("170.00")),
        (beta.pk, "EUR"): (1, Decimal("85.00")),
    }

    run = run_payouts()

    assert run.status == PayoutRun.Status.FINISHED
    assert (run.payouts_created, run.bookings, run.auto_approved, run.submitted) == (2, 3, 2, 2)
    assert run.amount_created == Decimal("255.00")
    alpha_payout = Payout.objects.get(partner=alpha)
    assert alpha_payout.status == P.PAID  # tests run tasks inline: the attempt was processed on commit
    assert alpha_payout.amount == Decimal("170.00")
    assert alpha_payout.run_id == run.pk
    assert set(alpha_payout.items.values_list("booking_id", flat=True)) == {b.pk for b in alpha_bookings}
    assert not PayoutItem.objects.filter(booking=recent).exists()
    attempt = alpha_payout.attempts.get()
    assert attempt.idempotency_key == f"payout-{alpha_payout.pk}-attempt-1"
    assert attempt.status == PayoutAttempt.Status.SUCCEEDED
    # The ledger has the payout leg and still reconciles to the cent.
    paid_out = LedgerEntry.objects.filter(transaction__kind="payout", account="cash").aggregate(t=Sum("amount"))["t"]
    assert paid_out == Decimal("-255.00")
    assert ledger_reconcile().balanced
    verbs = list(
        Event.objects.filter(target_type__model="payout", target_id=str(alpha_payout.pk))
        .order_by("pk")
        .values_list("verb", "to_state")
    )
    # created, then each transition of the state machine it went through, as the system in this run
    assert verbs == [
        ("payout.created", P.ACCRUING),
        ("payout.mature", P.READY),
        ("payout.auto_approve", P.APPROVED),
        ("payout.submit", P.SUBMITTED),
        ("payout.mark_paid", P.PAID),
    ]
    run_events = Event.objects.filter(
        target_id=str(alpha_payout.pk),
        verb__in=["payout.created", "payout.mature", "payout.auto_approve", "payout.submit"],
    )
    assert {(e.actor_id, e.data["actor"], e.data["run"]) for e in run_events} == {(None, "system", run.pk)}
    owner = alpha.memberships.get().user
    assert Notification.objects.filter(user=owner, verb="payout.mark_paid", target_id=str(alpha_payout.pk)).count() == 1
    assert Event.objects.filter(verb="payout.run_finished", target_id=str(run.pk)).count() == 1


def test_a_second_run_finds_nothing_to_do(run_payouts, partners):
    alpha, _ = partners
    _settled(alpha, 2)
    run_payouts()
    events = Event.objects.count()

    again = run_payouts()

    assert (again.payouts_created, again.bookings, again.submitted, again.resumed_attempts) == (0, 0, 0, 0)
    assert Payout.objects.count() == 1
    assert Event.objects.count() == events + 1  # only the second run's own "finished" event
    assert payout_run_preview() == {}


def test_refunds_are_netted_to_the_cent(run_payouts, partners):
    alpha, _ = partners
    dispute = dispute_in(Dispute.Status.RESOLVED_PARTIAL_REFUND, listing__partner=alpha)
    booking = Booking.objects.get(pk=dispute.booking_id)
    # The resolved dispute's own payout (made by the dispute workflow, if any) is not our business here.
    PayoutItem.objects.filter(booking=booking).update(is_active=False)
    Booking.objects.filter(pk=booking.pk).update(
        completed_at=timezone.now() - timedelta(days=30), dispute_window_ends_at=timezone.now() - timedelta(days=16)
    )
    payment = Payment.objects.get(booking=booking)
    assert payment.refunded_amount == PARTIAL_REFUND
    # 100.00 at 15% (fee 15.00), 30.00 refunded: fee back 30 x 15/100 = 4.50, so the provider gives
    # back 25.50 and is owed 85.00 - 25.50 = 59.50
    expected = Decimal("59.50")

    run_payouts()

    item = PayoutItem.objects.get(booking=booking, is_active=True)
    assert item.amount == expected


def test_above_the_approval_threshold_a_person_must_approve(run_payouts, partners, settings):
    alpha, _ = partners
    settings.MARKETPLACE_PAYOUT_APPROVAL_ABOVE = {
        "EUR": Decimal("1.00"),
        "USD": Decimal("1.00"),
        "GBP": Decimal("1.00"),
    }
    _settled(alpha, 1)

    run = run_payouts()

    payout = Payout.objects.get(partner=alpha)
    assert payout.status == P.READY and payout.approved_at is None
    assert (run.auto_approved, run.submitted, run.needs_approval) == (0, 0, 1)
    assert not PayoutAttempt.objects.exists()


def test_risk_flagged_and_disputed_are_skipped_and_reported(run_payouts, partners):
    alpha, beta = partners
    beta.risk_flag = True
    beta.save()
    _settled(beta, 1)
    disputed = dispute_in(Dispute.Status.OPENED, listing__partner=alpha)
    Booking.objects.filter(pk=disputed.booking_id).update(
        completed_at=timezone.now() - timedelta(days=30), dispute_window_ends_at=timezone.now() - timedelta(days=16)
    )

    run = run_payouts()

    held = Payout.objects.get(partner=beta)
    assert held.status == P.ON_HOLD
    assert held.holds.get().kind == PayoutHold.Kind.RISK
    assert not PayoutItem.objects.filter(booking_id=disputed.booking_id, is_active=True).exists()
    assert (run.held, run.disputed_bookings, run.submitted) == (1, 1, 0)
    assert run.report["held"] == [
        {"payout": held.pk, "partner": "Beta", "amount": str(held.amount), "holds": ["Risk flag"]}
    ]
    owner = beta.memberships.get().user
    assert Notification.objects.filter(user=owner, verb="payout.hold").count() == 1


def test_a_refused_payout_is_retried_with_backoff_then_left_for_a_person(
    run_payouts, partners, settings, sandbox_gateway
):
    alpha, _ = partners
    settings.MARKETPLACE_PAYOUT_AUTO_RETRIES = 1
    _settled(alpha, 1)
    sandbox_gateway.fail_next("payout", 2)

    run_payouts()
    payout = Payout.objects.get(partner=alpha)
    assert payout.status == P.FAILED
    assert payout.failure_reason == "sandbox: injected payout failure"
    assert timezone.now() + timedelta(minutes=14) < payout.next_retry_at < timezone.now() + timedelta(minutes=16)

    assert run_payouts().retried == 0  # not due yet
    Payout.objects.filter(pk=payout.pk).update(next_retry_at=timezone.now() - timedelta(seconds=1))
    run = run_payouts()
    payout.refresh_from_db()
    assert (run.retried, run.submitted) == (1, 1)
    assert payout.status == P.FAILED and payout.attempt_count == 2
    assert payout.next_retry_at is None  # retries used up: a person decides
    assert run.report["failed_awaiting_person"] == 0  # counted by the next run
    assert run_payouts().report["failed_awaiting_person"] == 1
    keys = list(payout.attempts.values_list("idempotency_key", flat=True))
    assert keys == [f"payout-{payout.pk}-attempt-1", f"payout-{payout.pk}-attempt-2"]


def test_an_unanswered_attempt_is_asked_again_with_the_same_key(run_payouts, partners, settings, sandbox_gateway):
    alpha, _ = partners
    _settled(alpha, 1)
    sandbox_gateway.unavailable_next("payout")

    run_payouts()
    payout = Payout.objects.get(partner=alpha)
    attempt = payout.attempts.get()
    assert payout.status == P.SUBMITTED
    assert attempt.status == PayoutAttempt.Status.SUBMITTED and attempt.tries == 1 and attempt.next_try_at

    PayoutAttempt.objects.filter(pk=attempt.pk).update(next_try_at=timezone.now() - timedelta(seconds=1))
    run = run_payouts()

    payout.refresh_from_db()
    assert run.resumed_attempts == 1
    assert payout.status == P.PAID and payout.attempt_count == 1
    assert [c for c in sandbox_gateway.calls if c[0] == "payout"] == [("payout", attempt.idempotency_key)] * 2
    assert ledger_reconcile().balanced
