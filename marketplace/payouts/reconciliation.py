"""The proof that the books balance, per currency and per partner, and the scheduled check that keeps it.

It compares the ledger with the operational tables it must agree with (payments, refunds, payouts,
balance adjustments), so it lives here, above all of them; the ledger app itself reads only its own
rows. Every figure is one aggregate query grouped by currency (and partner): no two currencies are
ever added together.

Per currency C:
    cash(C)             = captured - refunded (refunds and chargebacks) - payouts paid
    platform_revenue(C) = fees of captured bookings - fee share of refunds - adjustments posted
    provider_payable(C) = cash - platform_revenue
and per partner P and currency C, the partner's balance in the ledger equals what the operational
tables say they were owed less what they were paid:
    balance(P, C) = (captured - fee) - provider share of refunds + adjustments - payouts paid

A partner balance below zero (refunds or chargebacks after a payout) is carried forward and netted
by the next payouts; one that has stayed negative for longer than MARKETPLACE_NEGATIVE_BALANCE_ALERT_DAYS
is an alert for Finance.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q, Sum
from django.utils import timezone

from marketplace.audit.services import event_record
from marketplace.core.locks import single_flight
from marketplace.core.money import CENT, ZERO, quantize
from marketplace.ledger.models import LedgerEntry, LedgerTransaction, ReconciliationCheck
from marketplace.payments.models import Payment, Refund
from marketplace.payouts.models import BalanceAdjustment, Payout

A = LedgerEntry.Account


@dataclass
class Reconciliation:
    balanced: bool
    unbalanced_transactions: list[int] = field(default_factory=list)
    mismatches: list[dict] = field(default_factory=list)
    # {currency: {"payments": ..., "refunds": ..., "payouts": ..., "adjustments": ..., "cash": ...,
    #  "provider_payable": ..., "platform_revenue": ..., "ledger_sum": ...}}
    totals: dict[str, dict[str, Decimal]] = field(default_factory=dict)
    # Partners owing the platform money: [{"partner", "currency", "balance", "since", "days", "alert"}]
    negative_balances: list[dict] = field(default_factory=list)

    @property
    def alerts(self) -> list[dict]:
        return [row for row in self.negative_balances if row["alert"]]


def _by(qs, keys: dict, expr) -> dict[tuple, Decimal]:
    """Sum `expr` over `qs` grouped by `keys` ({name: path}); {(key values...): total}."""
    rows = qs.values(**{k: F(v) for k, v in keys.items()}).annotate(total=Sum(expr)).order_by()
    return {tuple(row[k] for k in keys): quantize(row["total"] or ZERO) for row in rows}


def _add(into: dict, key, amount: Decimal, sign: int = 1) -> None:
    into[key] = into.get(key, ZERO) + sign * amount


def ledger_reconcile(*, now=None) -> Reconciliation:
    """Prove the books, per currency and per partner and currency, to the cent."""
    now = now or timezone.now()
    unbalanced = list(
        LedgerTransaction.objects.annotate(total=Sum("entries__amount"))
        .filter(Q(total__gte=CENT) | Q(total__lte=-CENT))
        .values_list("pk", flat=True)[:100]
    )
    captured = Payment.objects.filter(captured_amount__gt=0)
    paid = Payout.objects.filter(status=Payout.Status.PAID)
    adjustments = BalanceAdjustment.objects.filter(status=BalanceAdjustment.Status.POSTED)
    cur = {"c": "currency"}

    payments = _by(captured, cur, "captured_amount")
    fees = _by(captured, cur, "booking__platform_fee")
    refunds = _by(Refund.objects.all(), cur, "amount")
    refund_fees = _by(Refund.objects.all(), cur, "platform_share")
    payouts = _by(paid, cur, "amount")
    adjusted = _by(adjustments, cur, "amount")
    ledger = _by(LedgerEntry.objects.all(), {"c": "currency", "a": "account"}, "amount")
    ledger_sum = _by(LedgerEntry.objects.all(), cur, "amount")

    currencies = sorted({key[0] for d in (payments, refunds, payouts, adjusted, ledger_sum) for key in d})
    mismatches: list[dict] = []
    totals: dict[str, dict[str, Decimal]] = {}
    for c in currencies:
        k = (c,)
        expected = {
            "cash": payments.get(k, ZERO) - refunds.get(k, ZERO) - payouts.get(k, ZERO),
            "platform_revenue": fees.get(k, ZERO) - refund_fees.get(k, ZERO) - adjusted.get(k, ZERO),
        }
        expected["provider_payable"] = expected["cash"] - expected["platform_revenue"]
        actual = {
            "cash": ledger.get((c, A.CASH), ZERO),
            "platform_revenue": -ledger.get((c, A.PLATFORM_REVENUE), ZERO),
            "provider_payable": -ledger.get((c, A.PROVIDER_PAYABLE), ZERO),
        }
        for name in expected:
            if expected[name] != actual[name]:
                mismatches.append(
                    {"currency": c, "account": name, "expected": str(expected[name]), "ledger": str(actual[name])}
                )
        if ledger_sum.get(k, ZERO) != ZERO:
            mismatches.append({"currency": c, "account": "*", "expected": "0.00", "ledger": str(ledger_sum[k])})
        totals[c] = {
            "payments": payments.get(k, ZERO),
            "refunds": refunds.get(k, ZERO),
            "payouts": payouts.get(k, ZERO),
            "adjustments": adjusted.get(k, ZERO),
            **actual,
            "ledger_sum": ledger_sum.get(k, ZERO),
        }

    # Per partner and currency: what they were owed less what they were paid, against the ledger.
    pc = {"p": "partner_id", "c": "currency"}
    owed: dict[tuple, Decimal] = {}
    for key, amount in _by(
        captured, {"p": "booking__partner_id", "c": "currency"}, F("captured_amount") - F("booking__platform_fee")
    ).items():
        _add(owed, key, amount)
    for key, amount in _by(
        Refund.objects.all(), {"p": "payment__booking__partner_id", "c": "currency"}, "provider_share"
    ).items():
        _add(owed, key, amount, -1)
    for key, amount in _by(paid, pc, "amount").items():
        _add(owed, key, amount, -1)
    for key, amount in _by(adjustments, pc, "amount").items():
        _add(owed, key, amount)
    balances = {
        key: -amount
        for key, amount in _by(LedgerEntry.objects.filter(account=A.PROVIDER_PAYABLE), pc, "amount").items()
    }
    for key in sorted(set(owed) | set(balances), key=lambda k: (k[0] or 0, k[1])):
        exp, got = owed.get(key, ZERO), balances.get(key, ZERO)
        if exp != got:
            mismatches.append(
                {
                    "account": "provider_payable",
                    "partner": key[0],
                    "currency": key[1],
                    "expected": str(exp),
                    "ledger": str(got),
                }
            )

    negative = [
        _negative_row(partner_id, currency, balance, now)
        for (partner_id, currency), balance in sorted(balances.items(), key=lambda kv: (kv[0][0], kv[0][1]))
        if balance < ZERO
    ]
    return Reconciliation(
        balanced=not unbalanced and not mismatches,
        unbalanced_transactions=unbalanced,
        mismatches=mismatches,
        totals=totals,
        negative_balances=negative,
    )


def negative_since(partner_id: int, currency: str):
    """When the partner's balance in `currency` last went below zero (None if it is not below zero).

    One query over the partner's own postings: the running balance, newest first, back to the last
    posting that left it at or above zero.
    """
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT created_at, -SUM(amount) OVER (ORDER BY created_at, id) AS balance
            FROM ledger_ledgerentry
            WHERE account = %s AND partner_id = %s AND currency = %s
            ORDER BY created_at DESC, id DESC
            """,
            [A.PROVIDER_PAYABLE, partner_id, currency],
        )
        since = None
        for created_at, balance in cursor.fetchall():
            if balance >= 0:
                break
            since = created_at
    return since


def _negative_row(partner_id: int, currency: str, balance: Decimal, now) -> dict:
    since = negative_since(partner_id, currency)
    days = (now - since).days if since else 0
    return {
        "partner": partner_id,
        "currency": currency,
        "balance": str(balance),
        "since": since.isoformat() if since else None,
        "days": days,
        "alert": days >= settings.MARKETPLACE_NEGATIVE_BALANCE_ALERT_DAYS,
    }


def _reconcile_in_one_snapshot() -> Reconciliation:
    # The proof is a dozen aggregate queries. Under READ COMMITTED a capture committed between two
    # of them (payment row counted, ledger entries not yet) would look like a mismatch; one
    # REPEATABLE READ, READ ONLY transaction makes every figure come from the same instant. Inside
    # an outer transaction (tests, or a caller's atomic block) the caller's snapshot rules instead.
    if connection.vendor != "postgresql" or connection.in_atomic_block:
        return ledger_reconcile()
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        return ledger_reconcile()


def _json_totals(totals: dict[str, dict[str, Decimal]]) -> dict:
    return {currency: {name: str(amount) for name, amount in figures.items()} for currency, figures in totals.items()}


def ledger_reconcile_check() -> ReconciliationCheck | None:
    """Run the reconciliation proof and record its outcome as a `ReconciliationCheck` row.

    A failed proof writes a `ledger.mismatch` audit event naming the check, once per distinct
    finding: a later check that sees exactly the same mismatches records its row (the admin keeps
    showing the alert) but raises no second event. A partner balance negative for longer than the
    alert age writes a `ledger.negative_balance` event, once per partner, currency and episode.
    Nothing is ever posted to the ledger here: a mismatch is evidence for people to investigate.

    One check runs at a time (a named lock across processes); a check started while another one
    runs returns None at once and writes nothing.
    """
    with single_flight("ledger.reconcile_check") as acquired:
        if not acquired:
            return None
        return _check()


def _check() -> ReconciliationCheck:
    ran_at = timezone.now()
    started = time.monotonic()
    result = _reconcile_in_one_snapshot()
    duration = timedelta(seconds=time.monotonic() - started)
    with transaction.atomic():
        previous = ReconciliationCheck.objects.order_by("-ran_at", "-id").first()
        check = ReconciliationCheck.objects.create(
            ran_at=ran_at,
            balanced=result.balanced,
            totals=_json_totals(result.totals),
            mismatches=result.mismatches,
            unbalanced_transaction_ids=list(result.unbalanced_transactions),
            negative_balances=result.negative_balances,
            duration=duration,
        )
        already_reported = (
            previous is not None
            and not previous.balanced
            and previous.mismatches == check.mismatches
            and previous.unbalanced_transaction_ids == check.unbalanced_transaction_ids
        )
        if not result.balanced and not already_reported:
            event_record(
                verb="ledger.mismatch",
                target=check,
                to_state="mismatch",
                reason=(
                    f"{len(result.mismatches)} account mismatch(es), "
                    f"{len(result.unbalanced_transactions)} unbalanced transaction(s)"
                ),
                data={
                    "check": check.pk,
                    "mismatches": check.mismatches,
                    "unbalanced_transactions": check.unbalanced_transaction_ids,
                    "totals": check.totals,
                },
            )
        reported = {
            (row["partner"], row["currency"], row["since"])
            for row in (previous.negative_balances if previous is not None else [])
            if row.get("alert")
        }
        for row in result.alerts:
            if (row["partner"], row["currency"], row["since"]) not in reported:
                _alert_finance(check, row)
    return check


def _alert_finance(check: ReconciliationCheck, row: dict) -> None:
    from marketplace.accounts.models import User
    from marketplace.accounts.services import StaffGroup
    from marketplace.notifications.services import notify
    from marketplace.partners.models import Partner

    partner = Partner.objects.get(pk=row["partner"])
    title = (
        f"{partner.name} has owed {-Decimal(row['balance'])} {row['currency']} for {row['days']} days "
        "(refunds or chargebacks after a payout)"
    )
    event_record(verb="ledger.negative_balance", target=partner, reason=title, data={**row, "check": check.pk})
    finance = User.objects.filter(groups__name=StaffGroup.FINANCE, is_active=True).distinct().order_by("pk")
    for user in finance:
        notify(user=user, verb="ledger.negative_balance", target=partner, title=title)
