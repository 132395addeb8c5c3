"""Property: over any interleaving of bookings, refunds and chargebacks (before and after payout),
adjustments and payout runs, in two currencies and three partners:

1. the books balance, per currency (`ledger_reconcile`);
2. no payout run pays a partner more, in total, than it was owed when it paid;
3. a negative balance is netted by the partner's next payout in that currency (the payout carries
   all of it, and the balance the ledger keeps is then what the new bookings left).

The test keeps its own account of what each partner earned (price less the fee, less the provider's
share of each refund, plus adjustments) outside the ledger, and compares.
"""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import transaction
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from marketplace.accounts.services import StaffGroup
from marketplace.bookings.models import Booking
from marketplace.catalog.models import Listing
from marketplace.core.exceptions import ApplicationError
from marketplace.core.money import fee_and_share
from marketplace.ledger.services import ledger_post_capture
from marketplace.payments.models import Payment
from marketplace.payments.services import payment_refund
from marketplace.payouts.adjustments import adjustment_create
from marketplace.payouts.balances import partner_balances
from marketplace.payouts.chargebacks import payment_chargeback
from marketplace.payouts.models import Payout
from marketplace.payouts.reconciliation import ledger_reconcile
from marketplace.payouts.runs import payout_run_execute
from tests.factories import BookingFactory, ListingFactory, PartnerFactory, PayoutAccountFactory
from tests.factories.settlement import staff

CENT = Decimal("0.01")
RATE = Decimal("0.15")
CURRENCIES = ("EUR", "USD")
P = Payout.Status

amounts = st.integers(min_value=100, max_value=50_000).map(lambda c: Decimal(c) * CENT)
pick = st.integers(min_value=0, max_value=100)
operations = st.one_of(
    st.tuples(st.just("book"), st.integers(0, 2), st.integers(0, 1), amounts),
    st.tuples(st.just("refund"), pick, st.integers(1, 100)),
    st.tuples(st.just("chargeback"), pick, st.integers(1, 100)),
    st.tuples(st.just("adjust"), st.integers(0, 2), st.integers(0, 1), st.integers(-20_000, 20_000)),
    st.tuples(st.just("run")),
)


def _settled(partner, currency, amount, fee):
    """A completed booking past its hold and dispute window, whose payment was captured and posted to
    the ledger by the ledger's own service (cheaper than the whole checkout, which other tests cover)."""
    now = timezone.now()
    booking = BookingFactory(
        listing=ListingFactory(partner=partner, currency=currency, status=Listing.Status.PUBLISHED),
        amount=amount,
        platform_fee=fee,
        commission_rate=RATE,
        currency=currency,
        status=Booking.Status.COMPLETED,
        completed_at=now - timedelta(days=30),
        dispute_window_ends_at=now - timedelta(days=16),
    )
    payment = Payment.objects.create(
        booking=booking,
        amount=amount,
        currency=currency,
        status=Payment.Status.CAPTURED,
        captured_amount=amount,
        captured_at=now,
        gateway_reference=f"sbx_prop_{booking.pk}",
    )
    ledger_post_capture(payment=payment, booking=booking)
    return booking


def _apply(op, *, partners, bookings, earned, finance, run):
    kind = op[0]
    if kind == "book":
        partner, currency, amount = partners[op[1]], CURRENCIES[op[2]], op[3]
        fee, share = fee_and_share(amount, RATE)
        bookings.append(_settled(partner, currency, amount, fee))
        earned[(partner.pk, currency)] = earned.get((partner.pk, currency), Decimal("0")) + share
    elif kind in ("refund", "chargeback") and bookings:
        booking = bookings[op[1] % len(bookings)]
        payment = Payment.objects.get(booking=booking)
        amount = (payment.refundable * op[2] / 100).quantize(CENT)
        if amount <= 0:
            return
        if kind == "refund":
            key = f"p:{payment.pk}:{payment.refunds.count()}"
            refund = payment_refund(payment=payment, amount=amount, actor=None, reason="p", idempotency_key=key)
        else:
            refund = payment_chargeback(
                payment=payment, amount=amount, reference=f"cb{payment.pk}-{payment.refunds.count()}", reason="p"
            )
        assert refund.provider_share + refund.platform_share == amount
        key = (booking.partner_id, booking.currency)
        earned[key] -= refund.provider_share
    elif kind == "adjust" and op[3]:
        partner, currency, amount = partners[op[1]], CURRENCIES[op[2]], Decimal(op[3]) * CENT
        adjustment_create(partner=partner, amount=amount, currency=currency, reason="p", actor=finance)
        earned[(partner.pk, currency)] = earned.get((partner.pk, currency), Decimal("0")) + amount
    elif kind == "run":
        before = partner_balances()
        created_before = set(Payout.objects.values_list("pk", flat=True))
        run()
        for payout in Payout.objects.exclude(pk__in=created_before):
            key = (payout.partner_id, payout.currency)
            # 3. the payout carries the whole balance no booking accounted for before the run
            assert payout.carried == before[key].carried, (payout, before[key])
            # 2. what has been paid (or is on its way) never exceeds what was owed when it paid
            committed = sum(
                Payout.objects.filter(
                    partner_id=payout.partner_id,
                    currency=payout.currency,
                    status__in=[P.PAID, P.SUBMITTED, P.APPROVED, P.READY, P.AWAITING_APPROVAL, P.ON_HOLD],
                ).values_list("amount", flat=True),
                Decimal("0"),
            )
            assert committed <= earned.get(key, Decimal("0")), (key, committed, earned.get(key))
        after = partner_balances()
        for key, balance in after.items():
            if key in {(p.partner_id, p.currency) for p in Payout.objects.exclude(pk__in=created_before)}:
                assert balance.carried == 0, (key, balance)


@pytest.mark.django_db
@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(ops=st.lists(operations, min_size=1, max_size=12))
def test_balances_net_and_reconcile_over_any_interleaving(ops, django_capture_on_commit_callbacks):
    with transaction.atomic():
        partners = [PartnerFactory() for _ in range(3)]
        for partner in partners:
            PayoutAccountFactory(partner=partner)
        finance = staff(StaffGroup.FINANCE)

        def run():
            with django_capture_on_commit_callbacks(execute=True):
                payout_run_execute()

        bookings, earned = [], {}
        for op in [*ops, ("run",)]:
            try:
                with transaction.atomic():
                    _apply(op, partners=partners, bookings=bookings, earned=earned, finance=finance, run=run)
            except ApplicationError:
                pass  # refused operations write nothing (checked by the reconciliation below)
            # 1. the books balance per currency after every step
            result = ledger_reconcile()
            assert result.balanced, result.mismatches
            # the ledger's balance per partner and currency is the test's own account less what was paid
            for key, owed in earned.items():
                paid = sum(
                    Payout.objects.filter(partner_id=key[0], currency=key[1], status=P.PAID).values_list(
                        "amount", flat=True
                    ),
                    Decimal("0"),
                )
                ledger = partner_balances(partner_ids=[key[0]], currency=key[1]).get(key)
                assert (ledger.owed if ledger else Decimal("0")) == owed - paid, key
        transaction.set_rollback(True)
