"""Every payout transition fired twice at once from two database connections: exactly one wins,
the other is refused with TransitionNotAllowed (or, where documented, is a no-op), and money moves
once (STYLE.md, Tests).

Each race is run with `run_overlapping`: the second call is seen waiting on the payout's row lock
(pg_stat_activity) while the first still holds it, so the two transactions really overlapped, and
the first one wins."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from marketplace.accounts.services import StaffGroup
from marketplace.audit.models import Event
from marketplace.core.exceptions import TransitionNotAllowed
from marketplace.ledger.models import LedgerTransaction
from marketplace.payments.gateway import SandboxGateway
from marketplace.payouts import services as payouts
from marketplace.payouts.models import Payout, PayoutAttempt, PayoutHold
from marketplace.payouts.reconciliation import ledger_reconcile
from marketplace.payouts.services import TRANSITIONS
from tests.concurrency import run_overlapping
from tests.factories.settlement import payout_in, staff

two_connections = pytest.mark.django_db(transaction=True)

S = Payout.Status


def events(payout: Payout, verb: str) -> int:
    return Event.objects.filter(verb=verb, target_id=str(payout.pk)).count()


def gateway_calls(operation: str) -> list[str]:
    return [key for op, key in SandboxGateway.calls if op == operation]


# transition -> (the state it is fired from, two calls of it by two people, the state the race ends in)
def _two_leads(service, **kwargs):
    def calls(payout):
        first, second = staff(StaffGroup.OPERATIONS_LEAD), staff(StaffGroup.OPERATIONS_LEAD)
        return (
            lambda: service(payout=payout, actor=first, **kwargs),
            lambda: service(payout=payout, actor=second, **kwargs),
        )

    return calls


def _two_finance(service, **kwargs):
    def calls(payout):
        first, second = staff(StaffGroup.FINANCE), staff(StaffGroup.FINANCE)
        return (
            lambda: service(payout=payout, actor=first, **kwargs),
            lambda: service(payout=payout, actor=second, **kwargs),
        )

    return calls


def _timer(service):
    def calls(payout):
        return (lambda: service(payout=payout), lambda: service(payout=payout))

    return calls


def _timer_due(service):
    """The automatic retry, fired by two timers once the payout's backoff is over."""

    def calls(payout):
        Payout.objects.filter(pk=payout.pk).update(next_retry_at=timezone.now() - timedelta(seconds=1))
        return (lambda: service(payout=payout), lambda: service(payout=payout))

    return calls


REFUSED_RACES = {
    "release": (S.ON_HOLD, _two_leads(payouts.payout_release_hold), S.READY),
    "mature": (S.ACCRUING, _timer(payouts.payout_mature), S.READY),
    "request_approval": (S.READY, _two_leads(payouts.payout_request_approval), S.AWAITING_APPROVAL),
    "auto_approve": (S.READY, _timer(payouts.payout_auto_approve), S.APPROVED),
    "approve": (S.AWAITING_APPROVAL, _two_finance(payouts.payout_approve), S.APPROVED),
    "reject": (S.AWAITING_APPROVAL, _two_finance(payouts.payout_reject, reason="Wrong account"), S.READY),
    "retry": (S.FAILED, _two_finance(payouts.payout_retry), S.READY),
    "auto_retry": (S.FAILED, _timer_due(payouts.payout_auto_retry), S.APPROVED),
    "cancel": (S.ACCRUING, _two_finance(payouts.payout_cancel, reason="Duplicate"), S.CANCELLED),
    "reverse": (S.PAID, _two_finance(payouts.payout_reverse, reason="Returned by the bank"), S.REVERSED),
}
# Raced in their own tests below, with what each moves: the hold (documented no-op for the second),
# the submission (one attempt, paid once), and the gateway's answer to an attempt (processed once).
OWN_TESTS = {"hold", "submit", "mark_paid", "mark_failed"}


def test_payout_concurrency_covers_every_transition():
    assert set(TRANSITIONS) == set(REFUSED_RACES) | OWN_TESTS


@two_connections
@pytest.mark.parametrize("transition", sorted(REFUSED_RACES))
def test_payout_transition_twice_at_once_one_wins(transition):
    # given a payout in the state the transition starts from, and two people (or timers) to fire it
    source, calls, end = REFUSED_RACES[transition]
    payout = payout_in(source)
    ledger_before = LedgerTransaction.objects.count()

    # when the second fires it while the first still holds the payout
    overlap = run_overlapping(*calls(payout))

    # then the second was seen waiting on the payout's row lock before the first committed
    assert overlap.wait.waiting_for == ("Lock", "SELECT", "payouts_payout")
    # and the first wins; the second is told the payout already moved on
    winner, loser = overlap.one_winner()
    assert (winner.index, loser.index) == (0, 1)
    assert isinstance(loser.error, TransitionNotAllowed), loser.error
    assert loser.error.message == f"Payout #{payout.pk} is '{end}': cannot {transition}."
    payout.refresh_from_db()
    assert payout.status == end
    assert events(payout, f"payout.{transition}") == 1
    # and money moved at most once: only a reversal posts, once
    expected = 1 if transition == "reverse" else 0
    assert LedgerTransaction.objects.count() == ledger_before + expected
    assert ledger_reconcile().balanced
    if transition == "approve":
        assert payout.approved_by_id == winner.value.approved_by_id


@two_connections
def test_payout_hold_twice_at_once_holds_once():
    # given an accruing payout and two leads
    payout = payout_in(S.ACCRUING)
    first, second = staff(StaffGroup.OPERATIONS_LEAD), staff(StaffGroup.OPERATIONS_LEAD)

    # when the second puts a manual hold on it while the first's hold still holds the payout
    overlap = run_overlapping(
        lambda: payouts.payout_hold(payout=payout, actor=first, reason="Documents"),
        lambda: payouts.payout_hold(payout=payout, actor=second, reason="Documents"),
    )

    # then the second waited on the payout's row lock, then (as documented) found the payout
    # already on hold with that hold and changed nothing
    assert overlap.wait.waiting_for == ("Lock", "SELECT", "payouts_payout")
    assert overlap.errors == []
    payout.refresh_from_db()
    assert payout.status == S.ON_HOLD
    assert PayoutHold.objects.filter(payout=payout, released_at=None).count() == 1
    assert events(payout, "payout.hold") == 1
    assert events(payout, "payout.hold_added") == 0


@two_connections
def test_payout_submit_twice_at_once_makes_one_attempt_and_pays_once():
    # given an approved payout of 85.00 (the winner's attempt is processed on commit: tasks run inline)
    payout = payout_in(
        S.APPROVED, amount=Decimal("100.00"), commission_rate=Decimal("0.15"), platform_fee=Decimal("15.00")
    )
    finance = staff(StaffGroup.FINANCE)

    # when it is submitted a second time while the first submission still holds the payout
    overlap = run_overlapping(
        lambda: payouts.payout_submit(payout=payout, actor=finance),
        lambda: payouts.payout_submit(payout=payout, actor=finance),
    )

    # then the second waited on the payout's row lock; one attempt is made, the second submission
    # is refused (the payout is submitted, or already paid by the attempt's task), and the gateway pays once
    assert overlap.wait.waiting_for == ("Lock", "SELECT", "payouts_payout")
    winner, loser = overlap.one_winner()
    assert (winner.index, loser.index) == (0, 1)
    assert isinstance(loser.error, TransitionNotAllowed), loser.error
    assert loser.error.state in (S.SUBMITTED, S.PAID)
    assert loser.error.transition == "submit"
    assert list(PayoutAttempt.objects.filter(payout=payout).values_list("idempotency_key", "status")) == [
        (f"payout-{payout.pk}-attempt-1", "succeeded")
    ]
    assert winner.value.idempotency_key == f"payout-{payout.pk}-attempt-1"
    payout.refresh_from_db()
    assert (payout.status, payout.attempt_count) == (S.PAID, 1)
    assert gateway_calls("payout") == [f"payout-{payout.pk}-attempt-1"]
    assert list(LedgerTransaction.objects.filter(kind="payout").values_list("source", flat=True)) == [
        f"payouts.payout:{payout.pk}"
    ]
    assert events(payout, "payout.submit") == 1
    assert ledger_reconcile().balanced


@two_connections
@pytest.mark.parametrize("answer", ["mark_paid", "mark_failed"])
def test_payout_attempt_processed_twice_at_once_answers_once(answer):
    # given a submitted payout (whose gateway will refuse it, for mark_failed)
    payout = payout_in(S.SUBMITTED)
    attempt = PayoutAttempt.objects.get(payout=payout)
    if answer == "mark_failed":
        SandboxGateway.fail_next("payout")

    # when its attempt is processed by a second worker while the first holds the payout (the queue
    # delivers at least once)
    overlap = run_overlapping(
        lambda: payouts.payout_attempt_process(attempt_id=attempt.pk),
        lambda: payouts.payout_attempt_process(attempt_id=attempt.pk),
    )

    # then the second waited on the payout's row lock, then (as documented) returned without
    # processing it: the first had finished it
    assert overlap.wait.waiting_for == ("Lock", "SELECT", "payouts_payout")
    assert overlap.errors == []
    first, second = overlap
    assert (first.value.pk, second.value) == (payout.pk, None)
    payout.refresh_from_db()
    attempt.refresh_from_db()
    assert payout.status == (S.PAID if answer == "mark_paid" else S.FAILED)
    assert attempt.status == ("succeeded" if answer == "mark_paid" else "failed")
    # both asked the gateway (outside any lock) with the attempt's one key, so the bank answered
    # the same thing twice and moved money at most once; the answer was recorded once
    assert set(gateway_calls("payout")) == {attempt.idempotency_key}
    assert events(payout, f"payout.{answer}") == 1
    assert LedgerTransaction.objects.filter(kind="payout").count() == (1 if answer == "mark_paid" else 0)
    assert ledger_reconcile().balanced
