"""django-q2 entry points: take ids, call services."""

from marketplace.payouts.runs import payout_run_execute
from marketplace.payouts.services import payout_attempt_process as _process


def payout_attempt_process(attempt_id: int) -> None:
    _process(attempt_id=attempt_id)


def payout_run() -> dict:
    """The scheduled payout run; returns its counts (kept with the task's result)."""
    run = payout_run_execute()
    return {
        "run": run.pk,
        "payouts_created": run.payouts_created,
        "bookings": run.bookings,
        "amount_created": str(run.amount_created),
        "submitted": run.submitted,
        "held": run.held,
        "needs_approval": run.needs_approval,
        "disputed_bookings": run.disputed_bookings,
    }


def ledger_reconcile_check() -> dict:
    """Scheduled: prove the books balance per currency and per partner (read-only, safe to run twice)."""
    from marketplace.payouts.reconciliation import ledger_reconcile_check as _check

    check = _check()
    if check is None:
        return {"skipped": "another reconciliation check is running"}
    return {
        "check": check.pk,
        "balanced": check.balanced,
        "mismatches": len(check.mismatches),
        "negative_balances": len(check.negative_balances),
    }
