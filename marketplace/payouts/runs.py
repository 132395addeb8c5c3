"""The payout run: settled bookings past their hold period become payouts, which are sent.

A run is set-based SQL, not a loop over bookings. On PostgreSQL each step is one statement:

1. **Gather**, per batch of partners claimed with `FOR UPDATE SKIP LOCKED`: the partner's settled
   bookings completed before the cutoff that no live payout holds and no concurrent run has
   locked (`FOR UPDATE OF booking SKIP LOCKED`) become one payout per partner and currency, with
   its items and audit events, in one statement with data-modifying CTEs. A payout is born
   `approved` (small, unflagged partner), `ready` (above the approval threshold: a person requests
   approval, a second approves it) or `on_hold` with a risk hold (flagged partner).
2. **Retry**: failed payouts whose backoff has passed go back to `approved` (a few times; then a
   person decides).
3. **Submit**: every approved payout (the run's, and those people approved) is claimed with
   `SKIP LOCKED`, moved to `submitted` with a new attempt whose idempotency key is payout id +
   attempt number. Each attempt is sent to the gateway by its own task after commit.
4. **Resume**: attempts left `submitted` by a crash, or unanswered by the gateway, are handed to
   the task again; the task locks the payout and calls the gateway with the attempt's own key, so
   a repeat never moves money twice.
5. **Report**: what is held (open dispute, risk flag, manual hold), disputed and waiting for a person.

Exactly once comes from the database, not from the queue: the partial unique index on live payout
items (one per booking), the row locks above, and the gateway's idempotency keys. Each batch
commits on its own, so a run killed halfway leaves whole batches, and the next run carries on.

SQLite (the embedded development database) takes a portable path through the same services per
partner; it is for the demo, not for scale.
"""

from __future__ import annotations

import json
from datetime import timedelta

from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from marketplace.audit.services import event_record
from marketplace.bookings.models import Booking
from marketplace.core.money import ZERO
from marketplace.partners.models import Partner
from marketplace.partners.selectors import partner_payouts_blocked
from marketplace.payments.payable import mature_sql, payable_sql
from marketplace.payouts import runs_portable
from marketplace.payouts.balances import UNPAID_STATES, payout_cutoff
from marketplace.payouts.models import Payout, PayoutAttempt, PayoutRun

S = Payout.Status
# One per payout, in this order; every step is a transition of `services.TRANSITIONS`.
CREATED = S.ACCRUING  # the model's default: a new payout accrues
BIRTHS = {
    "approved": ("mature", "auto_approve"),  # under the approval threshold, partner in good standing
    "ready": ("mature",),  # above the threshold: a person requests approval, a second approves
    "held": ("mature", "hold"),  # suspended or risk-flagged partner
}


def _walk(steps: tuple[str, ...]) -> list[tuple[str, str, str]]:
    """The (transition, from, to) steps from CREATED, each checked against the transition table."""
    from marketplace.payouts.services import TRANSITIONS

    state, path = CREATED, []
    for step in steps:
        sources, target = TRANSITIONS[step]
        if state not in sources:
            raise RuntimeError(f"payout run: '{step}' cannot start from '{state}'")
        path.append((step, state, target))
        state = target
    return path


def _unpaid_sql() -> str:
    payable = payable_sql(
        {
            "captured": "p.captured_amount",
            "refunded": "p.refunded_amount",
            "fee": "b.platform_fee",
            "fee_refunded": "COALESCE((SELECT SUM(r.platform_share) FROM payments_refund r WHERE r.payment_id = p.id), 0)",
        }
    )
    return f"""
    SELECT b.id AS booking_id, b.partner_id, b.currency, {payable} AS amount, ({mature_sql("b")}) AS mature
    FROM bookings_booking b
    JOIN payments_payment p ON p.booking_id = b.id
    WHERE b.partner_id = ANY(%(partners)s)
      AND p.captured_amount > 0
      AND NOT EXISTS (SELECT 1 FROM payouts_payoutitem i WHERE i.booking_id = b.id AND i.is_active)
    """


# Per batch of partners, one statement. `unpaid` is every captured booking no live payout holds
# (read, not locked); `payable` the mature ones, locked (a booking another transaction holds is
# skipped, and so stays in `unpaid`: withheld, never paid without its item). The balance not
# accounted for by any booking (`carried`) comes from the ledger:
#     carried = owed (ledger) - in flight (live unpaid payouts) - unpaid
# and a payout pays its items + carried, when that is above zero (balances.py says the same in the ORM).
_GATHER_SQL = (
    """
WITH unpaid AS ("""
    + _unpaid_sql()
    + """),
payable AS (
    SELECT u.booking_id, u.partner_id, u.currency, u.amount
    FROM unpaid u
    JOIN bookings_booking b ON b.id = u.booking_id
    WHERE u.mature AND u.amount > 0
    FOR UPDATE OF b SKIP LOCKED
),
owed AS (
    SELECT partner_id, currency, -SUM(amount) AS amount
    FROM ledger_ledgerentry
    WHERE account = 'provider_payable' AND partner_id = ANY(%(partners)s)
    GROUP BY partner_id, currency
),
in_flight AS (
    SELECT partner_id, currency, SUM(amount) AS amount
    FROM payouts_payout
    WHERE partner_id = ANY(%(partners)s) AND status = ANY(%(unpaid_states)s)
    GROUP BY partner_id, currency
),
unpaid_totals AS (
    SELECT partner_id, currency, SUM(amount) AS amount FROM unpaid GROUP BY partner_id, currency
),
items AS (
    SELECT partner_id, currency, SUM(amount) AS amount, COUNT(*) AS bookings
    FROM payable GROUP BY partner_id, currency
),
totals AS (
    SELECT o.partner_id, o.currency, COALESCE(i.amount, 0) AS items, COALESCE(i.bookings, 0) AS bookings,
           o.amount - COALESCE(f.amount, 0) - COALESCE(u.amount, 0) AS carried
    FROM owed o
    LEFT JOIN items i ON i.partner_id = o.partner_id AND i.currency = o.currency
    LEFT JOIN in_flight f ON f.partner_id = o.partner_id AND f.currency = o.currency
    LEFT JOIN unpaid_totals u ON u.partner_id = o.partner_id AND u.currency = o.currency
),
born AS (
    SELECT t.*, t.items + t.carried AS amount,
           CASE WHEN pa.status = %(suspended)s THEN 'held'
                WHEN pa.risk_flag THEN 'held'
                WHEN t.items + t.carried > (%(approval_above)s::jsonb ->> t.currency)::numeric THEN 'ready'
                ELSE 'approved' END AS birth,
           CASE WHEN pa.status = %(suspended)s THEN %(suspended_reason)s
                WHEN pa.risk_flag THEN %(flagged_reason)s END AS hold_reason
    FROM totals t
    JOIN partners_partner pa ON pa.id = t.partner_id
    WHERE t.items + t.carried > 0
),
new_payouts AS (
    INSERT INTO payouts_payout (
        partner_id, amount, carried, currency, status, hold_until, attempt_count, gateway_reference,
        failure_reason, note, run_id, approved_at, created_at, updated_at
    )
    SELECT b.partner_id, b.amount, b.carried, b.currency, (%(final)s::jsonb ->> b.birth), %(now)s, 0, '', '', '',
           %(run)s, CASE WHEN b.birth = 'approved' THEN %(now)s END, %(now)s, %(now)s
    FROM born b
    RETURNING id, partner_id, currency, amount, carried, status
),
new_items AS (
    INSERT INTO payouts_payoutitem (payout_id, booking_id, amount, is_active)
    SELECT np.id, p.booking_id, p.amount, TRUE
    FROM payable p
    JOIN new_payouts np ON np.partner_id = p.partner_id AND np.currency = p.currency
    RETURNING payout_id
),
new_holds AS (
    INSERT INTO payouts_payouthold (payout_id, kind, reason, created_at)
    SELECT np.id, 'risk', b.hold_reason, %(now)s
    FROM new_payouts np JOIN born b ON b.partner_id = np.partner_id AND b.currency = np.currency
    WHERE b.birth = 'held'
    RETURNING payout_id
),
new_events AS (
    INSERT INTO audit_event (verb, target_type_id, target_id, from_state, to_state, reason, data, created_at)
    SELECT 'payout.' || step.verb, %(content_type)s, np.id::text, step.from_state, step.to_state,
           CASE WHEN step.verb = 'hold' THEN b.hold_reason
                WHEN step.verb = 'auto_approve' THEN 'Approved automatically: under the approval threshold'
                ELSE 'Payout run #' || %(run)s::text END,
           jsonb_build_object('amount', np.amount::text, 'carried', np.carried::text, 'run', %(run)s::bigint,
                              'actor', 'system', 'bookings', b.bookings),
           %(now)s
    FROM new_payouts np
    JOIN born b ON b.partner_id = np.partner_id AND b.currency = np.currency
    CROSS JOIN LATERAL jsonb_to_recordset(%(paths)s::jsonb -> b.birth)
        AS step(n int, verb text, from_state text, to_state text)
    ORDER BY np.id, step.n
    RETURNING 1
)
SELECT np.id, np.status, np.amount, b.bookings,
       (SELECT COUNT(*) FROM new_items), (SELECT COUNT(*) FROM new_holds), (SELECT COUNT(*) FROM new_events)
FROM new_payouts np
JOIN born b ON b.partner_id = np.partner_id AND b.currency = np.currency
"""
)


def _birth_params() -> dict:
    """The run's state parameters, all read off the transition table: each birth's final state and
    its audit steps (a `created` row, then one per transition)."""
    final, paths = {}, {}
    for birth, steps in BIRTHS.items():
        walk = _walk(steps)
        final[birth] = walk[-1][2]
        rows = [{"n": 0, "verb": "created", "from_state": "", "to_state": CREATED}]
        rows += [{"n": i, "verb": v, "from_state": f, "to_state": t} for i, (v, f, t) in enumerate(walk, 1)]
        paths[birth] = rows
    return {"final": json.dumps(final), "paths": json.dumps(paths)}


_CLAIM_PARTNERS_SQL = """
SELECT id FROM partners_partner WHERE id > %(after)s ORDER BY id LIMIT %(limit)s FOR UPDATE SKIP LOCKED
"""

_RETRY_SQL = """
WITH due AS (
    SELECT id, status FROM payouts_payout
    WHERE status = ANY(%(from_states)s) AND next_retry_at <= %(now)s
    ORDER BY id LIMIT %(limit)s FOR UPDATE SKIP LOCKED
),
moved AS (
    UPDATE payouts_payout p
    SET status = %(to_state)s, next_retry_at = NULL, failure_reason = '', updated_at = %(now)s
    FROM due WHERE p.id = due.id
    RETURNING p.id, p.amount, p.attempt_count, due.status AS from_state
),
events AS (
    INSERT INTO audit_event (verb, target_type_id, target_id, from_state, to_state, reason, data, created_at)
    SELECT 'payout.auto_retry', %(content_type)s, id::text, from_state, %(to_state)s,
           'Retried automatically after a failed attempt',
           jsonb_build_object('amount', amount::text, 'run', %(run)s::bigint, 'actor', 'system',
                              'after_attempt', attempt_count),
           %(now)s
    FROM moved
    RETURNING 1
)
SELECT COUNT(*) FROM moved
"""

_SUBMIT_SQL = """
WITH due AS (
    SELECT po.id, po.status FROM payouts_payout po
    JOIN partners_partner pa ON pa.id = po.partner_id
    WHERE po.status = ANY(%(from_states)s) AND pa.status <> %(suspended)s
    ORDER BY po.id LIMIT %(limit)s FOR UPDATE OF po SKIP LOCKED
),
moved AS (
    UPDATE payouts_payout p
    SET status = %(to_state)s, attempt_count = p.attempt_count + 1, submitted_at = %(now)s, updated_at = %(now)s
    FROM due WHERE p.id = due.id AND p.status = due.status
    RETURNING p.id, p.amount, p.attempt_count, due.status AS from_state
),
attempts AS (
    INSERT INTO payouts_payoutattempt (payout_id, number, idempotency_key, status, gateway_reference, error,
                                       tries, created_at)
    SELECT id, attempt_count, 'payout-' || id || '-attempt-' || attempt_count, 'submitted', '', '', 0, %(now)s
    FROM moved
    RETURNING id
),
events AS (
    INSERT INTO audit_event (verb, target_type_id, target_id, from_state, to_state, reason, data, created_at)
    SELECT 'payout.submit', %(content_type)s, id::text, from_state, %(to_state)s, 'Payout run #' || %(run)s::text,
           jsonb_build_object('amount', amount::text, 'run', %(run)s::bigint, 'actor', 'system',
                              'attempt', attempt_count),
           %(now)s
    FROM moved
    RETURNING 1
)
SELECT id FROM attempts
"""


def _is_postgres() -> bool:
    return connection.vendor == "postgresql"


def _enqueue_attempts(attempt_ids: list[int]) -> None:
    from marketplace.payouts.services import _enqueue_attempt

    for attempt_id in attempt_ids:
        _enqueue_attempt(attempt_id)


def payout_run_execute(*, actor=None, batch_partners: int | None = None) -> PayoutRun:
    """Run the payouts once: gather, retry, submit, resume and report. Safe to run twice, and at once."""
    now = timezone.now()
    cutoff = payout_cutoff(now)
    _mark_interrupted_runs(now)
    run = PayoutRun.objects.create(cutoff=cutoff, triggered_by=actor if getattr(actor, "pk", None) else None)
    try:
        batch = batch_partners or settings.MARKETPLACE_PAYOUT_RUN_BATCH_PARTNERS
        if _is_postgres():
            _gather(run, now=now, cutoff=cutoff, batch=batch)
            run.retried = _set_step(_RETRY_SQL, run, now=now, **_step("auto_retry"))
            run.submitted = _submit(run, now=now)
        else:
            runs_portable.gather(run, now=now)
            run.retried = runs_portable.retry(now)
            run.submitted = runs_portable.submit()
        run.resumed_attempts = _resume_attempts(now)
        _report(run, cutoff=cutoff)
    except Exception as exc:
        run.status = PayoutRun.Status.FAILED
        run.error = f"{type(exc).__name__}: {exc}"[:4000]
        run.finished_at = timezone.now()
        run.save()
        raise
    run.status = PayoutRun.Status.FINISHED
    run.finished_at = timezone.now()
    run.save()
    event_record(
        verb="payout.run_finished",
        actor=actor,
        target=run,
        data={
            "bookings": run.bookings,
            "payouts_created": run.payouts_created,
            "amount_created": str(run.amount_created),
            "submitted": run.submitted,
            "held": run.held,
            "needs_approval": run.needs_approval,
            "disputed_bookings": run.disputed_bookings,
        },
    )
    return run


def _mark_interrupted_runs(now) -> None:
    """Runs still `running` long after any task could have (the cluster's timeout) were killed."""
    stale = now - timedelta(seconds=settings.Q_CLUSTER.get("retry", 600))
    PayoutRun.objects.filter(status=PayoutRun.Status.RUNNING, started_at__lt=stale).update(
        status=PayoutRun.Status.INTERRUPTED, finished_at=now
    )


def _step(transition: str) -> dict:
    """A set-based step's states, read off the transition table."""
    from marketplace.payouts.services import TRANSITIONS

    sources, target = TRANSITIONS[transition]
    return {"from_states": sorted(sources), "to_state": target}


def _params(run: PayoutRun, now, **extra) -> dict:
    return {
        "run": run.pk,
        "now": now,
        "content_type": ContentType.objects.get_for_model(Payout).pk,
        **extra,
    }


def _gather(run: PayoutRun, *, now, cutoff, batch: int) -> None:
    """Step 1: partner batches, each its own transaction (a killed run keeps its whole batches)."""
    after = 0
    births = _birth_params()
    while True:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(_CLAIM_PARTNERS_SQL, {"after": after, "limit": batch})
            partners = [row[0] for row in cursor.fetchall()]
            if not partners:
                return
            after = partners[-1]
            cursor.execute(
                _GATHER_SQL,
                _params(
                    run,
                    now,
                    partners=partners,
                    cutoff=cutoff,
                    unpaid_states=list(UNPAID_STATES),
                    suspended=Partner.Status.SUSPENDED,
                    # The hold reasons, in the words of the one rule (partners.partner_payouts_blocked).
                    suspended_reason=partner_payouts_blocked(Partner(status=Partner.Status.SUSPENDED)),
                    flagged_reason=partner_payouts_blocked(Partner(risk_flag=True)),
                    **births,
                    approval_above=json.dumps(
                        {c: str(v) for c, v in settings.MARKETPLACE_PAYOUT_APPROVAL_ABOVE.items()}
                    ),
                ),
            )
            created = cursor.fetchall()
            # Run counters are committed with the batch: a killed run reports what it did.
            run.payouts_created += len(created)
            run.bookings += sum(row[3] for row in created)
            run.amount_created += sum((row[2] for row in created), ZERO)
            run.auto_approved += sum(1 for row in created if row[1] == S.APPROVED)
            run.save(update_fields=["payouts_created", "bookings", "amount_created", "auto_approved"])
            held = [row[0] for row in created if row[1] == S.ON_HOLD]
            if held:
                _notify_held(held)


def _set_step(sql: str, run: PayoutRun, *, now, limit: int = 500, **states) -> int:
    total = 0
    while True:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql, _params(run, now, limit=limit, **states))
            count = cursor.fetchone()[0]
        total += count
        if count < limit:
            return total


def _submit(run: PayoutRun, *, now, limit: int = 500) -> int:
    """Step 3: claim approved payouts, open one attempt each, hand the attempts to tasks on commit."""
    total = 0
    while True:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                _SUBMIT_SQL, _params(run, now, limit=limit, suspended=Partner.Status.SUSPENDED, **_step("submit"))
            )
            attempt_ids = [row[0] for row in cursor.fetchall()]
            transaction.on_commit(lambda ids=attempt_ids: _enqueue_attempts(ids))
        total += len(attempt_ids)
        if len(attempt_ids) < limit:
            return total


def _resume_attempts(now) -> int:
    """Step 4: attempts nobody finished. The task is idempotent, so a repeat costs nothing."""
    stale = now - timedelta(seconds=settings.MARKETPLACE_PAYOUT_ATTEMPT_STALE_SECONDS)
    due = list(
        PayoutAttempt.objects.filter(status=PayoutAttempt.Status.SUBMITTED, payout__status=S.SUBMITTED)
        .filter(Q(next_try_at__lte=now) | Q(next_try_at__isnull=True, created_at__lte=stale))
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    _enqueue_attempts(due)
    return len(due)


def _report(run: PayoutRun, *, cutoff) -> None:
    """Step 5: what the run could not pay, and why."""
    held = Payout.objects.filter(status=S.ON_HOLD).select_related("partner").prefetch_related("holds").order_by("pk")
    run.held = held.count()
    run.needs_approval = Payout.objects.filter(status__in=[S.READY, S.AWAITING_APPROVAL]).count()
    run.disputed_bookings = Booking.objects.filter(status=Booking.Status.DISPUTED, completed_at__lte=cutoff).count()
    run.report = {
        "held": [
            {
                "payout": p.pk,
                "partner": p.partner.name,
                "amount": str(p.amount),
                "holds": sorted({h.get_kind_display() for h in p.holds.all() if h.released_at is None}),
            }
            for p in held[:50]
        ],
        "failed_awaiting_person": Payout.objects.filter(status=S.FAILED, next_retry_at__isnull=True).count(),
    }


def _notify_held(payout_ids: list[int]) -> None:
    from marketplace.payouts.services import payout_notify_partner

    for payout in Payout.objects.filter(pk__in=payout_ids).select_related("partner"):
        payout_notify_partner(payout, verb="payout.hold", title=f"Payout #{payout.pk} is on hold for review")
