"""Every dispute transition fired twice at once from two database connections: exactly one wins,
the other gets TransitionNotAllowed, and money moves once (STYLE.md, Tests)."""

from decimal import Decimal

import pytest

from marketplace.accounts.models import User
from marketplace.accounts.services import StaffGroup
from marketplace.audit.models import Event
from marketplace.bookings.models import Booking
from marketplace.core.exceptions import TransitionNotAllowed
from marketplace.disputes import services as disputes
from marketplace.disputes.models import Dispute, DisputeEvidence
from marketplace.disputes.services import TRANSITIONS
from marketplace.ledger.models import LedgerTransaction
from marketplace.payouts.reconciliation import ledger_reconcile
from marketplace.payments.gateway import SandboxGateway
from marketplace.payments.models import Refund
from marketplace.payouts.models import Payout, PayoutHold
from marketplace.payouts.services import payout_create
from tests.concurrency import run_concurrently, run_twice
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
        window_open=True,
        amount=Decimal("100.00"),
        commission_rate=Decimal("0.15"),
        platform_fee=Decimal("15.00"),
    )
    payout = payout_create(partner=booking.partner, bookings=[booking])
    dispute = dispute_in(source, booking=booking)
    target = TRANSITIONS[transition][1]
    SandboxGateway.calls.clear()

    # when the transition is fired twice at the same moment
    outcomes = run_concurrently(*calls(dispute))

    # then one wins; the other is told the dispute already moved on
    _, loser = outcomes.one_winner()
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
        assert payout.status == (
            Payout.Status.CANCELLED if transition == "resolve_full_refund" else Payout.Status.READY
        )
        assert Event.objects.filter(verb="payout.release", target_id=str(payout.pk)).count() == (
            0 if transition == "resolve_full_refund" else 1
        )


@two_connections
def test_dispute_open_twice_at_once_opens_one_dispute():
    # given a completed booking in an accruing payout
    booking = flows.settled_booking(window_open=True)
    payout = payout_create(partner=booking.partner, bookings=[booking])
    client = booking.client

    # when the client's dispute is sent twice at once
    outcomes = run_twice(
        lambda: disputes.dispute_open(booking=booking, actor=client, reason_code="quality", description="Broken")
    )

    # then one dispute is opened, the other is refused by the booking's state machine
    _, loser = outcomes.one_winner()
    assert isinstance(loser.error, TransitionNotAllowed), loser.error
    assert loser.error.message == f"Booking #{booking.pk} is 'disputed': cannot dispute."
    assert Dispute.objects.filter(booking=booking).count() == 1
    assert Booking.objects.get(pk=booking.pk).status == Booking.Status.DISPUTED
    assert PayoutHold.objects.filter(payout=payout, released_at=None).count() == 1


@two_connections
def test_dispute_approve_resolution_twice_at_once_refunds_once():
    # given a refund of 600.00 proposed by a lead on a booking of 1,000.00, and two Finance approvers
    booking = flows.settled_booking(
        window_open=True,
        amount=Decimal("1000.00"),
        commission_rate=Decimal("0.15"),
        platform_fee=Decimal("150.00"),
    )
    dispute = dispute_in(S.UNDER_REVIEW, booking=booking)
    disputes.dispute_resolve(
        dispute=dispute, actor=staff(LEAD), outcome="partial_refund", reason_code="agreed", refund_amount=Decimal("600")
    )
    first, second = staff(FINANCE), staff(FINANCE)
    SandboxGateway.calls.clear()

    # when both approve it at the same moment
    outcomes = run_concurrently(
        lambda: disputes.dispute_approve_resolution(dispute=dispute, actor=first),
        lambda: disputes.dispute_approve_resolution(dispute=dispute, actor=second),
    )

    # then one applies it, the other finds nothing waiting for approval, and 600.00 is refunded once
    winner, loser = outcomes.one_winner()
    assert isinstance(loser.error, TransitionNotAllowed), loser.error
    assert loser.error.message == (
        f"Dispute #{dispute.pk} is 'resolved_partial_refund': cannot approve a resolution. "
        "No resolution is waiting for approval."
    )
    dispute.refresh_from_db()
    assert (dispute.status, dispute.approved_by_id) == (S.RESOLVED_PARTIAL_REFUND, winner.value.approved_by_id)
    assert list(Refund.objects.values_list("amount", flat=True)) == [Decimal("600.00")]
    assert refund_calls() == 1
    assert ledger_reconcile().balanced


@two_connections
def test_dispute_assign_to_two_agents_at_once_leaves_one_holder():
    # given an open dispute, and two leads assigning it to two different agents at once
    dispute = dispute_in(S.OPENED)
    lead_a, lead_b = staff(LEAD), staff(LEAD)
    agent_a, agent_b = staff(AGENT), staff(AGENT)

    # when both assignments run at the same moment
    outcomes = run_concurrently(
        lambda: disputes.dispute_assign(dispute=dispute, actor=lead_a, assignee=agent_a),
        lambda: disputes.dispute_assign(dispute=dispute, actor=lead_b, assignee=agent_b),
    )

    # then both are applied in some order, and only the last assignee holds the dispute
    assert outcomes.errors == []
    dispute.refresh_from_db()
    last, first = (agent_a, agent_b) if dispute.assignee_id == agent_a.pk else (agent_b, agent_a)
    assert User.objects.get(pk=last.pk).has_perm("disputes.handle_dispute", dispute)
    assert not User.objects.get(pk=first.pk).has_perm("disputes.handle_dispute", dispute)


@two_connections
def test_dispute_open_and_payout_create_at_once_end_in_a_serial_order():
    # given a completed booking of 100.00 (fee 15.00) that is not in a payout yet
    booking = flows.settled_booking(
        window_open=True,
        amount=Decimal("100.00"),
        commission_rate=Decimal("0.15"),
        platform_fee=Decimal("15.00"),
    )
    client, partner = booking.client, booking.partner

    # when the client opens a dispute just as the payout run gathers the booking
    outcomes = run_concurrently(
        lambda: disputes.dispute_open(booking=booking, actor=client, reason_code="quality", description="Broken"),
        lambda: payout_create(partner=partner, bookings=[booking]),
    )

    # then the dispute is always opened, and either the payout came first and is now held for the
    # dispute, or the dispute came first and the payout was refused: never an unheld payout of a disputed booking
    opened, created = outcomes
    assert opened.ok, opened.error
    dispute = opened.value
    if created.ok:
        payout = Payout.objects.get(pk=created.value.pk)
        assert payout.status == Payout.Status.ON_HOLD
        assert list(payout.holds.values_list("dispute_id", flat=True)) == [dispute.pk]
    else:
        assert created.error.message == f"Booking #{booking.pk} is held by an open dispute and cannot be paid out."
        assert not Payout.objects.exists()
