"""Issue 9: no gateway call is made inside a database transaction or while holding a row lock.

A sandbox gateway that looks at its own database connection each time it is called records whether
a transaction was open and which locks the session held; every money workflow (authorise, capture,
void by decline, cancel and expiry, refund by cancellation and directly) must call it with none.
The test is transactional (`transaction=True`), so there is no test-case transaction around it:
what the gateway sees is what it would see in production.
"""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.utils import timezone

from marketplace.bookings.models import Booking
from marketplace.payments import tasks as payment_tasks
from marketplace.payments.gateway import SandboxGateway
from marketplace.payments.models import Payment
from marketplace.payments.services import (
    booking_accept,
    booking_authorize,
    booking_cancel,
    booking_decline,
    payment_refund,
)
from tests.factories import PaymentMethodFactory
from tests.factories.states import booking_at

pytestmark = pytest.mark.django_db(transaction=True)

S = Booking.Status

# Locks of this session other than advisory ones (a session-level advisory lock is no row lock
# and opens no transaction) and other than the system catalogue this query reads.
_LOCKS_SQL = """
    SELECT locktype, COALESCE(relation::regclass::text, ''), mode
    FROM pg_locks
    WHERE pid = pg_backend_pid()
      AND locktype <> 'advisory'
      AND locktype <> 'virtualxid'
      AND NOT (locktype = 'relation' AND relation::regclass::text LIKE 'pg_%%')
"""


class WatchingGateway(SandboxGateway):
    """The sandbox, noting for each call whether a transaction was open and which locks were held."""

    seen: list[tuple[str, bool, list]] = []

    def _call(self, operation, idempotency_key, **kwargs):
        with connection.cursor() as cursor:
            cursor.execute(_LOCKS_SQL)
            locks = cursor.fetchall()
        self.seen.append((operation, connection.in_atomic_block, locks))
        return super()._call(operation, idempotency_key, **kwargs)


@pytest.fixture
def watching_gateway(settings):
    settings.MARKETPLACE_PAYMENT_GATEWAY = f"{__name__}.WatchingGateway"
    WatchingGateway.seen = []
    yield WatchingGateway
    WatchingGateway.seen = []


def _calls_made_in_a_transaction(gateway) -> list:
    return [(operation, in_block, locks) for operation, in_block, locks in gateway.seen if in_block or locks]


def test_money_workflows_call_the_gateway_with_no_transaction_and_no_lock(watching_gateway):
    # given bookings ready for each money workflow (built before the gateway is watched)
    to_pay = booking_at(S.PENDING_PAYMENT)
    method = PaymentMethodFactory(user=to_pay.client, is_default=False)
    to_accept = booking_at(S.AUTHORIZED)
    to_decline = booking_at(S.AUTHORIZED)
    to_cancel_before_capture = booking_at(S.AUTHORIZED)
    to_cancel_after_capture = booking_at(S.ACCEPTED)
    to_refund = booking_at(S.ACCEPTED)
    to_expire = booking_at(S.AUTHORIZED)
    Booking.objects.filter(pk=to_expire.pk).update(expires_at=timezone.now() - timedelta(minutes=1))
    watching_gateway.seen = []

    # when each workflow runs, as the doors and the timers call them
    booking_authorize(booking=to_pay, actor=to_pay.client, method=method)
    booking_accept(booking=to_accept, actor=to_accept.provider)
    booking_decline(booking=to_decline, actor=to_decline.provider, reason="Fully booked.")
    booking_cancel(booking=to_cancel_before_capture, actor=to_cancel_before_capture.client, reason="Plans changed.")
    booking_cancel(booking=to_cancel_after_capture, actor=to_cancel_after_capture.client, reason="Plans changed.")
    payment_refund(
        payment=Payment.objects.get(booking=to_refund),
        amount=Decimal("10.00"),
        actor=None,
        reason="Goodwill.",
        idempotency_key="goodwill-1",
    )
    assert payment_tasks.booking_expiry_run()["expired"] == 1

    # then the gateway was asked for each, every time with no transaction open and no lock held
    assert sorted(operation for operation, _, _ in watching_gateway.seen) == sorted(
        ["authorize", "capture", "void", "void", "refund", "refund", "void"]
    )
    assert _calls_made_in_a_transaction(watching_gateway) == []
    # and every workflow did its work
    statuses = Booking.objects.in_bulk(
        [
            to_pay.pk,
            to_accept.pk,
            to_decline.pk,
            to_cancel_before_capture.pk,
            to_cancel_after_capture.pk,
            to_expire.pk,
        ]
    )
    assert [statuses[b.pk].status for b in (to_pay, to_accept, to_decline)] == [S.AUTHORIZED, S.ACCEPTED, S.DECLINED]
    assert statuses[to_cancel_before_capture.pk].status == statuses[to_cancel_after_capture.pk].status == S.CANCELLED
    assert statuses[to_expire.pk].status == S.EXPIRED
    assert Payment.objects.get(booking=to_refund).refunded_amount == Decimal("10.00")


def test_payout_attempt_calls_the_gateway_with_no_transaction_and_no_lock(watching_gateway):
    # given an approved payout
    from marketplace.payouts import services as payouts
    from tests.factories.settlement import payout_in

    payout = payouts.payout_auto_approve(payout=payout_in("ready"))
    watching_gateway.seen.clear()  # (the booking's own authorise and capture above)

    # when it is submitted: its attempt's task runs after the commit (the test cluster runs tasks at
    # once), and running the task again finds the attempt finished
    attempt = payouts.payout_submit(payout=payout, actor=None)
    payouts.payout_attempt_process(attempt_id=attempt.pk)

    # then the bank was asked once, outside any transaction and holding no row lock, and the payout is paid
    assert [operation for operation, _, _ in watching_gateway.seen] == ["payout"]
    assert _calls_made_in_a_transaction(watching_gateway) == []
    payout.refresh_from_db()
    assert payout.status == "paid"
