"""The booking's ledger on the booking's and the dispute's change pages: every posting of the
booking, and what it leaves held, owed and earned, to the cent, in one query."""

import re
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from marketplace.accounts.services import StaffGroup
from marketplace.disputes.models import Dispute
from marketplace.ledger.selectors import booking_money
from marketplace.payments.models import Payment, Refund
from tests.factories.flows import booking_in
from tests.factories.settlement import PARTIAL_REFUND, dispute_in, staff

pytestmark = pytest.mark.django_db


def _totals(html: str) -> dict[str, str]:
    return dict(re.findall(r'data-total="(\w+)">([^<]+)</dd>', html))


def test_a_partial_refund_shows_on_the_dispute_and_the_booking_page(client):
    # given a dispute resolved with a 30.00 refund, and an agent of its partner
    dispute = dispute_in(Dispute.Status.RESOLVED_PARTIAL_REFUND)
    booking = dispute.booking
    refund = Refund.objects.get(payment__booking=booking)
    assert refund.amount == PARTIAL_REFUND
    client.force_login(staff(StaffGroup.OPERATIONS_AGENT, scope=dispute.partner))

    for url in (
        reverse("admin:disputes_dispute_change", args=[dispute.pk]),
        reverse("admin:bookings_booking_change", args=[booking.pk]),
    ):
        # when either change page is opened
        response = client.get(url)
        assert response.status_code == 200
        html = response.content.decode()

        # then the ledger lists the capture, the fee and the refund (2 + 2 + 3 entries)
        assert html.count("<tr data-entry>") == 7, url
        assert "Refund" in html and "Capture" in html and "Platform fee" in html
        # and what is left, to the cent: cash held = captured - refunded, and each side's net
        captured = Payment.objects.get(booking=booking).captured_amount
        assert _totals(html) == {
            "cash": f"{captured - Decimal('30.00')} EUR",
            "provider_owed": f"{captured - booking.platform_fee - refund.provider_share} EUR",
            "platform_revenue": f"{booking.platform_fee - refund.platform_share} EUR",
        }, url


def test_booking_money_sums_reconcile_and_cost_one_query():
    # given a completed booking (captured, fee taken) and a booking with no money yet
    paid, unpaid = booking_in("completed"), booking_in("requested")

    # when their money is read
    with CaptureQueriesContext(connection) as queries:
        money = booking_money(paid.pk)
    nothing = booking_money(unpaid.pk)

    # then one query, and the three positions add up to the cash held (the books balance)
    assert len(queries) == 1
    assert money.cash == money.provider_owed + money.platform_revenue == paid.amount
    assert money.platform_revenue == paid.platform_fee
    assert [(row.kind, row.debit, row.credit) for row in money.rows][:2] == [
        ("Capture", paid.amount, None),
        ("Capture", None, paid.amount),
    ]
    assert (nothing.rows, nothing.cash) == ([], Decimal("0.00"))


def test_a_booking_without_money_says_so(client):
    booking = booking_in("requested")
    client.force_login(staff(StaffGroup.OPERATIONS_LEAD))

    html = client.get(reverse("admin:bookings_booking_change", args=[booking.pk])).content.decode()

    assert "No money has moved for this booking yet." in html
