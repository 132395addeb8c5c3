"""Every dispute transition fired twice at once from two database connections: exactly one wins,
the other gets TransitionNotAllowed, and money moves once (STYLE.md, Tests).

Each race is run with `run_overlapping`: the second call is seen waiting on the row lock the first
call holds (pg_stat_activity), so the two transactions really overlapped, and the first one wins."""

from decimal import Decimal

import pytest

from marketplace.accounts.models import User
from marketplace.accounts.services import StaffGroup
from marketplace.audit.models import Event
from marketplace.bookings.models import Booking
from marketplace.core.exceptions import ApplicationError, TransitionNotAllowed
from marketplace.disputes import services as disputes
from marketplace.disputes.models import Dispute, DisputeEvidence
from marketplace.disputes.services import TRANSITIONS
from marketplace.ledger.models import LedgerTransaction
from marketplace.payments.gateway import SandboxGateway
from marketplace.payments.models import Refund
from marketplace.payouts.models import Payout, PayoutHold
from marketplace.payouts.reconciliation import ledger_reconcile
from marketplace.payouts.services import payout_create
from tests.concurrency import run_overlapping
from tests.factories import flows
from tests.factories.settlement import dispute_in, staff

two_connections = pytest.mark.django_db(transaction=True)

S = Dispute.Status
AGENT, LEAD, FINANCE = StaffGroup.OPERATIONS_AGENT, StaffGroup.OPERATIONS_LEAD, StaffGroup.FINANCE


def events(dispute: Dispute, verb: str) -> int:
    return Event.objects.filter(verb=verb, target_id=str(dispute.pk)).count()


def refund_calls() -> int:
    return sum(1 for op, _ in SandboxGateway.calls if op == "refund")


def _by_two_agents(service, **kwargs):
    def calls(dispute):
        first, second = staff(AGENT, scope=dispute.partner), staff(AGENT, scope=dispute.partner)
        return (
            lambda: service(dispute=dispute, actor=first, **kwargs),
            lambda: service(dispute=dispute, actor=second, **kwargs),
        )

    return calls


def _by_party(service, party: str, **kwargs):
    def calls(dispute):
        actor = getattr(dispute.booking, party)  # loaded here, not lazily inside the threads
        return (lambda: service(dispute=dispute, actor=actor, **kwargs),) * 2

    return calls


def _resolution(outcome: str, refund_amount=None):
    def resolve(*, dispute, actor):
        return disputes.dispute_resolve(
            dispute=dispute, actor=actor, outcome=outcome, reason_code="agreed", refund_amount=refund_amount
        )

    return _by_two_agents(resolve)


# transition -> (the state it is fired from, two calls of it, the refund it makes)
RACES = {
    "request_response": (S.OPENED, _by_two_agents(disputes.dispute_request_response), None),
    "respond": (S.AWAITING_RESPONSE, _by_party(disputes.dispute_respond, "provider", text="Done, see photos"), None),
    "start_review": (S.OPENED, _by_two_agents(disputes.dispute_start_review), None),
    "escalate": (S.OPENED, _by_two_agents(disputes.dispute_escalate), None),
    "resolve_release": (S.UNDER_REVIEW, _resolution("release"), None),
    "resolve_partial_refund": (S.UNDER_REVIEW, _resolution("partial_refund", Decimal("30.00")), Decimal("30.00")),
    "resolve_full_refund": (S.UNDER_REVIEW, _resolution("full_refund"), Decimal("100.00")),
    "withdraw": (S.OPENED, _by_party(disputes.dispute_withdraw, "client", reason="Sorted"), None),
}


def test_dispute_concurrency_covers_every_transition():
    assert set(TRANSITIONS) == set(RACES)


@two_connections
@pytest.mark.parametrize("transition", list(RACES))
def test_dispute_transition_twice_at_once_one_wins(transition):
    # given a dispute on a booking of 100.00 (fee 15.00) holding its payout of 85.00
    source, calls, refund = RACES[transition]
    booking = flows.settled_booking(
        window_open=True, amount=Decimal("100.00"), commission_rate=Decimal("0.15"), platform_fee=Decimal("15.00")
    )
    payout = payout_create(partner=booking.partner, bookings=[booking])
    dispute = dispute_in(source, booking=booking)
    target = TRANSITIONS[transition][1]
    SandboxGateway.calls.clear()

    # when the transition is fired a second time while the first still holds the dispute
    overlap = run_overlapping(*calls(dispute))

    # then the second was seen waiting on the dispute's row lock before the first committed
    assert overlap.wait.waiting_for == ("Lock", "SELECT", "disputes_dispute")
    # and the first wins; the second is told the dispute already moved on
    winner, loser = overlap.one_winner()
    assert (winner.index, loser.index) == (0, 1)
    assert isinstance(loser.error, TransitionNotAllowed), loser.error
    assert loser.error.message == f"Dispute #{dispute.pk} is '{target}': cannot {transition}."
    dispute.refresh_from_db()
    assert dispute.status == target
    assert events(dispute, f"dispute.{transition}") == 1
    # and money moved once: one refund (at the gateway, in the table, in the ledger) or none
    assert list(Refund.objects.values_list("amount", flat=True)) == ([refund] if refund else [])
    assert refund_calls() == (1 if refund else 0)
    assert LedgerTransaction.objects.filter(kind="refund").count() == (1 if refund else 0)
    assert ledger_reconcile().balanced
    # and the payout was released (or shrunk, or cancelled) once
    payout.refresh_from_db()
    assert Event.objects.filter(verb="payout.amount_adjusted", target_id=str(payout.pk)).count() == (1 if refund else 0)
    if transition == "respond":
        assert DisputeEvidence.objects.filter(dispute=dispute).count() == 1
    if transition.startswith("resolve_") or transition == "withdraw":
        # cancelled by a full refund, or released once (back to accruing or ready, as its own hold says)
        if transition == "resolve_full_refund":
            assert payout.status == Payout.Status.CANCELLED
        else:
            assert payout.status in (Payout.Status.ACCRUING, Payout.Status.READY)
        assert Event.objects.filter(verb="payout.release", target_id=str(payout.pk)).count() == (
            0 if transition == "resolve_full_refund" else 1
        )


@two_connections
def test_dispute_open_twice_at_once_opens_one_dispute():
    # given a completed booking, still in its dispute window, in an accruing payout
    booking = flows.settled_booking(window_open=True)
    payout = payout_create(partner=booking.partner, bookings=[booking])
    client = booking.client

    # when the client's dispute is sent a second time while the first still holds the booking
    overlap = run_overlapping(
        lambda: disputes.dispute_open(booking=booking, actor=client, reason_code="quality", description="Broken"),
        lambda: disputes.dispute_open(booking=booking, actor=client, reason_code="quality", description="Broken"),
    )

    # then the second waited on the booking's row lock; one dispute is opened, the second is
    # refused by the booking's state machine
    assert overlap.wait.waiting_for == ("Lock", "SELECT", "bookings_booking")
    winner, loser = overlap.one_winner()
    assert (winner.index, loser.index) == (0, 1)
    assert isinstance(loser.error, TransitionNotAllowed), loser.error
    assert loser.error.message == f"Booking #{booking.pk} is 'disputed': cannot dispute."
    assert Dispute.objects.filter(booking=booking).count() == 1
    assert Booking.objects.get(pk=booking.pk).status == Booking.Status.DISPUTED
    assert PayoutHold.objects.filter(payout=payout, released_at=None).count() == 1


@two_connections
def test_dispute_approve_resolution_twice_at_once_refunds_once():
    # given a refund of 600.00 proposed by a lead on a booking of 1,000.00, and two Finance approvers
    booking = flows.settled_booking(
        window_open=True, amount=Decimal("1000.00"), commission_rate=Decimal("0.15"), platform_fee=Decimal("150.00")
    )
    dispute = dispute_in(S.UNDER_REVIEW, booking=booking)
    disputes.dispute_resolve(
        dispute=dispute, actor=staff(LEAD), outcome="partial_refund", reason_code="agreed", refund_amount=Decimal("600")
    )
    first, second = staff(FINANCE), staff(FINANCE)
    SandboxGateway.calls.clear()

    # when the second approves it while the first's approval still holds the dispute
    overlap = run_overlapping(
        lambda: disputes.dispute_approve_resolution(dispute=dispute, actor=first),
        lambda: disputes.dispute_approve_resolution(dispute=dispute, actor=second),
    )

    # then the second waited on the dispute's row lock, then found nothing waiting for approval,
    # and 600.00 is refunded once, approved by the first
    assert overlap.wait.waiting_for == ("Lock", "SELECT", "disputes_dispute")
    winner, loser = overlap.one_winner()
    assert (winner.index, loser.index) == (0, 1)
    assert isinstance(loser.error, TransitionNotAllowed), loser.error
    assert loser.error.message == (
        f"Dispute #{dispute.pk} is 'resolved_partial_refund': cannot approve a resolution. "
        "No resolution is waiting for approval."
    )
    dispute.refresh_from_db()
    assert (dispute.status, dispute.approved_by_id) == (S.RESOLVED_PARTIAL_REFUND, first.pk)
    assert list(Refund.objects.values_list("amount", flat=True)) == [Decimal("600.00")]
    assert refund_calls() == 1
    assert ledger_reconcile().balanced


@two_connections
def test_dispute_assign_to_two_agents_at_once_leaves_one_holder():
    # given an open dispute, and two leads assigning it to two different agents at once
    dispute = dispute_in(S.OPENED)
    lead_a, lead_b = staff(LEAD), staff(LEAD)
    agent_a, agent_b = staff(AGENT), staff(AGENT)

    # when the second assignment runs while the first still holds the dispute
    overlap = run_overlapping(
        lambda: disputes.dispute_assign(dispute=dispute, actor=lead_a, assignee=agent_a),
        lambda: disputes.dispute_assign(dispute=dispute, actor=lead_b, assignee=agent_b),
    )

    # then the second waited on the dispute's row lock; both are applied in that order, and only
    # the last assignee (agent b) holds the dispute: agent a's grant was taken back
    assert overlap.wait.waiting_for == ("Lock", "SELECT", "disputes_dispute")
    assert overlap.errors == []
    dispute.refresh_from_db()
    assert dispute.assignee_id == agent_b.pk
    assert User.objects.get(pk=agent_b.pk).has_perm("disputes.handle_dispute", dispute)
    assert not User.objects.get(pk=agent_a.pk).has_perm("disputes.handle_dispute", dispute)


def _booking_not_paid_out_yet() -> Booking:
    """A completed booking of 100.00 (fee 15.00), still in its dispute window, not in a payout yet."""
    return flows.settled_booking(
        window_open=True, amount=Decimal("100.00"), commission_rate=Decimal("0.15"), platform_fee=Decimal("15.00")
    )


@two_connections
def test_dispute_open_then_payout_create_overlapping_refuses_the_payout():
    # (this race found a deadlock: payout_create locked the partner FOR UPDATE, which the dispute's
    # foreign-key check at commit waits on; the partner is now locked FOR NO KEY UPDATE)
    # given a completed booking that is not in a payout yet
    booking = _booking_not_paid_out_yet()
    client, partner = booking.client, booking.partner

    # when the payout run gathers the booking while the client's dispute still holds it
    overlap = run_overlapping(
        lambda: disputes.dispute_open(booking=booking, actor=client, reason_code="quality", description="Broken"),
        lambda: payout_create(partner=partner, bookings=[booking]),
    )

    # then the payout waited on the booking's row lock, then saw the dispute and was refused
    assert overlap.wait.waiting_for == ("Lock", "SELECT", "bookings_booking")
    opened, created = overlap
    assert opened.ok, opened.error
    assert isinstance(created.error, ApplicationError), created.error
    assert created.error.message == f"Booking #{booking.pk} is held by an open dispute and cannot be paid out."
    assert not Payout.objects.exists()
    assert Booking.objects.get(pk=booking.pk).status == Booking.Status.DISPUTED


@two_connections
def test_payout_create_then_dispute_open_overlapping_holds_the_payout():
    # given a completed booking that is not in a payout yet
    booking = _booking_not_paid_out_yet()
    client, partner = booking.client, booking.partner

    # when the client opens a dispute while the payout run's gathering still holds the booking
    overlap = run_overlapping(
        lambda: payout_create(partner=partner, bookings=[booking]),
        lambda: disputes.dispute_open(booking=booking, actor=client, reason_code="quality", description="Broken"),
    )

    # then the dispute waited on the booking's row lock, then found the payout and put it on hold:
    # never an unheld payout of a disputed booking
    assert overlap.wait.waiting_for == ("Lock", "SELECT", "bookings_booking")
    created, opened = overlap
    assert overlap.errors == []
    payout = Payout.objects.get(pk=created.value.pk)
    assert (payout.status, payout.amount) == (Payout.Status.ON_HOLD, Decimal("85.00"))
    assert list(payout.holds.values_list("dispute_id", flat=True)) == [opened.value.pk]
