"""The payout state machine: every transition from every state, creation rules, four-eyes, holds, attempts."""

from contextlib import contextmanager
from datetime import timedelta
from decimal import ROUND_HALF_UP, Decimal

import pytest
from django.db import transaction
from django.forms.models import model_to_dict
from django.utils import timezone

from marketplace.accounts.services import StaffGroup
from marketplace.audit.models import Event
from marketplace.bookings.models import Booking
from marketplace.core.exceptions import ApplicationError, InvalidInput, NotPermitted, TransitionNotAllowed
from marketplace.disputes.models import Dispute
from marketplace.disputes.services import dispute_open
from marketplace.ledger.models import LedgerTransaction
from marketplace.partners.services import partner_scope_grant
from marketplace.payments.gateway import SandboxGateway
from marketplace.payments.models import Payment
from marketplace.payments.services import payment_refund
from marketplace.payouts import services as payouts
from marketplace.payouts.models import Payout, PayoutAttempt, PayoutHold, PayoutItem
from marketplace.payouts.services import TRANSITIONS
from tests.factories import PartnerFactory, PayoutAccountFactory, flows
from tests.factories.settlement import payout_in, staff, staff_with, submissions_not_sent
from tests.factories.states import operator_with

pytestmark = pytest.mark.django_db

S = Payout.Status
ALL_STATES = list(S.values)


def fee_of(amount: str, rate: str = "0.15") -> dict:
    amount, rate = Decimal(amount), Decimal(rate)
    return {
        "amount": amount,
        "commission_rate": rate,
        "platform_fee": (amount * rate).quantize(Decimal("0.01"), ROUND_HALF_UP),
    }


def row(payout: Payout) -> dict:
    """Every column of the payout as it is in the database."""
    fresh = Payout.objects.get(pk=payout.pk)
    return {**model_to_dict(fresh), "updated_at": fresh.updated_at}


def written() -> dict:
    return {
        "payouts": Payout.objects.count(),
        "items": PayoutItem.objects.count(),
        "holds": PayoutHold.objects.count(),
        "attempts": PayoutAttempt.objects.count(),
        "ledger": LedgerTransaction.objects.count(),
        "events": Event.objects.count(),
    }


def last_attempt(payout: Payout) -> PayoutAttempt:
    return PayoutAttempt.objects.filter(payout=payout).latest("number")


# Each public transition as a call of its service. mark_paid and mark_failed are the gateway's
# answer to an attempt (payout_attempt_process), tested separately below.
def _hold(payout):
    return payouts.payout_hold(payout=payout, actor=staff(StaffGroup.OPERATIONS_LEAD), reason="Checking the account")


def _retry_due(payout):
    """A failed payout whose automatic-retry backoff is over (other states are left as they are)."""
    if payout.status == S.FAILED:
        Payout.objects.filter(pk=payout.pk).update(next_retry_at=timezone.now() - timedelta(seconds=1))
    return payout


def _approve(payout):
    return payouts.payout_approve(payout=payout, actor=staff(StaffGroup.FINANCE))


def _reject(payout):
    return payouts.payout_reject(payout=payout, actor=staff(StaffGroup.FINANCE), reason="Wrong bank")


def _submit(payout):
    with submissions_not_sent():
        return payouts.payout_submit(payout=payout, actor=staff(StaffGroup.FINANCE))


DOORS = {
    "hold": _hold,
    "release": lambda payout: payouts.payout_release_hold(payout=payout, actor=staff(StaffGroup.OPERATIONS_LEAD)),
    "mature": lambda payout: payouts.payout_mature(payout=payout),
    "request_approval": lambda payout: payouts.payout_request_approval(
        payout=payout, actor=staff(StaffGroup.OPERATIONS_LEAD), note="Large"
    ),
    "auto_approve": lambda payout: payouts.payout_auto_approve(payout=payout),
    "approve": _approve,
    "reject": _reject,
    "submit": _submit,
    "retry": lambda payout: payouts.payout_retry(payout=payout, actor=staff(StaffGroup.FINANCE)),
    "auto_retry": lambda payout: payouts.payout_auto_retry(payout=_retry_due(payout)),
    "cancel": lambda payout: payouts.payout_cancel(payout=payout, actor=staff(StaffGroup.FINANCE), reason="Closed"),
    "reverse": lambda payout: payouts.payout_reverse(payout=payout, actor=staff(StaffGroup.FINANCE), reason="Bank"),
}
GATEWAY_ANSWERS = {"mark_paid", "mark_failed"}
# A payout already on hold takes a further hold and stays on hold (documented in payout_hold).
STAYS_PUT = {("hold", S.ON_HOLD)}

LEGAL = [(t, s) for t, (sources, _) in TRANSITIONS.items() if t not in GATEWAY_ANSWERS for s in sorted(sources)]
# state -> the transitions that do not start from it
ILLEGAL = {
    s: [t for t, (sources, _) in TRANSITIONS.items() if t in DOORS and s not in sources and (t, s) not in STAYS_PUT]
    for s in ALL_STATES
}


@contextmanager
def rolled_back():
    """A savepoint that is always rolled back, so one refused transition cannot leak into the next."""
    with transaction.atomic():
        yield
        transaction.set_rollback(True)


def test_payout_transitions_every_one_has_a_door():
    # a transition added to the table without a test door fails here
    assert set(TRANSITIONS) == set(DOORS) | GATEWAY_ANSWERS


@pytest.mark.parametrize("transition, state", LEGAL)
def test_payout_transition_legal(transition, state):
    # given a payout in a state the transition starts from (its hold period not over, for release)
    if transition == "release":
        booking = flows.booking_in("completed")
        PayoutAccountFactory(partner=booking.partner)
        payout = payout_in(state, bookings=[booking])
    else:
        payout = payout_in(state)
    target = TRANSITIONS[transition][1]

    # when the transition is fired
    DOORS[transition](payout)

    # then the payout is in the target state, and the audit log says so
    payout.refresh_from_db()
    assert payout.status == target
    event = Event.objects.filter(verb=f"payout.{transition}", target_id=str(payout.pk)).latest("id")
    assert (event.from_state, event.to_state) == (state, target)
    assert event.data["amount"] == str(payout.amount)


@pytest.mark.parametrize("state", ALL_STATES)
def test_payout_transition_illegal(state, subtests):
    # given a payout in `state` (one per state; each transition is tried in a savepoint rolled back after)
    payout = payout_in(state)
    before, counts = row(payout), written()

    for transition in ILLEGAL[state]:
        with subtests.test(transition=transition), rolled_back():
            # when a transition that does not start from `state` is fired
            with pytest.raises(TransitionNotAllowed) as exc:
                DOORS[transition](payout)

            # then it is refused naming the payout, its state and the transition, and nothing is written
            assert exc.value.message == f"Payout #{payout.pk} is '{state}': cannot {transition}."
            assert (exc.value.state, exc.value.transition) == (state, transition)
            assert row(payout) == before
            assert written() == counts


@pytest.mark.parametrize("state", [S.PAID, S.FAILED, S.REVERSED, S.CANCELLED, S.READY])
def test_payout_attempt_process_outside_submitted_is_a_no_op(state, sandbox_gateway):
    # given a payout that went through an attempt and then on to `state` (failed -> cancel / retry)
    if state in (S.CANCELLED, S.READY):
        payout = payout_in(S.FAILED)
        DOORS["cancel" if state == S.CANCELLED else "retry"](payout)
    else:
        payout = payout_in(state)
    before, counts, calls = row(payout), written(), len(sandbox_gateway.calls)

    # when the task for its attempt is delivered again
    result = payouts.payout_attempt_process(attempt_id=last_attempt(payout).pk)

    # then neither mark_paid nor mark_failed fires: nothing changes, the gateway is not called
    assert result is None
    assert row(payout) == before
    assert written() == counts
    assert len(sandbox_gateway.calls) == calls


# --- creation ---------------------------------------------------------------------------------


def test_payout_create_gathers_settled_bookings_owed_to_the_partner():
    # given two settled bookings of one partner (100.00 and 59.99, both at 15%)
    first = flows.settled_booking(**fee_of("100.00"))
    second = flows.settled_booking(listing=first.listing, **fee_of("59.99"))

    # when a payout is created for them
    payout = payouts.payout_create(partner=first.partner, bookings=[first, second])

    # then it accrues what the provider is owed, to the cent: 85.00 + 50.99
    assert (payout.status, payout.amount, payout.currency) == (S.ACCRUING, Decimal("135.99"), "EUR")
    assert set(payout.items.values_list("booking_id", "amount", "is_active")) == {
        (first.pk, Decimal("85.00"), True),
        (second.pk, Decimal("50.99"), True),
    }
    # and it matures at the later of each booking's hold (completed + 7 days) and dispute window end
    # (completed + 14 days): the dispute window, 16 days ago for both
    assert payout.hold_until == max(first.dispute_window_ends_at, second.dispute_window_ends_at)
    event = Event.objects.get(verb="payout.created", target_id=str(payout.pk))
    assert (event.to_state, event.data) == (
        S.ACCRUING,
        {"amount": "135.99", "items": "135.99", "carried": "0.00", "bookings": [first.pk, second.pk]},
    )


def test_payout_create_pays_what_is_left_after_refunds():
    # given a settled booking of 100.00 (fee 15.00) refunded 40.00 (6.00 of it from the fee)
    booking = flows.settled_booking(**fee_of("100.00"))
    payment_refund(
        payment=Payment.objects.get(booking=booking),
        amount=Decimal("40.00"),
        actor=None,
        reason="",
        idempotency_key="r",
    )

    # when it is paid out
    payout = payouts.payout_create(partner=booking.partner, bookings=[booking])

    # then the provider gets 60.00 - 9.00 fee left = 51.00
    assert payout.amount == Decimal("51.00")


def test_payout_create_refuses_a_disputed_booking_and_writes_nothing():
    # given a settled booking and one held by an open dispute
    settled = flows.settled_booking()
    disputed = flows.settled_booking(listing=settled.listing, window_open=True)
    dispute_open(booking=disputed, actor=disputed.client, reason_code=Dispute.Reason.QUALITY, description="Broken")
    counts = written()

    # when a payout is created for both
    with pytest.raises(ApplicationError) as exc:
        payouts.payout_create(partner=settled.partner, bookings=[settled, disputed])

    # then it is refused with a clear reason, and nothing is written
    assert type(exc.value) is ApplicationError
    assert exc.value.message == f"Booking #{disputed.pk} is held by an open dispute and cannot be paid out."
    assert written() == counts


def test_payout_create_refuses_another_partners_booking():
    # given bookings of two partners
    ours, theirs = flows.settled_booking(), flows.settled_booking()
    counts = written()

    # when one partner's payout is asked to include the other's booking
    with pytest.raises(InvalidInput) as exc:
        payouts.payout_create(partner=ours.partner, bookings=[ours, theirs])

    # then it is refused and nothing is written
    assert exc.value.message == f"Booking #{theirs.pk} belongs to another partner."
    assert written() == counts


@pytest.mark.parametrize("status", ["accepted", "in_progress"])
def test_payout_create_refuses_an_unsettled_booking(status):
    # given a booking that is not yet completed
    booking = flows.booking_in(status)
    counts = written()

    # when a payout is created for it
    with pytest.raises(ApplicationError) as exc:
        payouts.payout_create(partner=booking.partner, bookings=[booking])

    # then it is refused naming its state, and nothing is written
    assert exc.value.message == f"Booking #{booking.pk} is '{status}', not settled; it cannot be paid out."
    assert written() == counts


def test_payout_create_refuses_a_booking_already_in_a_live_payout():
    # given a booking in an accruing payout
    booking = flows.settled_booking()
    payouts.payout_create(partner=booking.partner, bookings=[booking])
    counts = written()

    # when a second payout is created for it
    with pytest.raises(ApplicationError) as exc:
        payouts.payout_create(partner=booking.partner, bookings=[booking])

    # then it is refused and nothing is written
    assert exc.value.message == "One of these bookings is already in a live payout."
    assert written() == counts


def test_payout_create_takes_a_booking_of_a_cancelled_payout():
    # given a booking whose payout was cancelled
    payout = payout_in(S.CANCELLED)
    booking = payout.items.get().booking

    # when a new payout is created for it
    again = payouts.payout_create(partner=booking.partner, bookings=[booking])

    # then the booking moves to the new payout
    assert again.amount == payout.amount
    assert list(PayoutItem.objects.filter(booking=booking, is_active=True).values_list("payout_id", flat=True)) == [
        again.pk
    ]


def test_payout_create_refuses_nothing_owed():
    # given a booking refunded in full, and an empty list
    booking = flows.settled_booking()
    payment_refund(
        payment=Payment.objects.get(booking=booking), amount=booking.amount, actor=None, reason="", idempotency_key="r"
    )

    # when payouts are created for them, then both are refused
    with pytest.raises(InvalidInput, match="Nothing is owed for these bookings; no payout was created."):
        payouts.payout_create(partner=booking.partner, bookings=[booking])
    with pytest.raises(InvalidInput, match="A payout needs at least one booking."):
        payouts.payout_create(partner=booking.partner, bookings=[])
    assert not Payout.objects.exists()


def test_payout_create_for_risk_flagged_partner_starts_on_hold():
    # given a partner flagged for risk
    partner = PartnerFactory(risk_flag=True)
    booking = flows.settled_booking(listing__partner=partner)

    # when a payout is created
    payout = payouts.payout_create(partner=partner, bookings=[booking])

    # then it is on hold with a risk hold, and will need a person's approval
    payout.refresh_from_db()
    assert payout.status == S.ON_HOLD
    assert list(payout.holds.values_list("kind", "released_at")) == [(PayoutHold.Kind.RISK, None)]
    event = Event.objects.get(verb="payout.hold", target_id=str(payout.pk))
    assert (event.from_state, event.to_state, event.reason) == (S.ACCRUING, S.ON_HOLD, "Partner is risk-flagged")
    assert payouts.payout_needs_approval(payout)


# --- approval: four eyes ----------------------------------------------------------------------


def awaiting(requester, **booking_kwargs) -> Payout:
    payout = payout_in(S.READY, **booking_kwargs)
    return payouts.payout_request_approval(payout=payout, actor=requester, note="Please approve")


def test_payout_approve_by_the_requester_is_refused():
    # given a payout that a Finance user asked approval for
    finance = staff(StaffGroup.FINANCE)
    payout = awaiting(finance)
    before = row(payout)

    # when the same person approves it
    with pytest.raises(NotPermitted) as exc:
        payouts.payout_approve(payout=payout, actor=finance)

    # then it is refused: a second person must approve, and the payout is unchanged
    assert exc.value.message == f"You requested payout #{payout.pk}; a second person must approve it."
    assert row(payout) == before


def test_payout_approve_by_a_second_finance_user_approves():
    # given a payout awaiting approval, requested by a lead
    lead, finance = staff(StaffGroup.OPERATIONS_LEAD), staff(StaffGroup.FINANCE)
    payout = awaiting(lead)

    # when a Finance user approves it
    payouts.payout_approve(payout=payout, actor=finance)

    # then it is approved by them, requested by the lead
    payout.refresh_from_db()
    assert (payout.status, payout.requested_by_id, payout.approved_by_id) == (S.APPROVED, lead.pk, finance.pk)
    assert payout.approved_at is not None


@pytest.mark.parametrize(
    "approver, error",
    [
        ("agent of the partner", "You do not have the permission to approve payouts."),
        ("approver of another partner", "Payout #{pk} is outside your scope."),
        ("approver with no grant", "Payout #{pk} is outside your scope."),
        ("inactive approver of the partner", "You do not have the permission to approve payouts."),
    ],
)
def test_payout_approve_without_permission_or_scope_is_refused(approver, error):
    # given a payout awaiting approval
    payout = awaiting(staff(StaffGroup.OPERATIONS_LEAD))
    if approver == "agent of the partner":
        actor = staff(StaffGroup.OPERATIONS_AGENT)
        partner_scope_grant(partner=payout.partner, grantee=actor)
    elif approver == "approver of another partner":
        actor = staff_with("approve_payout")
        partner_scope_grant(partner=PartnerFactory(), grantee=actor)
    elif approver == "approver with no grant":
        actor = staff_with("approve_payout")
    else:
        actor = staff_with("approve_payout", is_active=False)
        partner_scope_grant(partner=payout.partner, grantee=actor)
    before = row(payout)

    # when they approve it
    with pytest.raises(NotPermitted) as exc:
        payouts.payout_approve(payout=payout, actor=actor)

    # then it is refused and the payout still awaits approval
    assert exc.value.message == error.format(pk=payout.pk)
    assert row(payout) == before


def test_payout_approve_by_an_approver_granted_the_partner_approves():
    # given a payout awaiting approval and an approver (not Finance) granted its partner
    payout = awaiting(staff(StaffGroup.OPERATIONS_LEAD))
    approver = staff_with("approve_payout")
    partner_scope_grant(partner=payout.partner, grantee=approver)

    # when they approve it
    payouts.payout_approve(payout=payout, actor=approver)

    # then it is approved
    payout.refresh_from_db()
    assert (payout.status, payout.approved_by_id) == (S.APPROVED, approver.pk)


def test_payout_approve_above_the_finance_threshold_needs_finance():
    # given a payout of 17,000.00 (above MARKETPLACE_PAYOUT_FINANCE_ABOVE = 10,000.00) awaiting approval
    payout = awaiting(staff(StaffGroup.OPERATIONS_LEAD), **fee_of("20000.00"))
    assert payout.amount == Decimal("17000.00")
    approver = staff_with("approve_payout")
    partner_scope_grant(partner=payout.partner, grantee=approver)
    before = row(payout)

    # when an approver in scope but not in Finance approves it, then it is refused
    with pytest.raises(NotPermitted) as exc:
        payouts.payout_approve(payout=payout, actor=approver)
    assert exc.value.message == f"Payout #{payout.pk} is above 10000.00 EUR; only Finance can approve it."
    assert row(payout) == before

    # when a Finance user approves it, then it is approved
    payouts.payout_approve(payout=payout, actor=staff(StaffGroup.FINANCE))
    assert Payout.objects.get(pk=payout.pk).status == S.APPROVED


def test_payout_auto_approve_above_the_approval_threshold_is_refused():
    # given a ready payout of 1,020.00 (above MARKETPLACE_PAYOUT_APPROVAL_ABOVE = 1,000.00)
    payout = payout_in(S.READY, **fee_of("1200.00"))
    before = row(payout)

    # when it is auto-approved
    with pytest.raises(NotPermitted) as exc:
        payouts.payout_auto_approve(payout=payout)

    # then a person's approval is required and nothing changed
    assert exc.value.message == f"Payout #{payout.pk} of 1020.00 EUR needs a person's approval."
    assert row(payout) == before


def test_payout_reject_sends_it_back_to_ready_and_forgets_the_requester():
    # given a payout awaiting approval
    payout = awaiting(staff(StaffGroup.OPERATIONS_LEAD))

    # when Finance rejects it
    payouts.payout_reject(payout=payout, actor=staff(StaffGroup.FINANCE), reason="Wrong account")

    # then it is ready again with no requester
    payout.refresh_from_db()
    assert (payout.status, payout.requested_by_id) == (S.READY, None)
    assert Event.objects.get(verb="payout.reject", target_id=str(payout.pk)).reason == "Wrong account"


# --- holds ------------------------------------------------------------------------------------


def test_payout_two_holds_need_two_releases():
    # given an accruing payout (its hold period over) held twice, manually and for risk
    lead = staff(StaffGroup.OPERATIONS_LEAD)
    payout = payout_in(S.ACCRUING)
    payouts.payout_hold(payout=payout, actor=lead, reason="Checking documents")
    payouts.payout_hold(payout=payout, actor=lead, reason="Chargeback pattern", kind=PayoutHold.Kind.RISK)
    assert payout.holds.filter(released_at=None).count() == 2
    assert Event.objects.filter(verb="payout.hold_added", target_id=str(payout.pk)).count() == 1

    # when the manual hold is released
    payouts.payout_release_hold(payout=payout, actor=lead, kind=PayoutHold.Kind.MANUAL)

    # then the payout stays on hold
    payout.refresh_from_db()
    assert payout.status == S.ON_HOLD
    assert list(payout.holds.filter(released_at=None).values_list("kind", flat=True)) == [PayoutHold.Kind.RISK]

    # when the risk hold is released too
    payouts.payout_release_hold(payout=payout, actor=lead, kind=PayoutHold.Kind.RISK)

    # then, its hold period being over, it goes back to accruing and straight on to ready
    payout.refresh_from_db()
    assert payout.status == S.READY
    verbs = list(
        Event.objects.filter(target_id=str(payout.pk), verb__startswith="payout.")
        .order_by("id")
        .values_list("verb", "from_state", "to_state")
    )
    assert verbs[-3:] == [
        ("payout.hold_released", "", ""),
        ("payout.release", S.ON_HOLD, S.ACCRUING),
        ("payout.mature", S.ACCRUING, S.READY),
    ]


def test_payout_release_before_the_hold_period_is_over_goes_back_to_accruing():
    # given a payout of a booking completed just now, on hold
    booking = flows.booking_in("completed")
    PayoutAccountFactory(partner=booking.partner)
    payout = payout_in(S.ON_HOLD, bookings=[booking])

    # when its hold is released
    payouts.payout_release_hold(payout=payout, actor=staff(StaffGroup.OPERATIONS_LEAD))

    # then it accrues until the hold period is over, and cannot mature before
    payout.refresh_from_db()
    assert payout.status == S.ACCRUING
    assert payout.hold_until > timezone.now()
    with pytest.raises(InvalidInput, match=f"Payout #{payout.pk} is held until "):
        payouts.payout_mature(payout=payout)


def test_payout_hold_needs_a_reason():
    payout = payout_in(S.ACCRUING)
    with pytest.raises(InvalidInput, match="A reason is required to hold a payout."):
        payouts.payout_hold(payout=payout, actor=None, reason="  ")
    assert Payout.objects.get(pk=payout.pk).status == S.ACCRUING


# --- attempts ---------------------------------------------------------------------------------


def test_payout_submit_on_commit_processes_the_attempt_and_pays(django_capture_on_commit_callbacks):
    # given an approved payout of 85.00
    payout = payout_in(S.APPROVED)

    # when it is submitted and the transaction commits (the task runs inline in tests)
    with django_capture_on_commit_callbacks(execute=True):
        attempt = payouts.payout_submit(payout=payout, actor=None)

    # then the attempt is made with key payout-<id>-attempt-1 and the payout is paid and posted
    attempt.refresh_from_db()
    payout.refresh_from_db()
    assert (attempt.number, attempt.idempotency_key, attempt.status) == (
        1,
        f"payout-{payout.pk}-attempt-1",
        "succeeded",
    )
    assert (payout.status, payout.gateway_reference) == (S.PAID, attempt.gateway_reference)
    assert payout.paid_at is not None
    assert LedgerTransaction.objects.filter(kind="payout", source=f"payouts.payout:{payout.pk}").count() == 1


def test_payout_attempt_failed_at_the_gateway_fails_the_payout_with_its_reason():
    # given a submitted payout to an account the gateway declines
    booking = flows.booking_in("completed")
    PayoutAccountFactory(partner=booking.partner, gateway_reference="acct_fail_closed")
    Booking.objects.filter(pk=booking.pk).update(
        completed_at=timezone.now() - timedelta(days=30), dispute_window_ends_at=timezone.now() - timedelta(days=16)
    )
    booking.refresh_from_db()
    payout = payout_in(S.SUBMITTED, bookings=[booking])

    # when the attempt is processed
    payouts.payout_attempt_process(attempt_id=last_attempt(payout).pk)

    # then the payout fails with the gateway's reason, and no money is posted
    payout.refresh_from_db()
    attempt = last_attempt(payout)
    assert (payout.status, payout.failure_reason) == (S.FAILED, "sandbox: payout declined")
    assert (attempt.status, attempt.error) == ("failed", "sandbox: payout declined")
    event = Event.objects.get(verb="payout.mark_failed", target_id=str(payout.pk))
    assert (event.from_state, event.to_state, event.reason) == (S.SUBMITTED, S.FAILED, "sandbox: payout declined")
    assert not LedgerTransaction.objects.filter(kind="payout").exists()


def test_payout_attempt_without_payout_account_fails_the_payout():
    # given a submitted payout of a partner with no payout account
    booking = flows.booking_in("completed")
    Booking.objects.filter(pk=booking.pk).update(
        completed_at=timezone.now() - timedelta(days=30), dispute_window_ends_at=timezone.now() - timedelta(days=16)
    )
    booking.refresh_from_db()
    payout = payout_in(S.SUBMITTED, bookings=[booking])

    # when the attempt is processed
    payouts.payout_attempt_process(attempt_id=last_attempt(payout).pk)

    # then it fails saying why
    payout.refresh_from_db()
    assert (payout.status, payout.failure_reason) == (S.FAILED, "The partner has no payout account.")


def test_payout_retry_makes_a_new_attempt_with_a_new_key(sandbox_gateway):
    # given a payout whose first attempt failed
    payout = payout_in(S.FAILED)
    assert payout.failure_reason == "sandbox: injected payout failure"

    # when it is retried, approved and submitted again
    payouts.payout_retry(payout=payout, actor=staff(StaffGroup.FINANCE))
    payout.refresh_from_db()
    assert (payout.status, payout.failure_reason) == (S.READY, "")
    payouts.payout_auto_approve(payout=payout)
    with submissions_not_sent():
        attempt = payouts.payout_submit(payout=payout)
    payouts.payout_attempt_process(attempt_id=attempt.pk)

    # then the second attempt has its own key and the payout is paid once
    assert (attempt.number, attempt.idempotency_key) == (2, f"payout-{payout.pk}-attempt-2")
    assert list(PayoutAttempt.objects.filter(payout=payout).values_list("idempotency_key", "status")) == [
        (f"payout-{payout.pk}-attempt-1", "failed"),
        (f"payout-{payout.pk}-attempt-2", "succeeded"),
    ]
    payout.refresh_from_db()
    assert (payout.status, payout.attempt_count) == (S.PAID, 2)
    payout_calls = [key for op, key in sandbox_gateway.calls if op == "payout"]
    assert payout_calls == [f"payout-{payout.pk}-attempt-1", f"payout-{payout.pk}-attempt-2"]


def test_payout_attempt_processed_twice_pays_once(sandbox_gateway):
    # given a submitted payout
    payout = payout_in(S.SUBMITTED)
    attempt = last_attempt(payout)

    # when its attempt is processed twice (the task queue delivers at least once)
    first = payouts.payout_attempt_process(attempt_id=attempt.pk)
    second = payouts.payout_attempt_process(attempt_id=attempt.pk)

    # then the gateway is called once, the payout is paid once, and one payout transaction is posted
    assert first.status == S.PAID
    assert second is None
    assert [call for call in sandbox_gateway.calls if call[0] == "payout"] == [("payout", attempt.idempotency_key)]
    assert LedgerTransaction.objects.filter(kind="payout").count() == 1
    assert Event.objects.filter(verb="payout.mark_paid", target_id=str(payout.pk)).count() == 1


def test_payout_cancel_frees_its_bookings():
    # given an accruing payout
    payout = payout_in(S.ACCRUING)

    # when it is cancelled
    payouts.payout_cancel(payout=payout, actor=staff(StaffGroup.FINANCE), reason="Duplicate")

    # then its items are no longer live
    assert list(payout.items.values_list("is_active", flat=True)) == [False]


@pytest.mark.parametrize(
    "service", [payouts.payout_cancel, payouts.payout_reverse, payouts.payout_reject], ids=lambda f: f.__name__
)
def test_payout_transitions_that_need_a_reason_refuse_a_blank_one(service):
    payout = payout_in(S.ACCRUING)
    before = row(payout)
    with pytest.raises(InvalidInput, match="A reason is required"):
        service(payout=payout, actor=None, reason=" ")
    assert row(payout) == before


@pytest.mark.parametrize("detour", ["hold and release", "failure and retry"])
def test_payout_approval_is_asked_afresh_after_the_payout_went_back_to_ready(detour):
    # given a payout of 1,020.00 requested by a lead and approved by a Finance user
    lead, finance = staff(StaffGroup.OPERATIONS_LEAD), staff(StaffGroup.FINANCE)
    payout = awaiting(lead, **fee_of("1200.00"))
    payouts.payout_approve(payout=payout, actor=finance)
    # that went back to ready: held (a dispute, a risk check) and released, or failed at the gateway and retried
    if detour == "hold and release":
        payouts.payout_hold(payout=payout, actor=lead, reason="Dispute on a booking")
        payouts.payout_release_hold(payout=payout, actor=lead)
    else:
        with submissions_not_sent():
            attempt = payouts.payout_submit(payout=payout, actor=finance)
        SandboxGateway.fail_next("payout")
        payouts.payout_attempt_process(attempt_id=attempt.pk)
        payouts.payout_retry(payout=payout, actor=finance)
    payout.refresh_from_db()
    assert payout.status == S.READY

    # when the Finance user who approved it last time now asks for approval
    payouts.payout_request_approval(payout=payout, actor=finance, note="Again, please")

    # then it awaits a fresh approval: the old approval no longer counts
    payout.refresh_from_db()
    assert (payout.status, payout.requested_by_id, payout.approved_by_id) == (S.AWAITING_APPROVAL, finance.pk, None)

    # and a second person approves it
    approver = staff(StaffGroup.FINANCE)
    payouts.payout_approve(payout=payout, actor=approver)
    payout.refresh_from_db()
    assert (payout.status, payout.approved_by_id) == (S.APPROVED, approver.pk)


def test_payout_create_takes_the_bookings_of_a_reversed_payout():
    # given a payout of 85.00 that was paid and then returned by the bank: the provider is owed 85.00 again
    payout = payout_in(S.REVERSED, **fee_of("100.00"))
    booking = payout.items.get().booking

    # when a new payout is created for its booking
    again = payouts.payout_create(partner=booking.partner, bookings=[booking])

    # then the 85.00 is paid out anew
    assert (again.status, again.amount) == (S.ACCRUING, Decimal("85.00"))


# --- staff scope on every staff step ----------------------------------------------------------


def _submit_as(payout, actor):
    with submissions_not_sent():
        return payouts.payout_submit(payout=payout, actor=actor)


# step -> (the state it is taken from, the model permission it needs, the call with an actor)
STAFF_STEPS = {
    "hold": (S.ACCRUING, "hold_payout", lambda p, a: payouts.payout_hold(payout=p, actor=a, reason="Documents")),
    "release": (S.ON_HOLD, "hold_payout", lambda p, a: payouts.payout_release_hold(payout=p, actor=a)),
    "request_approval": (
        S.READY,
        "change_payout",
        lambda p, a: payouts.payout_request_approval(payout=p, actor=a, note="Large"),
    ),
    "submit": (S.APPROVED, "change_payout", _submit_as),
    "retry": (S.FAILED, "change_payout", lambda p, a: payouts.payout_retry(payout=p, actor=a)),
    "cancel": (S.ACCRUING, "change_payout", lambda p, a: payouts.payout_cancel(payout=p, actor=a, reason="Closed")),
    "reverse": (S.PAID, "change_payout", lambda p, a: payouts.payout_reverse(payout=p, actor=a, reason="Bank")),
}
SCOPES = ["the payout's partner", "another partner", "no grant", "the partner, without the permission"]
STAFF_MATRIX = [(step, scope) for step in STAFF_STEPS for scope in SCOPES]


@pytest.mark.parametrize(("step", "scope"), STAFF_MATRIX, ids=[f"{s}-{c}" for s, c in STAFF_MATRIX])
def test_payout_staff_step_matrix_scope(step, scope):
    # given a payout where `step` applies, and staff with one kind of scope
    state, permission, call = STAFF_STEPS[step]
    payout = payout_in(state)
    if scope == "the partner, without the permission":
        actor = operator_with("view_payout", scope=payout.partner)
    else:
        partner = {"the payout's partner": payout.partner, "another partner": PartnerFactory(), "no grant": None}
        actor = operator_with(permission, scope=partner[scope])
    before, counts = row(payout), written()

    if scope == "the payout's partner":
        # when they take the step, then it is taken, in their name
        call(payout, actor)
        assert row(payout) != before
        assert Event.objects.filter(target_id=str(payout.pk), actor=actor).exists()
    else:
        # when they take the step, then it is refused, and nothing is written
        with pytest.raises(NotPermitted) as exc:
            call(payout, actor)
        if scope == "the partner, without the permission":
            assert exc.value.message.startswith("You do not have the permission to ")
            assert exc.value.message.endswith(f"(payout #{payout.pk}).")
        else:
            assert exc.value.message == f"Payout #{payout.pk} is outside your scope."
        assert row(payout) == before
        assert written() == counts


@pytest.mark.parametrize("step", ["hold", "release", "retry", "cancel", "reverse"])
def test_payout_staff_step_by_the_system_needs_no_actor(step):
    # given a payout where `step` applies  # when the system takes it (actor None)
    state, _, call = STAFF_STEPS[step]
    payout = payout_in(state)
    call(payout, None)
    # then it is taken
    event = Event.objects.filter(target_id=str(payout.pk), verb__startswith="payout.").latest("id")
    assert event.actor is None
    assert row(payout)["status"] != state


def test_payout_reject_by_an_approver_of_another_partner_is_refused():
    # given a payout awaiting approval, and an approver granted another partner
    payout = awaiting(staff(StaffGroup.OPERATIONS_LEAD))
    approver = operator_with("approve_payout", scope=PartnerFactory())
    before, counts = row(payout), written()
    # when they reject it
    with pytest.raises(NotPermitted) as exc:
        payouts.payout_reject(payout=payout, actor=approver, reason="Wrong bank")
    # then it still awaits approval and nothing is written
    assert exc.value.message == f"Payout #{payout.pk} is outside your scope."
    assert (row(payout), written()) == (before, counts)
