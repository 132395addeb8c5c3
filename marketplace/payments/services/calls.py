"""Gateway calls: the intent committed first, the gateway asked with no transaction open, the outcome
recorded in a second transaction (ARCHITECTURE.md: a gateway call is never made inside a
transaction that holds row locks).

    with transaction.atomic():                     # 1. the workflow's locks and rules
        booking = lock(Booking, booking_id)        #    (the booking first, always)
        ...
        call = payment_refund_open(..., then="app.module.function", then_args={...})
    gateway_call_run(call.pk)                      # 2. the gateway, then 3. the outcome

`gateway_call_run` asks the gateway with the call's idempotency key, then in one transaction locks
the booking and the call and, if the call is still pending, records the gateway's answer:

- yes: the money is recorded (the operation's recorder in `payments.py`: the payment authorised,
  captured, voided, or the refund with its ledger posting), then the continuation
  `then(call=call, **then_args)` completes the workflow (a booking transition, a dispute's
  resolution). Both commit together. If the continuation raises an ApplicationError (the booking
  moved on meanwhile), its writes are undone but the money record stays: the call is marked with
  the refusal, an audit event says so, and the error is raised to the caller after commit;
- no: the call is marked failed and `PaymentFailed` is raised after commit. A new try is a new call
  with a new key (a declined card does not block the booking);
- no answer (`GatewayUnavailable`): the call stays pending with `next_try_at`, and
  `GatewayCallUnanswered` is raised. `gateway_calls_resume` (a scheduled task) asks again later
  with the same key, so the money moves at most once whatever happened in between.

A crash between the steps leaves a pending call, which `gateway_calls_resume` finishes the same
way. At most one call per booking is pending (a partial unique index); while one is, every money
operation on the booking is refused with `GatewayCallInProgress`. A session-level advisory lock per
booking (not a row lock, no transaction) lets a second operation started while one is in flight
wait for it briefly instead: two clicks end as one serial order.
"""

import logging
from collections.abc import Callable
from contextlib import contextmanager
from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, IntegrityError, connections, transaction
from django.db.models import Max
from django.utils import timezone
from django.utils.module_loading import import_string

from marketplace.audit.services import event_record
from marketplace.bookings.models import Booking
from marketplace.core.exceptions import ApplicationError, PaymentFailed
from marketplace.core.locks import single_flight
from marketplace.core.transitions import lock
from marketplace.payments.gateway import GatewayResult, GatewayUnavailable, get_gateway
from marketplace.payments.models import GatewayCall, Payment, PaymentMethod

logger = logging.getLogger(__name__)

C = GatewayCall.Status
OP = GatewayCall.Operation

# What records a successful call's money, per operation, in the second transaction: f(*, call).
RECORDERS = {
    OP.AUTHORIZE: "marketplace.payments.services.payments.payment_authorize_record",
    OP.CAPTURE: "marketplace.payments.services.payments.payment_capture_record",
    OP.VOID: "marketplace.payments.services.payments.payment_void_record",
    OP.REFUND: "marketplace.payments.services.payments.payment_refund_record",
}
# What the caller is told when the gateway says no.
_DECLINED = {
    OP.AUTHORIZE: "The payment for booking #{booking} was declined: {error}",
    OP.CAPTURE: "The gateway refused to capture payment #{payment}: {error}",
    OP.VOID: "The gateway refused to void payment #{payment}: {error}",
    OP.REFUND: "The gateway refused the refund on payment #{payment}: {error}",
}


class GatewayCallInProgress(ApplicationError):
    """Another money operation on the booking has not finished; nothing was done."""

    def __init__(self, booking_id: int):
        super().__init__(
            f"A payment operation on booking #{booking_id} is in progress; try again in a moment.",
            extra={"booking": booking_id},
        )


class GatewayCallUnanswered(ApplicationError):
    """The gateway did not answer. The call stays pending and is asked again with the same key."""

    def __init__(self, call: GatewayCall):
        super().__init__(
            f"The payment gateway did not answer about booking #{call.booking_id} ({call.operation}). "
            "It will be asked again shortly with the same request, so nothing is charged twice; "
            "try again in a moment.",
            extra={"booking": call.booking_id, "call": call.pk},
        )


def in_transaction(using: str = DEFAULT_DB_ALIAS) -> bool:
    """True inside a `transaction.atomic()` block of the application.

    The blocks a test case wraps each test in (pytest-django's `django_db` without `transaction=True`)
    are not counted: they stand in for the autocommit the code runs in outside tests. This is the
    rule Django applies to `atomic(durable=True)`.
    """
    return any(not getattr(block, "_from_testcase", False) for block in connections[using].atomic_blocks)


def _stale() -> timedelta:
    return timedelta(seconds=settings.MARKETPLACE_GATEWAY_CALL_STALE_SECONDS)


@contextmanager
def _booking_flight(booking_id: int, *, wait: float):
    """Hold the booking's money lock (a session advisory lock) around steps 1 to 3; False if busy."""
    with single_flight(f"payments.booking:{booking_id}", wait=wait) as acquired:
        yield acquired


# --- 1. The intent --------------------------------------------------------------------------------


def gateway_call_require_idle(*, booking_id: int) -> None:
    """Refuse (GatewayCallInProgress) while a call on the booking is pending. Called under the booking's lock."""
    if GatewayCall.objects.filter(booking_id=booking_id, status=C.PENDING).exists():
        raise GatewayCallInProgress(booking_id)


def _key(operation: str, *, booking_id: int, number: int, payment, method, refund_key: str) -> str:
    if operation == OP.AUTHORIZE:
        return f"authorize:booking:{booking_id}:method:{method.pk}:attempt:{number}"
    if operation == OP.REFUND:
        return f"refund:{refund_key}:attempt:{number}"
    return f"{operation}:payment:{payment.pk}:attempt:{number}"


def gateway_call_open(
    *,
    operation: str,
    booking_id: int,
    amount: Decimal,
    currency: str,
    actor=None,
    payment: Payment | None = None,
    method: PaymentMethod | None = None,
    reason: str = "",
    refund_key: str = "",
    then: str = "",
    then_args: dict | None = None,
) -> GatewayCall:
    """Record the intent of one gateway call: the pending row with its attempt number and key.

    Called inside the caller's first transaction, which holds the booking's row lock (so the
    attempt number and the one-pending rule are decided under it); the call is made after that
    transaction commits, by `gateway_call_run`. `then` is the dotted path of the continuation and
    `then_args` its keyword arguments (JSON): see the module docstring. Raises GatewayCallInProgress
    while another call on the booking is pending.
    """
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("gateway_call_open() must be called inside the transaction that locks the booking")
    if then:
        import_string(then)  # a typo fails here, before any money moves
    gateway_call_require_idle(booking_id=booking_id)
    number = (
        GatewayCall.objects.filter(booking_id=booking_id, operation=operation).aggregate(n=Max("number"))["n"] or 0
    ) + 1
    key = _key(operation, booking_id=booking_id, number=number, payment=payment, method=method, refund_key=refund_key)
    try:
        with transaction.atomic():
            return GatewayCall.objects.create(
                operation=operation,
                booking_id=booking_id,
                payment=payment,
                method=method,
                number=number,
                idempotency_key=key,
                amount=amount,
                currency=currency,
                refund_key=refund_key,
                actor=actor if getattr(actor, "pk", None) else None,
                reason=reason or "",
                next_try_at=timezone.now() + _stale(),
                then=then,
                then_args=then_args or {},
            )
    except IntegrityError:
        # Only a caller that did not lock the booking gets here: the index refused a second pending call.
        if GatewayCall.objects.filter(booking_id=booking_id, status=C.PENDING).exists():
            raise GatewayCallInProgress(booking_id) from None
        raise


# --- 2. The gateway -------------------------------------------------------------------------------


def _ask(call: GatewayCall) -> GatewayResult:
    """Ask the gateway with the call's key. Raises GatewayUnavailable when it does not answer."""
    gateway = get_gateway()
    if call.operation == OP.AUTHORIZE:
        if call.method is None:
            return GatewayResult(ok=False, error="the payment method was removed")
        return gateway.authorize(
            token=call.method.gateway_token,
            amount=call.amount,
            currency=call.currency,
            idempotency_key=call.idempotency_key,
        )
    reference = call.payment.gateway_reference
    if call.operation == OP.CAPTURE:
        return gateway.capture(reference=reference, amount=call.amount, idempotency_key=call.idempotency_key)
    if call.operation == OP.VOID:
        return gateway.void(reference=reference, idempotency_key=call.idempotency_key)
    return gateway.refund(reference=reference, amount=call.amount, idempotency_key=call.idempotency_key)


# --- 3. The outcome -------------------------------------------------------------------------------


def _record(call_id: int, result: GatewayResult, *, durable: bool) -> tuple[GatewayCall, ApplicationError | None, bool]:
    """Record the gateway's answer once. Returns (the call, the continuation's refusal, recorded now?)."""
    booking_id = GatewayCall.objects.values_list("booking_id", flat=True).get(pk=call_id)
    refused = None
    with transaction.atomic(durable=durable):
        # The booking first, then the call: the order every money workflow locks in.
        lock(Booking, booking_id)
        call = lock(GatewayCall, call_id, related=("payment", "actor"))
        if call.status != C.PENDING:
            return call, None, False  # a twin (a resume) recorded it: once
        call.tries += 1
        call.finished_at = timezone.now()
        fields = ["status", "reference", "error", "tries", "finished_at", "payment"]
        if not result.ok:
            call.status = C.FAILED
            call.error = result.error or "declined"
            call.save(update_fields=fields)
            return call, None, True
        call.status = C.SUCCEEDED
        call.reference = result.reference
        call.error = ""
        import_string(RECORDERS[call.operation])(call=call)
        call.save(update_fields=fields)
        if call.then:
            try:
                with transaction.atomic():
                    import_string(call.then)(call=call, **call.then_args)
            except ApplicationError as exc:
                refused = exc
                call.error = f"The money moved, but the workflow was refused: {exc.message}"
                call.save(update_fields=["error"])
                event_record(
                    verb="payment.workflow_refused",
                    actor=call.actor,
                    target=call,
                    reason=exc.message,
                    data={"booking": booking_id, "operation": call.operation, "key": call.idempotency_key},
                )
    return call, refused, True


def _unanswered(call: GatewayCall, exc: GatewayUnavailable) -> None:
    """Keep the call pending, to be asked again (same key) after a backoff; tell the audit log."""
    with transaction.atomic():
        call = lock(GatewayCall, call.pk)
        if call.status != C.PENDING:
            return
        call.tries += 1
        call.error = str(exc)
        call.next_try_at = timezone.now() + _stale() * 2 ** min(call.tries - 1, 5)
        call.save(update_fields=["tries", "error", "next_try_at"])
        event_record(
            verb="payment.gateway_unanswered",
            target=call,
            reason=str(exc),
            data={"booking": call.booking_id, "key": call.idempotency_key, "tries": call.tries},
        )


def _outcome(call: GatewayCall, refused: ApplicationError | None) -> GatewayCall:
    if call.status == C.FAILED:
        raise PaymentFailed(
            _DECLINED[call.operation].format(booking=call.booking_id, payment=call.payment_id, error=call.error),
            extra={"booking": call.booking_id, "call": call.pk},
        )
    if refused is not None:
        raise refused
    return call


def _run(call_id: int) -> tuple[GatewayCall, ApplicationError | None, bool]:
    call = GatewayCall.objects.select_related("payment", "method").get(pk=call_id)
    if call.status != C.PENDING:
        return call, None, False
    try:
        result = _ask(call)
    except GatewayUnavailable as exc:
        _unanswered(call, exc)
        raise GatewayCallUnanswered(call) from exc
    return _record(call_id, result, durable=True)


def gateway_call_run(call_id: int, *, wait: float | None = None) -> GatewayCall:
    """Ask the gateway about a pending call and record its answer (steps 2 and 3). Never inside a transaction.

    Returns the succeeded call. Raises PaymentFailed (the gateway said no), GatewayCallUnanswered
    (no answer; the call stays pending and is asked again later with the same key), the
    continuation's ApplicationError (the money moved, the workflow was refused), or
    GatewayCallInProgress (another process is running this booking's call after `wait` seconds,
    MARKETPLACE_GATEWAY_CALL_WAIT_SECONDS by default). A call already finished is not asked again:
    its outcome is returned (or raised) as it was recorded.
    """
    if in_transaction():
        raise RuntimeError(
            "gateway_call_run() must be called outside any transaction: commit the intent first "
            "(no row lock may be held while the gateway answers)"
        )
    booking_id = GatewayCall.objects.values_list("booking_id", flat=True).get(pk=call_id)
    wait = settings.MARKETPLACE_GATEWAY_CALL_WAIT_SECONDS if wait is None else wait
    with _booking_flight(booking_id, wait=wait) as acquired:
        if not acquired:
            raise GatewayCallInProgress(booking_id)
        call, refused, _ = _run(call_id)
    return _outcome(call, refused)


def gateway_workflow(*, booking_id: int, first: Callable[[], GatewayCall | None]) -> GatewayCall | None:
    """Run a money workflow to its end for a synchronous caller: steps 1, 2 and 3 in one function call.

    `first()` runs in the first transaction: it locks the booking, checks the rules and returns the
    call it opened (`*_open`), or None when the workflow needed no gateway call and finished there.
    Then the call is run (`gateway_call_run`), whose continuation finishes the workflow. Raises
    what `first()` or `gateway_call_run` raise.

    Called inside a transaction of its caller (a caller that has not been split into the halves
    yet), the three steps run inline in that transaction, the gateway call included, as they did
    before gateway calls were recorded; such a caller keeps its row locks across the call.
    """
    if in_transaction():
        with transaction.atomic():
            call = first()
            if call is not None:
                _run_inline(call)
        return call
    with _booking_flight(booking_id, wait=settings.MARKETPLACE_GATEWAY_CALL_WAIT_SECONDS) as acquired:
        if not acquired:
            raise GatewayCallInProgress(booking_id)
        with transaction.atomic(durable=True):
            call = first()
        if call is not None:
            gateway_call_run(call.pk)
    return call


def _run_inline(call: GatewayCall) -> GatewayCall:
    if call.status != C.PENDING:
        return _outcome(call, None)
    try:
        result = _ask(call)
    except GatewayUnavailable as exc:
        # The caller's transaction rolls back, the pending row with it; its next try gets the same
        # attempt number, so the same key, and the gateway answers it as it did this one.
        raise GatewayCallUnanswered(call) from exc
    call, refused, _ = _record(call.pk, result, durable=False)
    return _outcome(call, refused)


# --- Resume ---------------------------------------------------------------------------------------


def gateway_calls_resume(*, limit: int = 500) -> dict[str, int]:
    """Finish the pending calls nobody is finishing: those past `next_try_at` (the process that opened
    one died, or the gateway did not answer). Each is asked again with its own key, so the gateway
    answers as it did the first time and money moves once; the answer is recorded under the lock,
    once, whoever gets there first. Safe to run twice, even at once.

    A call opened less than MARKETPLACE_GATEWAY_CALL_STALE_SECONDS ago is left to the process that
    opened it, and a call whose booking another process is working on is skipped.

    Returns counts: succeeded, declined, refused (money moved, workflow refused), unanswered,
    skipped, errors.
    """
    counts = dict.fromkeys(("succeeded", "declined", "refused", "unanswered", "skipped", "errors"), 0)
    due = list(
        GatewayCall.objects.filter(status=C.PENDING, next_try_at__lte=timezone.now())
        .order_by("next_try_at", "pk")
        .values_list("pk", "booking_id")[:limit]
    )
    for call_id, booking_id in due:
        with _booking_flight(booking_id, wait=0) as acquired:
            if not acquired:
                counts["skipped"] += 1
                continue
            try:
                call, refused, recorded = _run(call_id)
            except GatewayCallUnanswered:
                counts["unanswered"] += 1
                continue
            except Exception:
                # One broken call must not stop the others; it stays pending and is logged each run.
                logger.exception("gateway call #%s could not be resumed", call_id)
                counts["errors"] += 1
                continue
        if not recorded:
            counts["skipped"] += 1
        elif call.status == C.FAILED:
            counts["declined"] += 1
        elif refused is not None:
            counts["refused"] += 1
        else:
            counts["succeeded"] += 1
    return counts
