"""Gateway calls (marketplace/payments/services/calls.py): the intent committed first, the gateway
asked outside any transaction, the outcome recorded once in a second transaction; what a crash, a
gateway that does not answer and a second operation in flight leave behind, and how
`gateway_calls_resume` finishes them with the same key."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from marketplace.audit.models import Event
from marketplace.audit.services import event_record
from marketplace.bookings.models import Booking
from marketplace.core.exceptions import InvalidInput, PaymentFailed
from marketplace.core.transitions import lock
from marketplace.ledger.models import LedgerTransaction
from marketplace.payments.gateway import SandboxGateway
from marketplace.payments.models import GatewayCall, Payment, Refund
from marketplace.payments.services import (
    GatewayCallInProgress,
    GatewayCallUnanswered,
    booking_accept,
    booking_authorize,
    booking_cancel,
    booking_decline,
    gateway_call_run,
    gateway_calls_resume,
    payment_refund_open,
)
from marketplace.payments.services import payments as payment_services
from tests.concurrency import run_concurrently
from tests.factories import PaymentMethodFactory
from tests.factories.states import booking_at

S = Booking.Status
C = GatewayCall.Status
P = Payment.Status
NOTHING_DUE = {"succeeded": 0, "declined": 0, "refused": 0, "unanswered": 0, "skipped": 0, "errors": 0}


def _make_stale(call: GatewayCall) -> None:
    """Time passes: the call is now older than MARKETPLACE_GATEWAY_CALL_STALE_SECONDS."""
    GatewayCall.objects.filter(pk=call.pk).update(next_try_at=timezone.now() - timedelta(seconds=1))


def _keys(gateway, operation: str) -> list[str]:
    return [key for op, key in gateway.calls if op == operation]


@pytest.fixture
def sandbox_book(tmp_path, monkeypatch):
    """The sandbox's shared book (what the bank's side remembers, one line per key it answered)."""
    path = tmp_path / "sandbox-book.jsonl"
    monkeypatch.setenv("MARKETPLACE_SANDBOX_BOOK", str(path))
    return lambda: SandboxGateway.read_book(str(path))


@pytest.fixture
def recording_dies_once(monkeypatch):
    """The process dies after the gateway answered, before the outcome is committed (once)."""
    original = payment_services.payment_capture_record
    deaths = []

    def dies_once(*, call):
        if not deaths:
            deaths.append(call.pk)
            raise RuntimeError("the worker was killed")
        return original(call=call)

    monkeypatch.setattr(payment_services, "payment_capture_record", dies_once)
    return deaths


# --- Attempts and keys --------------------------------------------------------------------------


@pytest.mark.django_db
def test_booking_authorize_declined_then_good_card_records_two_attempts(sandbox_gateway):
    # given a booking waiting for payment
    booking = booking_at(S.PENDING_PAYMENT)
    declined = PaymentMethodFactory(user=booking.client, gateway_token="tok_decline", is_default=False)
    good = PaymentMethodFactory(user=booking.client, is_default=False)

    # when a declined card is tried first
    with pytest.raises(PaymentFailed) as raised:
        booking_authorize(booking=booking, actor=booking.client, method=declined)

    # then the decline is kept as a failed attempt and the booking still waits for payment
    assert str(raised.value) == f"The payment for booking #{booking.pk} was declined: sandbox: authorize declined"
    [failed] = GatewayCall.objects.filter(booking=booking)
    assert (failed.operation, failed.status, failed.number, failed.error, failed.method_id) == (
        "authorize",
        C.FAILED,
        1,
        "sandbox: authorize declined",
        declined.pk,
    )
    assert failed.idempotency_key == f"authorize:booking:{booking.pk}:method:{declined.pk}:attempt:1"
    booking.refresh_from_db()
    assert booking.status == S.PENDING_PAYMENT

    # and when a good card is tried, it pays: one payment, a second attempt under its own key
    booking_authorize(booking=booking, actor=booking.client, method=good)
    booking.refresh_from_db()
    assert booking.status == S.AUTHORIZED
    payment = Payment.objects.get(booking=booking)
    calls = list(GatewayCall.objects.filter(booking=booking).order_by("number"))
    assert [(c.number, c.status, c.idempotency_key) for c in calls] == [
        (1, C.FAILED, failed.idempotency_key),
        (2, C.SUCCEEDED, f"authorize:booking:{booking.pk}:method:{good.pk}:attempt:2"),
    ]
    assert (calls[1].payment_id, calls[1].reference) == (payment.pk, payment.gateway_reference)
    assert _keys(sandbox_gateway, "authorize") == [c.idempotency_key for c in calls]


@pytest.mark.django_db
def test_booking_accept_capture_key_names_the_payment_and_the_attempt(sandbox_gateway):
    # given an authorised booking whose first capture the gateway refuses
    booking = booking_at(S.AUTHORIZED)
    payment = Payment.objects.get(booking=booking)
    sandbox_gateway.fail_next("capture")
    with pytest.raises(PaymentFailed):
        booking_accept(booking=booking, actor=booking.provider)

    # when the provider accepts again
    booking_accept(booking=booking, actor=booking.provider)

    # then the second capture was a new attempt with its own key
    assert _keys(sandbox_gateway, "capture") == [
        f"capture:payment:{payment.pk}:attempt:1",
        f"capture:payment:{payment.pk}:attempt:2",
    ]
    assert Payment.objects.get(pk=payment.pk).status == P.CAPTURED


@pytest.mark.django_db
def test_gateway_call_one_pending_per_booking_is_a_database_rule():
    # given a pending call on a booking
    booking = booking_at(S.AUTHORIZED)
    fields = {"booking": booking, "amount": Decimal("1.00"), "currency": "EUR", "next_try_at": timezone.now()}
    GatewayCall.objects.create(operation="capture", number=1, idempotency_key="k-1", **fields)
    # when a second one is written around the services
    # then the partial unique index refuses it
    with pytest.raises(IntegrityError), transaction.atomic():
        GatewayCall.objects.create(operation="void", number=1, idempotency_key="k-2", **fields)


# --- A second operation while one is in flight ---------------------------------------------------


@pytest.mark.django_db
def test_gateway_unanswered_leaves_the_call_pending_and_refuses_other_money_operations(sandbox_gateway):
    # given an authorised booking, and a gateway that does not answer the next capture
    booking = booking_at(S.AUTHORIZED)
    payment = Payment.objects.get(booking=booking)
    sandbox_gateway.unavailable_next("capture")

    # when the provider accepts
    with pytest.raises(GatewayCallUnanswered) as raised:
        booking_accept(booking=booking, actor=booking.provider)

    # then the provider is told to try again, and the call waits to be asked again with its key
    assert "did not answer" in str(raised.value) and "nothing is charged twice" in str(raised.value)
    call = GatewayCall.objects.get(booking=booking, operation="capture")
    assert (call.status, call.tries, call.error) == (C.PENDING, 1, "sandbox: capture timed out")
    assert call.next_try_at > timezone.now()
    assert Event.objects.filter(verb="payment.gateway_unanswered", target_id=str(call.pk)).count() == 1
    booking.refresh_from_db()
    assert booking.status == S.AUTHORIZED
    assert Payment.objects.get(pk=payment.pk).status == P.AUTHORIZED

    # and while it is pending, no other money operation on the booking starts
    for attempt in (
        lambda: booking_decline(booking=booking, actor=booking.provider, reason="Changed my mind."),
        lambda: booking_cancel(booking=booking, actor=booking.client, reason="Plans changed."),
        lambda: booking_accept(booking=booking, actor=booking.provider),
    ):
        with pytest.raises(GatewayCallInProgress) as refused:
            attempt()
        assert str(refused.value) == (
            f"A payment operation on booking #{booking.pk} is in progress; try again in a moment."
        )
    assert list(GatewayCall.objects.filter(booking=booking).exclude(operation="authorize")) == [call]

    # and once it is due, the resume asks again with the same key and finishes the acceptance
    _make_stale(call)
    assert gateway_calls_resume() == {**NOTHING_DUE, "succeeded": 1}
    call.refresh_from_db()
    assert (call.status, call.tries) == (C.SUCCEEDED, 2)
    assert _keys(sandbox_gateway, "capture") == [call.idempotency_key, call.idempotency_key]
    booking.refresh_from_db()
    assert booking.status == S.ACCEPTED
    assert Payment.objects.get(pk=payment.pk).status == P.CAPTURED
    assert LedgerTransaction.objects.filter(kind="capture").count() == 1


# --- A crash between the gateway's answer and the second transaction -------------------------------


@pytest.mark.django_db
def test_gateway_calls_resume_after_a_crash_asks_again_with_the_same_key_and_records_once(
    sandbox_gateway, sandbox_book, recording_dies_once
):
    # given an authorised booking, and a worker that dies after the gateway captured
    booking = booking_at(S.AUTHORIZED)
    payment = Payment.objects.get(booking=booking)
    with pytest.raises(RuntimeError, match="killed"):
        booking_accept(booking=booking, actor=booking.provider)

    # then the money moved at the gateway but nothing was recorded: the call is still pending
    call = GatewayCall.objects.get(booking=booking, operation="capture")
    assert call.status == C.PENDING
    assert Payment.objects.get(pk=payment.pk).status == P.AUTHORIZED
    assert [line["key"] for line in sandbox_book() if line["key"].startswith("capture:")] == [
        f"capture:{call.idempotency_key}"
    ]
    # and a resume leaves it alone while it may still be in flight
    assert gateway_calls_resume() == NOTHING_DUE

    # when the call is stale and the resume task runs
    _make_stale(call)
    counts = gateway_calls_resume()

    # then it asked the gateway again with the same key and recorded the capture and the acceptance once
    assert counts == {**NOTHING_DUE, "succeeded": 1}
    assert _keys(sandbox_gateway, "capture") == [call.idempotency_key, call.idempotency_key]
    call.refresh_from_db()
    assert call.status == C.SUCCEEDED and call.reference.startswith("sbx_cap_")
    assert Payment.objects.get(pk=payment.pk).status == P.CAPTURED
    booking.refresh_from_db()
    assert booking.status == S.ACCEPTED
    assert LedgerTransaction.objects.filter(kind="capture", booking_id=booking.pk).count() == 1
    assert Event.objects.filter(verb="payment.captured", target_id=str(payment.pk)).count() == 1
    assert Event.objects.filter(verb="booking.accept", target_id=str(booking.pk)).count() == 1
    # and the bank's book holds one answer per key: the money moved once
    keys = [line["key"] for line in sandbox_book()]
    assert len(keys) == len(set(keys))
    assert keys.count(f"capture:{call.idempotency_key}") == 1

    # and running it again finds nothing to do
    _make_stale(call)
    assert gateway_calls_resume() == NOTHING_DUE


@pytest.mark.django_db(transaction=True)
def test_gateway_calls_resume_twice_at_once_records_the_outcome_once(
    sandbox_gateway, sandbox_book, recording_dies_once
):
    # given a capture left pending by a worker that died after the gateway answered
    booking = booking_at(S.AUTHORIZED)
    payment = Payment.objects.get(booking=booking)
    with pytest.raises(RuntimeError):
        booking_accept(booking=booking, actor=booking.provider)
    call = GatewayCall.objects.get(booking=booking, operation="capture")
    _make_stale(call)

    # when two workers resume at the same moment
    outcomes = run_concurrently(gateway_calls_resume, gateway_calls_resume)

    # then neither failed, exactly one recorded the outcome, and it was recorded once
    assert all(o.ok for o in outcomes), outcomes.errors
    assert sum(o.value["succeeded"] for o in outcomes) == 1
    assert Payment.objects.get(pk=payment.pk).status == P.CAPTURED
    assert Booking.objects.get(pk=booking.pk).status == S.ACCEPTED
    assert LedgerTransaction.objects.filter(kind="capture", booking_id=booking.pk).count() == 1
    assert Event.objects.filter(verb="booking.accept", target_id=str(booking.pk)).count() == 1
    assert GatewayCall.objects.get(pk=call.pk).status == C.SUCCEEDED
    assert [line["key"] for line in sandbox_book()].count(f"capture:{call.idempotency_key}") == 1


# --- The halves, for a caller that holds locks of its own ------------------------------------------


def continue_after_refund(*, call, note: str) -> None:
    """A caller's continuation: finishes its workflow in the second transaction."""
    refund = Refund.objects.get(idempotency_key=call.refund_key)
    event_record(verb="test.refund_followed", target=refund, reason=note)


def refuse_after_refund(*, call) -> None:
    """A caller's continuation that finds its workflow can no longer go on."""
    event_record(verb="test.half_done", target=call)
    raise InvalidInput("The dispute was withdrawn meanwhile.")


@pytest.mark.django_db
def test_payment_refund_halves_run_the_callers_continuation_with_the_refund(sandbox_gateway):
    # given a captured booking, and a caller that opens the refund in its own transaction
    booking = booking_at(S.ACCEPTED)
    payment = Payment.objects.get(booking=booking)
    with transaction.atomic():
        lock(Booking, booking.pk)
        call = payment_refund_open(
            payment=payment,
            amount=Decimal("12.50"),
            actor=booking.client,
            reason="Part of the work was not done.",
            idempotency_key="case:1",
            then=f"{__name__}.continue_after_refund",
            then_args={"note": "followed"},
        )
    # then only the intent is written: nothing has gone to the gateway yet
    assert (call.status, call.operation, call.idempotency_key) == (C.PENDING, "refund", "refund:case:1:attempt:1")
    assert _keys(sandbox_gateway, "refund") == []
    assert not Refund.objects.exists()

    # when the caller runs it after its commit
    done = gateway_call_run(call.pk)

    # then the refund is recorded, and the continuation ran in the same transaction
    assert done.status == C.SUCCEEDED
    refund = Refund.objects.get(idempotency_key="case:1")
    assert (refund.amount, refund.created_by_id, refund.reason) == (
        Decimal("12.50"),
        booking.client_id,
        "Part of the work was not done.",
    )
    assert Event.objects.get(verb="test.refund_followed").reason == "followed"
    assert Payment.objects.get(pk=payment.pk).refunded_amount == Decimal("12.50")
    # and running it again does nothing more
    gateway_call_run(call.pk)
    assert _keys(sandbox_gateway, "refund") == ["refund:case:1:attempt:1"]
    assert Refund.objects.count() == 1


@pytest.mark.django_db
def test_gateway_call_refused_continuation_keeps_the_money_record_and_says_so():
    # given a refund opened with a continuation that will refuse
    booking = booking_at(S.ACCEPTED)
    payment = Payment.objects.get(booking=booking)
    with transaction.atomic():
        call = payment_refund_open(
            payment=payment,
            amount=Decimal("5.00"),
            actor=None,
            reason="Goodwill.",
            idempotency_key="case:2",
            then=f"{__name__}.refuse_after_refund",
        )

    # when it runs
    with pytest.raises(InvalidInput, match="withdrawn meanwhile"):
        gateway_call_run(call.pk)

    # then the money that moved is recorded, the continuation's writes are undone, and the refusal is on record
    assert Refund.objects.get(idempotency_key="case:2").amount == Decimal("5.00")
    assert Payment.objects.get(pk=payment.pk).refunded_amount == Decimal("5.00")
    assert not Event.objects.filter(verb="test.half_done").exists()
    call.refresh_from_db()
    assert call.status == C.SUCCEEDED
    assert call.error == "The money moved, but the workflow was refused: The dispute was withdrawn meanwhile."
    assert Event.objects.filter(verb="payment.workflow_refused", target_id=str(call.pk)).count() == 1


@pytest.mark.django_db
def test_gateway_call_run_inside_a_transaction_is_refused():
    # given an opened call
    booking = booking_at(S.ACCEPTED)
    with transaction.atomic():
        call = payment_refund_open(
            payment=Payment.objects.get(booking=booking),
            amount=Decimal("1.00"),
            actor=None,
            reason="x",
            idempotency_key="case:3",
        )
    # when it is run while a transaction is open, then it refuses before asking the gateway
    with pytest.raises(RuntimeError, match="outside any transaction"), transaction.atomic():
        gateway_call_run(call.pk)
    assert GatewayCall.objects.get(pk=call.pk).status == C.PENDING
