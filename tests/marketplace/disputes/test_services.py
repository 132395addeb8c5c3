"""The dispute state machine: every transition from every state, holds on payouts, refunds, approvals."""

from contextlib import contextmanager
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import transaction
from django.forms.models import model_to_dict
from django.utils import timezone
from guardian.shortcuts import assign_perm

from marketplace.accounts.models import User
from marketplace.accounts.services import StaffGroup
from marketplace.audit.models import Event
from marketplace.bookings.models import Booking
from marketplace.core.exceptions import InvalidInput, NotPermitted, TransitionNotAllowed
from marketplace.disputes import services as disputes
from marketplace.disputes.models import Dispute
from marketplace.disputes.services import TRANSITIONS
from marketplace.ledger.models import LedgerTransaction
from marketplace.partners.services import partner_scope_grant
from marketplace.payments.models import Payment, Refund
from marketplace.payouts.models import Payout, PayoutHold
from marketplace.payouts.reconciliation import ledger_reconcile
from marketplace.payouts.services import payout_create, payout_hold
from tests.factories import ClientFactory, PartnerFactory, flows
from tests.factories.settlement import dispute_in, payout_in, staff
from tests.factories.states import operator_with

pytestmark = pytest.mark.django_db

S = Dispute.Status
ALL_STATES = list(S.values)
AGENT, LEAD, FINANCE = StaffGroup.OPERATIONS_AGENT, StaffGroup.OPERATIONS_LEAD, StaffGroup.FINANCE


def fee_of(amount: str, rate: str = "0.15") -> dict:
    amount, rate = Decimal(amount), Decimal(rate)
    return {"amount": amount, "commission_rate": rate, "platform_fee": (amount * rate).quantize(Decimal("0.01"))}


def row(dispute: Dispute) -> dict:
    fresh = Dispute.objects.get(pk=dispute.pk)
    return {**model_to_dict(fresh), "updated_at": fresh.updated_at}


def written() -> dict:
    return {
        "disputes": Dispute.objects.count(),
        "refunds": Refund.objects.count(),
        "ledger": LedgerTransaction.objects.count(),
        "holds": PayoutHold.objects.filter(released_at=None).count(),
        "events": Event.objects.count(),
    }


def open_dispute(booking: Booking) -> Dispute:
    return disputes.dispute_open(
        booking=booking, actor=booking.client, reason_code=Dispute.Reason.QUALITY, description="Half done"
    )


def agent_for(dispute: Dispute):
    """An Operations agent granted the dispute's partner (a `scope.granted` event is written)."""
    return staff(AGENT, scope=dispute.partner)


def resolve(dispute: Dispute, outcome: str, *, actor=None, refund_amount=None) -> Dispute:
    return disputes.dispute_resolve(
        dispute=dispute,
        actor=actor or agent_for(dispute),
        outcome=outcome,
        reason_code="agreed",
        refund_amount=refund_amount,
    )


# Each transition as a call of its service, by the person who would make it: a party, or the
# agent in scope given (made before anything is counted, since their scope grant is audited).
DOORS = {
    "request_response": lambda d, agent: disputes.dispute_request_response(dispute=d, actor=agent),
    "respond": lambda d, agent: disputes.dispute_respond(dispute=d, actor=d.booking.provider, text="It was done"),
    "start_review": lambda d, agent: disputes.dispute_start_review(dispute=d, actor=agent),
    "escalate": lambda d, agent: disputes.dispute_escalate(dispute=d, actor=agent),
    "resolve_release": lambda d, agent: resolve(d, "release", actor=agent),
    "resolve_partial_refund": lambda d, agent: resolve(d, "partial_refund", actor=agent, refund_amount=Decimal("30")),
    "resolve_full_refund": lambda d, agent: resolve(d, "full_refund", actor=agent),
    "withdraw": lambda d, agent: disputes.dispute_withdraw(dispute=d, actor=d.booking.client, reason="Sorted"),
}
LEGAL = [(t, s) for t, (sources, _) in TRANSITIONS.items() for s in sorted(sources)]
# state -> the transitions that do not start from it
ILLEGAL = {s: [t for t, (sources, _) in TRANSITIONS.items() if s not in sources] for s in ALL_STATES}


@contextmanager
def rolled_back():
    """A savepoint that is always rolled back, so one refused transition cannot leak into the next."""
    with transaction.atomic():
        yield
        transaction.set_rollback(True)


def test_dispute_transitions_every_one_has_a_door():
    # a transition added to the table without a test door fails here
    assert set(TRANSITIONS) == set(DOORS)


@pytest.mark.parametrize("transition, state", LEGAL)
def test_dispute_transition_legal(transition, state):
    # given a dispute in a state the transition starts from
    dispute = dispute_in(state)
    target = TRANSITIONS[transition][1]

    # when the transition is fired
    DOORS[transition](dispute, agent_for(dispute))

    # then the dispute is in the target state, and the audit log says so
    dispute.refresh_from_db()
    assert dispute.status == target
    event = Event.objects.filter(verb=f"dispute.{transition}", target_id=str(dispute.pk)).latest("id")
    assert (event.from_state, event.to_state) == (state, target)


@pytest.mark.parametrize("state", ALL_STATES)
def test_dispute_transition_illegal(state, subtests):
    # given a dispute in `state` (one per state; each transition is tried in a savepoint rolled back after)
    dispute = dispute_in(state)
    agent = agent_for(dispute)
    before, counts = row(dispute), written()
    booking_status = Booking.objects.get(pk=dispute.booking_id).status

    for transition in ILLEGAL[state]:
        with subtests.test(transition=transition), rolled_back():
            # when a transition that does not start from `state` is fired
            with pytest.raises(TransitionNotAllowed) as exc:
                DOORS[transition](dispute, agent)

            # then it is refused naming the dispute, its state and the transition, and nothing is written
            assert exc.value.message == f"Dispute #{dispute.pk} is '{state}': cannot {transition}."
            assert row(dispute) == before
            assert written() == counts
            assert Booking.objects.get(pk=dispute.booking_id).status == booking_status


# --- opening ----------------------------------------------------------------------------------


def test_dispute_open_holds_the_live_payout_and_disputes_the_booking():
    # given a settled booking in an accruing payout
    booking = flows.settled_booking(window_open=True)
    payout = payout_create(partner=booking.partner, bookings=[booking])

    # when the client opens a dispute
    dispute = open_dispute(booking)

    # then the dispute is opened with an SLA, the booking is disputed, the payout held for this dispute
    assert (dispute.status, dispute.partner_id, dispute.opened_by_id) == (
        S.OPENED,
        booking.partner_id,
        booking.client_id,
    )
    assert dispute.sla_due_at > timezone.now()
    assert Booking.objects.get(pk=booking.pk).status == Booking.Status.DISPUTED
    payout.refresh_from_db()
    assert payout.status == Payout.Status.ON_HOLD
    assert list(payout.holds.values_list("kind", "dispute_id", "released_at")) == [
        (PayoutHold.Kind.DISPUTE, dispute.pk, None)
    ]
    assert Event.objects.filter(verb="dispute.opened", target_id=str(dispute.pk), to_state=S.OPENED).exists()
    assert Event.objects.filter(verb="payout.hold", target_id=str(payout.pk), to_state="on_hold").exists()


@pytest.mark.parametrize("payout_state", [Payout.Status.SUBMITTED, Payout.Status.FAILED])
def test_dispute_open_with_payout_past_its_holdable_states_still_opens(payout_state):
    # given a booking whose payout is already at the gateway, or failed there and waits for a retry
    # (paid out only past the dispute window since the hold covers it; a window extended by hand,
    # as an operator may for a late complaint, reopens it)
    payout = payout_in(payout_state)
    booking = payout.items.get().booking
    Booking.objects.filter(pk=booking.pk).update(dispute_window_ends_at=timezone.now() + timedelta(days=1))
    booking.refresh_from_db()

    # when the client opens a dispute within the window
    dispute = open_dispute(booking)

    # then the dispute is opened and the booking disputed (the client's right does not depend on the payout)
    assert dispute.status == S.OPENED
    assert Booking.objects.get(pk=booking.pk).status == Booking.Status.DISPUTED


def test_dispute_open_outside_the_window_is_refused():
    # given a completed booking whose dispute window closed a minute ago
    booking = flows.settled_booking(window_open=True)
    Booking.objects.filter(pk=booking.pk).update(dispute_window_ends_at=timezone.now() - timedelta(minutes=1))
    counts = written()

    # when the client opens a dispute
    with pytest.raises(TransitionNotAllowed) as exc:
        open_dispute(booking)

    # then it is refused and nothing is written
    assert exc.value.message == (
        f"Booking #{booking.pk} is 'completed': cannot open a dispute. The dispute window has closed."
    )
    assert written() == counts
    assert Booking.objects.get(pk=booking.pk).status == Booking.Status.COMPLETED


def test_dispute_open_by_a_stranger_is_refused():
    booking = flows.settled_booking(window_open=True)
    stranger = ClientFactory()
    with pytest.raises(NotPermitted, match=f"You are not a party to booking #{booking.pk}."):
        disputes.dispute_open(booking=booking, actor=stranger, reason_code="quality", description="Bad")
    assert not Dispute.objects.exists()


@pytest.mark.parametrize("status", ["in_progress", "disputed"])
def test_dispute_open_on_a_booking_not_completed_is_refused(status):
    # given a booking still in progress, or already disputed
    booking = flows.booking_in("in_progress") if status == "in_progress" else dispute_in(S.OPENED).booking

    # when a dispute is opened, then the booking's state machine refuses
    with pytest.raises(TransitionNotAllowed) as exc:
        open_dispute(booking)
    assert exc.value.message == f"Booking #{booking.pk} is '{status}': cannot dispute."


# --- resolving --------------------------------------------------------------------------------


def disputed_with_payout(**booking_kwargs) -> tuple[Dispute, Payout]:
    """A dispute on a settled booking of 100.00 (fee 15.00) whose payout of 85.00 it holds."""
    booking = flows.settled_booking(window_open=True, **(booking_kwargs or fee_of("100.00")))
    payout = payout_create(partner=booking.partner, bookings=[booking])
    return open_dispute(booking), payout


def test_dispute_resolve_release_refunds_nothing_and_releases_the_payout():
    # given a dispute holding a payout of 85.00
    dispute, payout = disputed_with_payout()

    # when it is resolved in the provider's favour
    resolve(dispute, "release")

    # then nothing is refunded, the booking is resolved, the payout is ready with its full amount
    dispute.refresh_from_db()
    assert (dispute.status, dispute.refund_amount, dispute.resolution_code) == (
        S.RESOLVED_RELEASE,
        Decimal("0.00"),
        "agreed",
    )
    assert dispute.resolved_at is not None
    assert not Refund.objects.exists()
    assert Booking.objects.get(pk=dispute.booking_id).status == Booking.Status.RESOLVED
    payout.refresh_from_db()
    assert (payout.status, payout.amount) == (Payout.Status.READY, Decimal("85.00"))
    assert payout.holds.get().released_at is not None


def test_dispute_resolve_partial_refund_refunds_exactly_and_shrinks_the_payout():
    # given a dispute holding a payout of 85.00 for a booking of 100.00 with a 15.00 fee
    dispute, payout = disputed_with_payout()

    # when 33.33 is refunded
    resolve(dispute, "partial_refund", refund_amount=Decimal("33.33"))

    # then the refund is split 28.33 provider / 5.00 platform, and the payout shrinks by 28.33
    refund = Refund.objects.get()
    assert (refund.amount, refund.provider_share, refund.platform_share, refund.idempotency_key) == (
        Decimal("33.33"),
        Decimal("28.33"),
        Decimal("5.00"),
        f"dispute:{dispute.pk}",
    )
    dispute.refresh_from_db()
    assert (dispute.status, dispute.refund_amount) == (S.RESOLVED_PARTIAL_REFUND, Decimal("33.33"))
    assert Booking.objects.get(pk=dispute.booking_id).status == Booking.Status.RESOLVED
    payout.refresh_from_db()
    assert (payout.status, payout.amount) == (Payout.Status.READY, Decimal("56.67"))
    assert payout.items.get().amount == Decimal("56.67")
    adjusted = Event.objects.get(verb="payout.amount_adjusted", target_id=str(payout.pk))
    assert (adjusted.data["from"], adjusted.data["to"]) == ("85.00", "56.67")
    assert ledger_reconcile().balanced


def test_dispute_resolve_full_refund_cancels_a_payout_with_nothing_left():
    # given a dispute holding the payout of its one booking
    dispute, payout = disputed_with_payout()

    # when everything is refunded
    resolve(dispute, "full_refund")

    # then the client gets 100.00 back, and the payout with nothing left to pay is cancelled
    refund = Refund.objects.get()
    assert (refund.amount, refund.provider_share, refund.platform_share) == (
        Decimal("100.00"),
        Decimal("85.00"),
        Decimal("15.00"),
    )
    assert Payment.objects.get(booking_id=dispute.booking_id).status == Payment.Status.REFUNDED
    dispute.refresh_from_db()
    assert (dispute.status, dispute.refund_amount) == (S.RESOLVED_FULL_REFUND, Decimal("100.00"))
    payout.refresh_from_db()
    assert payout.status == Payout.Status.CANCELLED
    assert list(payout.items.values_list("is_active", flat=True)) == [False]
    assert ledger_reconcile().balanced


def test_dispute_resolve_full_refund_keeps_the_rest_of_a_payout():
    # given a payout of two bookings (85.00 + 42.50), one of them disputed
    disputed = flows.settled_booking(window_open=True, **fee_of("100.00"))
    other = flows.settled_booking(listing=disputed.listing, **fee_of("50.00"))
    payout = payout_create(partner=disputed.partner, bookings=[disputed, other])
    assert payout.amount == Decimal("127.50")
    dispute = open_dispute(disputed)

    # when the disputed booking is refunded in full
    resolve(dispute, "full_refund")

    # then the payout pays the other booking only, to the cent, and is released
    payout.refresh_from_db()
    assert (payout.status, payout.amount) == (Payout.Status.READY, Decimal("42.50"))
    assert dict(payout.items.values_list("booking_id", "amount")) == {
        disputed.pk: Decimal("0.00"),
        other.pk: Decimal("42.50"),
    }
    assert ledger_reconcile().balanced


def test_dispute_resolve_keeps_the_payout_on_hold_while_another_hold_remains():
    # given a disputed payout that also carries a manual hold
    dispute, payout = disputed_with_payout()
    payout_hold(payout=payout, actor=staff(LEAD), reason="Documents missing")

    # when the dispute is resolved
    resolve(dispute, "release")

    # then only the dispute's hold is released
    payout.refresh_from_db()
    assert payout.status == Payout.Status.ON_HOLD
    assert list(payout.holds.filter(released_at=None).values_list("kind", flat=True)) == [PayoutHold.Kind.MANUAL]


@pytest.mark.parametrize(
    "outcome, refund_amount, message",
    [
        ("partial_refund", None, "A partial refund needs an amount."),
        ("partial_refund", "0.00", "A partial refund must be more than 0 and less than the 100.00 EUR left"),
        ("partial_refund", "100.00", "A partial refund must be more than 0 and less than the 100.00 EUR left"),
        ("release", "10.00", "A release refunds nothing; choose partial_refund to refund."),
        ("settle", None, "Unknown outcome 'settle': use release, partial_refund or full_refund."),
    ],
)
def test_dispute_resolve_with_a_wrong_amount_is_refused(outcome, refund_amount, message):
    # given an open dispute on a booking of 100.00, and an agent granted its partner
    dispute = dispute_in(S.UNDER_REVIEW, **fee_of("100.00"))
    agent = agent_for(dispute)
    before, counts = row(dispute), written()

    # when it is resolved with an amount that does not fit the outcome
    with pytest.raises(InvalidInput) as exc:
        resolve(dispute, outcome, actor=agent, refund_amount=Decimal(refund_amount) if refund_amount else None)

    # then it is refused and nothing is written
    assert exc.value.message.startswith(message)
    assert row(dispute) == before
    assert written() == counts


def test_dispute_resolve_without_permission_is_refused():
    dispute = dispute_in(S.UNDER_REVIEW)
    support = staff(StaffGroup.SUPPORT)
    with pytest.raises(NotPermitted, match="You do not have the permission to resolve disputes."):
        resolve(dispute, "release", actor=support)
    assert Dispute.objects.get(pk=dispute.pk).status == S.UNDER_REVIEW


# --- second approval --------------------------------------------------------------------------


def test_dispute_resolve_refund_at_the_threshold_is_applied_at_once():
    # given a dispute on a booking of 500.00 (MARKETPLACE_REFUND_SECOND_APPROVAL_ABOVE = 500.00)
    dispute = dispute_in(S.UNDER_REVIEW, **fee_of("500.00"))

    # when it is refunded in full
    resolve(dispute, "full_refund")

    # then the refund is made without a second person
    assert Dispute.objects.get(pk=dispute.pk).status == S.RESOLVED_FULL_REFUND
    assert Refund.objects.get().amount == Decimal("500.00")


def test_dispute_refund_above_the_threshold_needs_a_second_person():
    # given a dispute on a booking of 1,000.00 whose payout of 850.00 it holds
    dispute, payout = disputed_with_payout(**fee_of("1000.00"))
    proposer = agent_for(dispute)

    # when an agent resolves it with a refund of 600.00
    resolve(dispute, "partial_refund", actor=proposer, refund_amount=Decimal("600.00"))

    # then the refund is only proposed: no money moves and the dispute stays open
    dispute.refresh_from_db()
    assert dispute.status == S.OPENED
    assert (dispute.proposed_outcome, dispute.proposed_refund, dispute.proposed_by_id) == (
        "partial_refund",
        Decimal("600.00"),
        proposer.pk,
    )
    assert not Refund.objects.exists()
    assert Event.objects.filter(verb="dispute.resolution_proposed", target_id=str(dispute.pk)).exists()

    # when the proposing agent approves it, then it is refused (agents lack disputes.approve_refund)
    with pytest.raises(NotPermitted, match="You do not have the permission to approve refunds."):
        disputes.dispute_approve_resolution(dispute=dispute, actor=proposer)

    # when a lead (who may approve refunds) proposes it again and approves their own proposal, it is refused
    lead = staff(LEAD)
    resolve(dispute, "partial_refund", actor=lead, refund_amount=Decimal("600.00"))
    with pytest.raises(NotPermitted) as exc:
        disputes.dispute_approve_resolution(dispute=dispute, actor=lead)
    assert (
        exc.value.message == f"You proposed the resolution of dispute #{dispute.pk}; a second person must approve it."
    )
    assert not Refund.objects.exists()

    # when a second person with disputes.approve_refund approves it
    finance = staff(FINANCE)
    disputes.dispute_approve_resolution(dispute=dispute, actor=finance)

    # then the 600.00 is refunded, the dispute resolved by the proposer and approved by the second person
    dispute.refresh_from_db()
    assert (dispute.status, dispute.refund_amount, dispute.resolved_by_id, dispute.approved_by_id) == (
        S.RESOLVED_PARTIAL_REFUND,
        Decimal("600.00"),
        lead.pk,
        finance.pk,
    )
    assert dispute.proposed_outcome == ""
    refund = Refund.objects.get()
    assert (refund.amount, refund.provider_share, refund.platform_share, refund.created_by_id) == (
        Decimal("600.00"),
        Decimal("510.00"),
        Decimal("90.00"),
        finance.pk,
    )
    payout.refresh_from_db()
    assert (payout.status, payout.amount) == (Payout.Status.READY, Decimal("340.00"))
    assert Booking.objects.get(pk=dispute.booking_id).status == Booking.Status.RESOLVED
    assert ledger_reconcile().balanced


def test_dispute_approve_resolution_with_nothing_proposed_is_refused():
    dispute = dispute_in(S.UNDER_REVIEW)
    with pytest.raises(TransitionNotAllowed) as exc:
        disputes.dispute_approve_resolution(dispute=dispute, actor=staff(FINANCE))
    assert exc.value.message == (
        f"Dispute #{dispute.pk} is 'under_review': cannot approve a resolution. No resolution is waiting for approval."
    )


# --- withdrawing ------------------------------------------------------------------------------


def test_dispute_withdraw_completes_the_booking_and_releases_the_hold():
    # given a dispute holding a payout
    dispute, payout = disputed_with_payout()

    # when the client who opened it withdraws it
    disputes.dispute_withdraw(dispute=dispute, actor=dispute.booking.client, reason="Provider came back")

    # then the booking is completed again, the payout released (ready: its hold period is over), no refund
    dispute.refresh_from_db()
    assert (dispute.status, dispute.resolved_by_id) == (S.WITHDRAWN, dispute.booking.client_id)
    assert dispute.resolved_at is not None
    assert Booking.objects.get(pk=dispute.booking_id).status == Booking.Status.COMPLETED
    payout.refresh_from_db()
    # and the payout is released but keeps accruing: the booking is back inside its dispute window,
    # so it is not payable until the window closes
    assert (payout.status, payout.amount) == (Payout.Status.ACCRUING, Decimal("85.00"))
    assert not Refund.objects.exists()


def test_dispute_withdraw_by_the_other_party_is_refused():
    dispute = dispute_in(S.OPENED)
    with pytest.raises(NotPermitted, match=f"Only whoever opened dispute #{dispute.pk} can withdraw it."):
        disputes.dispute_withdraw(dispute=dispute, actor=dispute.booking.provider)
    assert Dispute.objects.get(pk=dispute.pk).status == S.OPENED


# --- responding -------------------------------------------------------------------------------


def test_dispute_respond_by_the_opener_is_refused():
    dispute = dispute_in(S.AWAITING_RESPONSE)
    with pytest.raises(NotPermitted, match=f"Only the other party can respond to dispute #{dispute.pk}."):
        disputes.dispute_respond(dispute=dispute, actor=dispute.booking.client, text="Me again")
    assert Dispute.objects.get(pk=dispute.pk).status == S.AWAITING_RESPONSE


def test_dispute_respond_records_evidence_and_restarts_the_sla():
    # given a dispute waiting for the provider's response
    dispute = dispute_in(S.AWAITING_RESPONSE)

    # when the provider responds
    disputes.dispute_respond(dispute=dispute, actor=dispute.booking.provider, text="Photos attached")

    # then the response is evidence and the dispute is under review with a fresh SLA
    dispute.refresh_from_db()
    assert dispute.status == S.UNDER_REVIEW
    assert list(dispute.evidence.values_list("submitted_by_id", "text")) == [
        (dispute.booking.provider_id, "Photos attached")
    ]
    assert dispute.sla_due_at > timezone.now() + timedelta(hours=47)


# --- assignment -------------------------------------------------------------------------------


def fresh(user) -> User:
    """The user re-read, so guardian's and Django's permission caches are empty."""
    return User.objects.get(pk=user.pk)


def test_dispute_assign_grants_handle_dispute_and_reassign_revokes_it():
    # given an open dispute, a lead and two agents
    dispute = dispute_in(S.OPENED)
    lead, first, second = staff(LEAD), staff(AGENT), staff(AGENT)

    # when the lead assigns it to the first agent
    disputes.dispute_assign(dispute=dispute, actor=lead, assignee=first)

    # then the first agent holds 'handle_dispute' on this dispute only
    assert fresh(first).has_perm("disputes.handle_dispute", dispute)
    assert not fresh(first).has_perm("disputes.handle_dispute", dispute_in(S.OPENED))
    assert Dispute.objects.get(pk=dispute.pk).assignee_id == first.pk

    # when the lead reassigns it to the second agent
    disputes.dispute_assign(dispute=dispute, actor=lead, assignee=second)

    # then the permission moved: the first agent lost it, the second has it
    assert not fresh(first).has_perm("disputes.handle_dispute", dispute)
    assert fresh(second).has_perm("disputes.handle_dispute", dispute)
    assigned = Event.objects.filter(verb="dispute.assigned", target_id=str(dispute.pk)).order_by("id")
    assert [e.data for e in assigned] == [
        {"assignee": first.pk, "previous": None},
        {"assignee": second.pk, "previous": first.pk},
    ]
    assert Event.objects.filter(verb="scope.granted", target_id=str(dispute.pk)).count() == 2


def test_dispute_assign_refusals():
    # given an open dispute and a resolved one
    dispute, resolved = dispute_in(S.OPENED), dispute_in(S.RESOLVED_RELEASE)
    lead, agent = staff(LEAD), staff(AGENT)

    # then an agent cannot assign, nobody can assign to a non-staff user, nor assign a closed dispute
    with pytest.raises(NotPermitted, match="You do not have the permission to assign disputes."):
        disputes.dispute_assign(dispute=dispute, actor=agent, assignee=agent)
    with pytest.raises(InvalidInput, match="is not active staff and cannot handle disputes."):
        disputes.dispute_assign(dispute=dispute, actor=lead, assignee=dispute.booking.client)
    with pytest.raises(TransitionNotAllowed) as exc:
        disputes.dispute_assign(dispute=resolved, actor=lead, assignee=agent)
    assert exc.value.message == f"Dispute #{resolved.pk} is 'resolved_release': cannot assign."
    assert not fresh(agent).has_perm("disputes.handle_dispute", dispute)


# --- scope ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "scope, allowed",
    [
        ("the dispute's partner", True),
        ("the booking's category", True),
        ("the dispute, assigned", True),
        ("global (lead)", True),
        ("another partner", False),
        ("no grant", False),
    ],
)
def test_dispute_resolve_matrix_agent_scope(scope, allowed):
    # given an open dispute and an agent (who may resolve disputes) with one kind of scope
    dispute = dispute_in(S.UNDER_REVIEW)
    actor = staff(LEAD) if scope == "global (lead)" else staff(AGENT)
    if scope == "the dispute's partner":
        partner_scope_grant(partner=dispute.partner, grantee=actor)
    elif scope == "the booking's category":
        assign_perm("catalog.operate_category", actor, dispute.booking.category)
    elif scope == "the dispute, assigned":
        disputes.dispute_assign(dispute=dispute, actor=staff(LEAD), assignee=actor)
    elif scope == "another partner":
        partner_scope_grant(partner=PartnerFactory(), grantee=actor)
    actor = User.objects.get(pk=actor.pk)
    before = row(dispute)

    # when they resolve it (a partial refund: money moves)
    if allowed:
        resolve(dispute, "partial_refund", actor=actor, refund_amount=Decimal("10.00"))
        # then it is resolved
        assert Dispute.objects.get(pk=dispute.pk).status == S.RESOLVED_PARTIAL_REFUND
    else:
        # then a dispute outside their scope is refused, as the payout approver's scope is (one scope everywhere)
        with pytest.raises(NotPermitted, match="outside your scope"):
            resolve(dispute, "partial_refund", actor=actor, refund_amount=Decimal("10.00"))
        assert row(dispute) == before
        assert not Refund.objects.exists()


# --- staff scope on every staff step ----------------------------------------------------------


def _proposed(dispute: Dispute) -> Dispute:
    """The dispute with a refund of 600.00 proposed by a lead, waiting for a second person."""
    return resolve(dispute, "partial_refund", actor=staff(LEAD), refund_amount=Decimal("600.00"))


# step -> (the dispute state it is taken from, the model permission the actor holds, the call)
STAFF_STEPS = {
    "request_response": (
        S.OPENED,
        "change_dispute",
        lambda d, a: disputes.dispute_request_response(dispute=d, actor=a),
    ),
    "start_review": (S.OPENED, "change_dispute", lambda d, a: disputes.dispute_start_review(dispute=d, actor=a)),
    "escalate": (S.OPENED, "change_dispute", lambda d, a: disputes.dispute_escalate(dispute=d, actor=a)),
    "add_evidence": (
        S.OPENED,
        "change_dispute",
        lambda d, a: disputes.dispute_add_evidence(dispute=d, actor=a, text="Call notes"),
    ),
    "resolve": (S.UNDER_REVIEW, "resolve_dispute", lambda d, a: resolve(d, "release", actor=a)),
    "withdraw": (
        S.OPENED,
        "resolve_dispute",
        lambda d, a: disputes.dispute_withdraw(dispute=d, actor=a, reason="Opened twice"),
    ),
    "assign": (S.OPENED, "assign_dispute", lambda d, a: disputes.dispute_assign(dispute=d, actor=a, assignee=a)),
    "approve_resolution": (
        S.UNDER_REVIEW,
        "approve_refund",
        lambda d, a: disputes.dispute_approve_resolution(dispute=d, actor=a),
    ),
}
SCOPES = ["the dispute's partner", "another partner", "no grant"]
STAFF_MATRIX = [(step, scope) for step in STAFF_STEPS for scope in SCOPES]


@pytest.mark.parametrize(("step", "scope"), STAFF_MATRIX, ids=[f"{s}-{c}" for s, c in STAFF_MATRIX])
def test_dispute_staff_step_matrix_scope(step, scope):
    # given a dispute where `step` applies, and staff holding its permission with one kind of scope
    state, permission, call = STAFF_STEPS[step]
    booking_kwargs = fee_of("1000.00") if step == "approve_resolution" else {}
    dispute = dispute_in(state, **booking_kwargs)
    if step == "approve_resolution":
        dispute = _proposed(dispute)
    partner = {"the dispute's partner": dispute.partner, "another partner": PartnerFactory(), "no grant": None}[scope]
    actor = operator_with(permission, scope=partner)
    before, counts = row(dispute), written()

    if scope == "the dispute's partner":
        # when they take the step, then it is taken, in their name
        call(dispute, actor)
        assert row(dispute) != before or dispute.evidence.filter(submitted_by=actor).exists()
        assert Event.objects.filter(target_id=str(dispute.pk), actor=actor).exists()
    else:
        # when they take the step, then a dispute outside their scope is refused and nothing is written
        with pytest.raises(NotPermitted) as exc:
            call(dispute, actor)
        assert exc.value.message == f"Dispute #{dispute.pk} is outside your scope."
        assert row(dispute) == before
        assert written() == counts
        assert not dispute.evidence.exists()


@pytest.mark.parametrize("step", ["request_response", "start_review", "escalate", "add_evidence", "withdraw"])
def test_dispute_staff_step_without_the_permission_is_refused(step):
    # given staff granted the dispute's partner but holding none of the dispute permissions
    state, _, call = STAFF_STEPS[step]
    dispute = dispute_in(state)
    actor = operator_with("view_dispute", scope=dispute.partner)
    before, counts = row(dispute), written()
    # when / then
    with pytest.raises(NotPermitted, match=f"#{dispute.pk}"):
        call(dispute, actor)
    assert (row(dispute), written()) == (before, counts)


@pytest.mark.parametrize("step", ["start_review", "escalate"])
def test_dispute_timer_steps_need_no_actor(step):
    # given a dispute whose deadline for the step has passed (the response deadline for
    # start_review, the ops SLA for escalate)
    past = timezone.now() - timedelta(minutes=1)
    if step == "start_review":
        dispute = dispute_in(S.AWAITING_RESPONSE)
        Dispute.objects.filter(pk=dispute.pk).update(response_due_at=past)
    else:
        dispute = dispute_in(S.OPENED)
        Dispute.objects.filter(pk=dispute.pk).update(sla_due_at=past)
    # when the timer takes the step (no actor)
    STAFF_STEPS[step][2](Dispute.objects.get(pk=dispute.pk), None)
    # then
    assert Dispute.objects.get(pk=dispute.pk).status == TRANSITIONS[step][1]


@pytest.mark.parametrize(("scope", "allowed"), [("the booking's partner", True), ("another partner", False)])
def test_dispute_open_by_staff_needs_the_booking_in_scope(scope, allowed):
    # given a settled booking and staff who handle disputes, granted one partner
    booking = flows.settled_booking(window_open=True)
    partner = booking.partner if allowed else PartnerFactory()
    actor = operator_with("change_dispute", scope=partner)
    counts, booking_before = written(), Booking.objects.get(pk=booking.pk).updated_at

    if allowed:
        # when they open a dispute on the client's behalf, then it is opened
        dispute = disputes.dispute_open(booking=booking, actor=actor, reason_code="quality", description="By phone")
        assert (dispute.status, dispute.opened_by_id) == (S.OPENED, actor.pk)
    else:
        # when they open one on a booking outside their scope, then it is refused and nothing is written
        with pytest.raises(NotPermitted) as exc:
            disputes.dispute_open(booking=booking, actor=actor, reason_code="quality", description="By phone")
        assert exc.value.message == f"Booking #{booking.pk} is outside your scope."
        assert written() == counts
        assert Booking.objects.get(pk=booking.pk).updated_at == booking_before


def test_dispute_assign_gives_an_agent_with_no_scope_this_dispute_only():
    # given an open dispute, and an agent granted nothing
    dispute, other = dispute_in(S.UNDER_REVIEW), dispute_in(S.UNDER_REVIEW)
    agent = staff(AGENT)

    # when a lead assigns the dispute to the agent
    disputes.dispute_assign(dispute=dispute, actor=staff(LEAD), assignee=agent)

    # then the agent may resolve this dispute, and still no other one
    agent = fresh(agent)
    with pytest.raises(NotPermitted, match="outside your scope"):
        resolve(other, "release", actor=agent)
    resolve(dispute, "release", actor=agent)
    assert Dispute.objects.get(pk=dispute.pk).status == S.RESOLVED_RELEASE


def test_dispute_assign_to_the_same_person_again_writes_nothing():
    from marketplace.audit.models import Event
    from marketplace.disputes.services import dispute_assign
    from tests.factories.settlement import staff

    dispute = dispute_in(S.OPENED)
    lead, agent = staff("Operations lead"), staff("Operations agent")
    dispute_assign(dispute=dispute, actor=lead, assignee=agent)
    before = Event.objects.count()
    dispute_assign(dispute=dispute, actor=lead, assignee=agent)
    assert Event.objects.count() == before
    assert Dispute.objects.get(pk=dispute.pk).assignee_id == agent.pk


def test_dispute_same_refund_proposal_again_writes_nothing(settings):
    from decimal import Decimal

    from marketplace.audit.models import Event
    from marketplace.disputes.services import dispute_resolve
    from tests.factories.settlement import staff

    settings.MARKETPLACE_REFUND_SECOND_APPROVAL_ABOVE = {
        "EUR": Decimal("1.00"),
        "USD": Decimal("1.00"),
        "GBP": Decimal("1.00"),
    }
    dispute = dispute_in(S.UNDER_REVIEW)
    lead = staff("Operations lead")
    args = dict(outcome="partial_refund", reason_code="quality", refund_amount=Decimal("10.00"))
    dispute_resolve(dispute=dispute, actor=lead, **args)
    before = Event.objects.filter(verb="dispute.resolution_proposed").count()
    dispute_resolve(dispute=dispute, actor=lead, **args)
    assert Event.objects.filter(verb="dispute.resolution_proposed").count() == before == 1
