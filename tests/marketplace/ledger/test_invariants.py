"""Property: whatever money moves, in whatever order, the books balance to the cent.

Hypothesis draws sequences of captures (new settled bookings with random amounts and commission
rates), refunds (partial, full, and too large ones that must be refused), and payouts that are
created, paid, failed, retried, cancelled and reversed. After every step the ledger must reconcile,
every transaction must sum to zero, and cash must equal payments - refunds - paid payouts, which
this test also tracks on its own, outside the ledger.

Each example runs inside a savepoint that is rolled back, so every example starts from the same
empty database within one `django_db` test.
"""

from dataclasses import dataclass, field
from decimal import Decimal

import pytest
from django.db import transaction
from django.db.models import Count, Sum
from hypothesis import HealthCheck, Phase, event, given, settings
from hypothesis import strategies as st

from marketplace.core.exceptions import ApplicationError, InvalidInput, TransitionNotAllowed
from marketplace.core.money import quantize
from marketplace.ledger.models import LedgerEntry, LedgerTransaction
from marketplace.ledger.selectors import ledger_balance
from marketplace.payments.gateway import SandboxGateway
from marketplace.payments.models import Payment, Refund
from marketplace.payouts import services as payouts
from marketplace.payouts.models import Payout, PayoutAttempt
from marketplace.payouts.reconciliation import ledger_reconcile
from tests.factories import CategoryFactory, ListingFactory, PartnerFactory, PayoutAccountFactory
from tests.factories.flows import settled_booking
from tests.factories.settlement import staff, submissions_not_sent

CENT = Decimal("0.01")
P = Payout.Status

amounts = st.integers(min_value=1, max_value=300_000).map(lambda cents: Decimal(cents) * CENT)
rates = st.integers(min_value=0, max_value=10_000).map(lambda bp: Decimal(bp) / 10_000)
pick = st.integers(min_value=0, max_value=1_000)  # an index, taken modulo what exists
fractions = st.integers(min_value=1, max_value=9_999).map(lambda n: Decimal(n) / 10_000)

captures = st.tuples(st.just("capture"), amounts, rates, st.integers(min_value=0, max_value=1))
operations = st.one_of(
    captures,
    st.tuples(st.just("refund"), pick, fractions),
    st.tuples(st.just("refund_any"), pick, amounts),
    st.tuples(st.just("refund_rest"), pick),
    st.tuples(st.just("refund_too_much"), pick, st.integers(min_value=1, max_value=10_000)),
    st.tuples(st.just("payout_create"), pick),
    st.tuples(st.just("payout_pay"), pick),
    st.tuples(st.just("payout_fail"), pick),
    st.tuples(st.just("payout_retry"), pick),
    st.tuples(st.just("payout_cancel"), pick),
    st.tuples(st.just("payout_reverse"), pick),
)


@dataclass
class Books:
    """The test's own account of what happened, kept outside the ledger."""

    listings: list
    finance: object
    lead: object
    bookings: list = field(default_factory=list)
    payouts: list = field(default_factory=list)
    captured: Decimal = Decimal("0.00")
    refunded: Decimal = Decimal("0.00")
    paid_out: Decimal = Decimal("0.00")
    refund_keys: int = 0

    def payment(self, index: int) -> Payment:
        return Payment.objects.get(booking=self.bookings[index % len(self.bookings)])

    def payout(self, index: int, *, preferring: set[str]) -> Payout | None:
        """A payout, one in a state of `preferring` if there is any (else any, to be refused)."""
        for payout in self.payouts:
            payout.refresh_from_db()
        candidates = [p for p in self.payouts if p.status in preferring] or self.payouts
        return candidates[index % len(candidates)] if candidates else None

    def refund(self, payment: Payment, amount: Decimal) -> str:
        """Refund through the service; a refusal must leave the payment exactly as it was."""
        self.refund_keys += 1
        refundable, status = payment.refundable, payment.status
        try:
            payments_refund(payment, amount, f"prop-{self.refund_keys}")
        except (InvalidInput, TransitionNotAllowed) as exc:
            if status == Payment.Status.REFUNDED:
                assert isinstance(exc, TransitionNotAllowed), exc
            else:
                assert isinstance(exc, InvalidInput) and amount > refundable, exc
            payment.refresh_from_db()
            assert (payment.refundable, payment.status) == (refundable, status)
            return "refund refused"
        assert status != Payment.Status.REFUNDED and amount <= refundable
        self.refunded += amount
        return "refund made (full)" if amount == refundable else "refund made (partial)"

    def approve_and_pay(self, payout: Payout, *, fail: bool) -> str:
        if payout.status == P.ACCRUING:
            payout = payouts.payout_mature(payout=payout)
        if payout.status == P.READY:
            if payouts.payout_needs_approval(payout):
                payouts.payout_request_approval(payout=payout, actor=self.lead)
                payout = payouts.payout_approve(payout=payout, actor=self.finance)
            else:
                payout = payouts.payout_auto_approve(payout=payout)
        with submissions_not_sent():
            attempt = payouts.payout_submit(payout=payout, actor=self.lead)
        if fail:
            SandboxGateway.fail_next("payout")
        payout = payouts.payout_attempt_process(attempt_id=attempt.pk)
        if payout.status == P.PAID:
            self.paid_out += payout.amount
        return f"payout {payout.status}"


def payments_refund(payment: Payment, amount: Decimal, key: str):
    from marketplace.payments.services import payment_refund

    return payment_refund(payment=payment, amount=amount, actor=None, reason="property", idempotency_key=key)


PREFERRED = {
    "payout_pay": {P.ACCRUING, P.READY, P.APPROVED},
    "payout_fail": {P.ACCRUING, P.READY, P.APPROVED},
    "payout_retry": {P.FAILED},
    "payout_cancel": {P.ACCRUING, P.READY, P.FAILED},
    "payout_reverse": {P.PAID},
}


def apply(books: Books, op: tuple) -> str:
    """Apply one drawn operation through the services; return what happened (for the statistics)."""
    kind = op[0]
    if kind == "capture":
        _, amount, rate, partner_index = op
        booking = settled_booking(
            listing=books.listings[partner_index],
            amount=amount,
            commission_rate=rate,
            platform_fee=quantize(amount * rate),
        )
        books.bookings.append(booking)
        books.captured += amount
        return "capture"
    if kind in ("refund", "refund_any", "refund_rest", "refund_too_much"):
        payment = books.payment(op[1])
        if kind == "refund":
            amount = max(CENT, quantize(payment.refundable * op[2]))
        elif kind == "refund_any":
            amount = op[2]
        elif kind == "refund_rest":
            amount = payment.refundable if payment.refundable > 0 else CENT
        else:
            amount = payment.refundable + Decimal(op[2]) * CENT
        return books.refund(payment, amount)
    if kind == "payout_create":
        booking = books.bookings[op[1] % len(books.bookings)]
        try:
            payout = payouts.payout_create(partner=booking.partner, bookings=[booking], actor=books.lead)
        except ApplicationError:
            # already in a live payout, or nothing left to pay: refused, nothing written
            return "payout_create refused"
        books.payouts.append(payout)
        return "payout created"
    payout = books.payout(op[1], preferring=PREFERRED[kind])
    if payout is None:
        # no payout yet: gather the picked booking into one first
        if apply(books, ("payout_create", op[1])) != "payout created":
            return "no payout possible"
        payout = books.payouts[-1]
    try:
        if kind in ("payout_pay", "payout_fail"):
            return books.approve_and_pay(payout, fail=kind == "payout_fail")
        if kind == "payout_retry":
            payouts.payout_retry(payout=payout, actor=books.lead)
        elif kind == "payout_cancel":
            payouts.payout_cancel(payout=payout, actor=books.lead, reason="property")
        elif kind == "payout_reverse":
            payouts.payout_reverse(payout=payout, actor=books.finance, reason="property")
            books.paid_out -= payout.amount
    except TransitionNotAllowed:
        return f"{kind} refused"  # not from this state: nothing written
    return kind


def assert_books_balance(books: Books) -> None:
    result = ledger_reconcile()
    assert result.balanced, (result.unbalanced_transactions, result.mismatches)
    sums = LedgerTransaction.objects.annotate(total=Sum("entries__amount"), legs=Count("entries"))
    assert not [t.pk for t in sums if t.legs and t.total != 0], "a transaction does not sum to zero"
    cash = ledger_balance(account=LedgerEntry.Account.CASH)
    assert cash == books.captured - books.refunded - books.paid_out
    assert cash == result.totals["EUR"]["payments"] - result.totals["EUR"]["refunds"] - result.totals["EUR"]["payouts"]
    assert result.totals["EUR"]["payments"] == books.captured
    assert result.totals["EUR"]["refunds"] == books.refunded == (Refund.objects.aggregate(s=Sum("amount"))["s"] or 0)
    # each payout ledger posting belongs to a payout that was paid (and maybe reversed), once
    paid = Payout.objects.filter(status__in=[P.PAID, P.REVERSED])
    assert LedgerTransaction.objects.filter(kind="payout").count() == paid.count()
    assert LedgerTransaction.objects.filter(kind="reversal").count() == paid.filter(status=P.REVERSED).count()
    assert PayoutAttempt.objects.filter(status="succeeded").count() == paid.count()


@pytest.mark.django_db
@settings(
    max_examples=30,
    deadline=None,
    database=None,
    # the explain phase re-runs a failing example hundreds of times against the database: minutes
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink],
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(first=st.lists(captures, min_size=1, max_size=3), then=st.lists(operations, min_size=4, max_size=12))
def test_ledger_invariants_hold_after_any_sequence_of_money_movements(first, then):
    ops = first + then
    with transaction.atomic():
        SandboxGateway.reset()
        category = CategoryFactory()
        partners = [PartnerFactory(), PartnerFactory()]
        for partner in partners:
            PayoutAccountFactory(partner=partner)
        books = Books(
            listings=[ListingFactory(partner=p, category=category, status="published") for p in partners],
            finance=staff("Finance"),
            lead=staff("Operations lead"),
        )
        try:
            for op in ops:
                event(apply(books, op))
                assert_books_balance(books)
        finally:
            transaction.set_rollback(True)
            SandboxGateway.reset()
