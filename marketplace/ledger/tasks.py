"""django-q2 entry points of the ledger. Thin: each calls one service and returns its result."""

from marketplace.ledger.services import ledger_reconcile_check as _ledger_reconcile_check


def ledger_reconcile_check() -> dict:
    """Scheduled: prove the books balance and match payments, refunds and payouts (read-only, safe to run twice)."""
    check = _ledger_reconcile_check()
    if check is None:
        return {"skipped": "another reconciliation check is running"}
    return {"check": check.pk, "balanced": check.balanced, "mismatches": len(check.mismatches)}
