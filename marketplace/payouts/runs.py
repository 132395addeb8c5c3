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
from marketplace.payouts.models import Payout, PayoutAttempt, PayoutRun

S = Payout.Status
SETTLED = ("completed", "resolved", "closed")

_GATHER_SQL = """
WITH payable AS (
    SELECT b.id AS booking_id, b.partner_id, b.currency, b.completed_at,
           p.captured_amount - p.refunded_amount - (b.platform_fee - COALESCE(r.platform_refunded, 0)) AS amount
    FROM bookings_booking b
    JOIN payments_payment p ON p.booking_id = b.id
    LEFT JOIN (
        SELECT payment_id, SUM(platform_share) AS platform_refunded FROM payments_refund GROUP BY payment_id
    ) r ON r.payment_id = p.id
    WHERE b.partner_id = ANY(%(partners)s)
      AND b.status IN ('completed', 'resolved', 'closed')
      AND b.completed_at <= %(cutoff)s
      AND p.captured_amount > 0
      AND NOT EXISTS (
          SELECT 1 FROM payouts_payoutitem i WHERE i.booking_id = b.id AND i.is_active
      )
    FOR UPDATE OF b SKIP LOCKED
),
totals AS (
    SELECT partner_id, currency, SUM(amount) AS amount, COUNT(*) AS bookings, MAX(completed_at) AS last_completed
    FROM payable
    WHERE amount > 0
    GROUP BY partner_id, currency
),
new_payouts AS (
    INSERT INTO payouts_payout (
        partner_id, amount, currency, status, hold_until, attempt_count, gateway_reference,
        failure_reason, note, run_id, approved_at, created_at, updated_at
    )
    SELECT t.partner_id, t.amount, t.currency, s.status, t.last_completed + %(hold)s, 0, '', '', '',
           %(run)s, CASE WHEN s.status = 'approved' THEN %(now)s END, %(now)s, %(now)s
    FROM totals t
    JOIN partners_partner pa ON pa.id = t.partner_id
    CROSS JOIN LATERAL (
        SELECT CASE WHEN pa.risk_flag THEN 'on_hold'
                    WHEN t.amount > (%(approval_above)s::jsonb ->> t.currency)::numeric THEN 'ready'
                    ELSE 'approved' END AS status
    ) s
    RETURNING id, partner_id, currency, amount, status
),
new_items AS (
    INSERT INTO payouts_payoutitem (payout_id, booking_id, amount, is_active)
    SELECT np.id, p.booking_id, p.amount, TRUE
    FROM payable p
    JOIN new_payouts np ON np.partner_id = p.partner_id AND np.currency = p.currency
    WHERE p.amount > 0
    RETURNING payout_id
),
new_holds AS (
    INSERT INTO payouts_payouthold (payout_id, kind, reason, created_at)
    SELECT id, 'risk', 'Partner is risk-flagged', %(now)s FROM new_payouts WHERE status = 'on_hold'
    RETURNING payout_id
),
new_events AS (
    INSERT INTO audit_event (verb, target_type_id, target_id, from_state, to_state, reason, data, created_at)
    SELECT 'payout.created', %(content_type)s, np.id::text, '', np.status,
           CASE np.status WHEN 'on_hold' THEN 'Partner is risk-flagged'
                          WHEN 'approved' THEN 'Approved automatically: under the approval threshold'
                          ELSE '' END,
           jsonb_build_object('amount', np.amount::text, 'run', %(run)s::bigint, 'bookings', t.bookings),
           %(now)s
    FROM new_payouts np
    JOIN totals t ON t.partner_id = np.partner_id AND t.currency = np.currency
    RETURNING 1
)
SELECT np.id, np.status, np.amount, t.bookings,
       (SELECT COUNT(*) FROM new_items), (SELECT COUNT(*) FROM new_holds), (SELECT COUNT(*) FROM new_events)
FROM new_payouts np
JOIN totals t ON t.partner_id = np.partner_id AND t.currency = np.currency
"""

_CLAIM_PARTNERS_SQL = """
SELECT id FROM partners_partner WHERE id > %(after)s ORDER BY id LIMIT %(limit)s FOR UPDATE SKIP LOCKED
"""

_RETRY_SQL = """
WITH due AS (
    SELECT id FROM payouts_payout
    WHERE status = 'failed' AND next_retry_at <= %(now)s
    ORDER BY id LIMIT %(limit)s FOR UPDATE SKIP LOCKED
),
moved AS (
    UPDATE payouts_payout p
    SET status = 'approved', next_retry_at = NULL, failure_reason = '', updated_at = %(now)s
    FROM due WHERE p.id = due.id
    RETURNING p.id, p.amount, p.attempt_count
),
events AS (
    INSERT INTO audit_event (verb, target_type_id, target_id, from_state, to_state, reason, data, created_at)
    SELECT 'payout.auto_retry', %(content_type)s, id::text, 'failed', 'approved',
           'Retried automatically after a failed attempt',
           jsonb_build_object('amount', amount::text, 'run', %(run)s::bigint, 'after_attempt', attempt_count),
           %(now)s
    FROM moved
    RETURNING 1
)
SELECT COUNT(*) FROM moved
"""

_SUBMIT_SQL = """
WITH due AS (
    SELECT id FROM payouts_payout WHERE status = 'approved'
    ORDER BY id LIMIT %(limit)s FOR UPDATE SKIP LOCKED
),
moved AS (
    UPDATE payouts_payout p
    SET status = 'submitted', attempt_count = p.attempt_count + 1, submitted_at = %(now)s, updated_at = %(now)s
    FROM due WHERE p.id = due.id AND p.status = 'approved'
    RETURNING p.id, p.amount, p.attempt_count
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
    SELECT 'payout.submit', %(content_type)s, id::text, 'approved', 'submitted', '',
           jsonb_build_object('amount', amount::text, 'run', %(run)s::bigint, 'attempt', attempt_count),
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
    cutoff = now - timedelta(days=settings.MARKETPLACE_PAYOUT_HOLD_DAYS)
    _mark_interrupted_runs(now)
    run = PayoutRun.objects.create(cutoff=cutoff, triggered_by=actor if getattr(actor, "pk", None) else None)
    try:
        batch = batch_partners or settings.MARKETPLACE_PAYOUT_RUN_BATCH_PARTNERS
        if _is_postgres():
            _gather(run, now=now, cutoff=cutoff, batch=batch)
            run.retried = _set_step(_RETRY_SQL, run, now=now)
            run.submitted = _submit(run, now=now)
        else:
            _gather_portable(run, cutoff=cutoff)
            run.retried = _retry_portable(now)
            run.submitted = _submit_portable()
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
    hold = timedelta(days=settings.MARKETPLACE_PAYOUT_HOLD_DAYS)
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
                    hold=hold,
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


def _set_step(sql: str, run: PayoutRun, *, now, limit: int = 500) -> int:
    total = 0
    while True:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql, _params(run, now, limit=limit))
            count = cursor.fetchone()[0]
        total += count
        if count < limit:
            return total


def _submit(run: PayoutRun, *, now, limit: int = 500) -> int:
    """Step 3: claim approved payouts, open one attempt each, hand the attempts to tasks on commit."""
    total = 0
    while True:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(_SUBMIT_SQL, _params(run, now, limit=limit))
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


# --- The portable path (SQLite, development) ----------------------------------------------------


def _gather_portable(run: PayoutRun, *, cutoff) -> None:
    from marketplace.payouts.services import booking_payable_amount, payout_create

    eligible = (
        Booking.objects.filter(status__in=SETTLED, completed_at__lte=cutoff, payment__captured_amount__gt=0)
        .exclude(payout_items__is_active=True)
        .select_related("payment")
    )
    by_partner: dict[int, list[Booking]] = {}
    for booking in eligible:
        if booking_payable_amount(booking=booking, payment=booking.payment) > ZERO:
            by_partner.setdefault(booking.partner_id, []).append(booking)
    for partner in Partner.objects.filter(pk__in=by_partner):
        with transaction.atomic():
            payout = payout_create(partner=partner, bookings=by_partner[partner.pk])
            Payout.objects.filter(pk=payout.pk).update(run=run)
            payout.refresh_from_db()
            run.payouts_created += 1
            run.bookings += len(by_partner[partner.pk])
            run.amount_created += payout.amount
            if payout.status == S.ACCRUING:
                _mature_and_approve_portable(payout, run)
            run.save()


def _mature_and_approve_portable(payout: Payout, run: PayoutRun) -> None:
    from marketplace.payouts.services import payout_auto_approve, payout_mature, payout_needs_approval

    payout = payout_mature(payout=payout)
    if not payout_needs_approval(payout):
        payout_auto_approve(payout=payout)
        run.auto_approved += 1


def _retry_portable(now) -> int:
    from marketplace.payouts.services import payout_auto_retry

    count = 0
    for payout in Payout.objects.filter(status=S.FAILED, next_retry_at__lte=now):
        payout_auto_retry(payout=payout)
        count += 1
    return count


def _submit_portable() -> int:
    from marketplace.payouts.services import payout_submit

    count = 0
    for payout in Payout.objects.filter(status=S.APPROVED).order_by("pk"):
        payout_submit(payout=payout, actor=None)
        count += 1
    return count
