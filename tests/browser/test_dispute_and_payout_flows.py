"""In the browser: a dispute resolved with a partial refund (ledger and timeline show it), and a
payout whose requester cannot approve it while a second person can."""

from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission

from marketplace.accounts.services import StaffGroup
from marketplace.disputes.models import Dispute
from marketplace.ledger.models import LedgerEntry
from marketplace.payments.models import Payment, Refund
from marketplace.payouts.models import Payout
from marketplace.payouts.reconciliation import ledger_reconcile
from tests.factories.settlement import dispute_in, payout_in, staff

pytestmark = pytest.mark.django_db(transaction=True)


def test_dispute_resolved_with_a_partial_refund(page, admin_login):
    dispute = dispute_in(Dispute.Status.UNDER_REVIEW)
    agent = staff(StaffGroup.OPERATIONS_AGENT, scope=dispute.partner)

    admin_login(agent)
    page.goto(f"/admin/disputes/dispute/{dispute.pk}/change/")
    page.shot("dispute-page")
    page.click("a:has-text('Resolve')")
    page.check("input[name=outcome][value=partial_refund]")
    page.fill("input[name=reason_code]", "quality")
    page.fill("input[name=refund_amount]", "30.00")
    page.fill("textarea[name=reason]", "Half the hedge was left untrimmed; 30.00 back to the client.")
    page.shot("resolve-partial-refund")
    page.submit("form[data-workflow] button[type=submit]")
    assert "is resolved: resolved: partial refund." in page.inner_text("body")
    page.locator("[data-money]").scroll_into_view_if_needed()
    page.shot("resolved-with-ledger")
    page.locator("[data-timeline]").scroll_into_view_if_needed()
    page.shot("resolved-with-timeline")

    # the booking's ledger on the page: the refund's cash credit, and what each side is left with
    money = page.inner_text("[data-money]")
    assert "Refund" in money
    assert page.inner_text("[data-money] [data-total=cash]") == f"{dispute.booking.amount - Decimal('30.00')} EUR"
    timeline = page.inner_text("[data-timeline]")
    assert "dispute.resolve_partial_refund" in timeline
    assert "Half the hedge was left untrimmed" in timeline
    dispute.refresh_from_db()
    assert dispute.status == Dispute.Status.RESOLVED_PARTIAL_REFUND
    payment = Payment.objects.get(booking_id=dispute.booking_id)
    assert payment.refunded_amount == Decimal("30.00")
    refund = Refund.objects.get(payment=payment)
    cash = LedgerEntry.objects.get(
        transaction__kind="refund", transaction__source=f"payments.refund:{refund.pk}", account="cash"
    )
    assert cash.amount == Decimal("-30.00")
    assert ledger_reconcile().balanced


def test_payout_requester_cannot_approve_a_second_person_can(page, admin_login):
    payout = payout_in(Payout.Status.READY)
    lead = staff(StaffGroup.OPERATIONS_LEAD, full_name="Lena Lead")
    # the requester may approve payouts in general: four-eyes, not a missing right, is what stops them
    lead.user_permissions.add(Permission.objects.get(codename="approve_payout"))
    lead = type(lead).objects.get(pk=lead.pk)
    finance = staff(StaffGroup.FINANCE, full_name="Fin Ance")

    admin_login(lead)
    page.goto(f"/admin/payouts/payout/{payout.pk}/change/")
    page.click("a:has-text('Request approval')")
    page.fill("textarea[name=reason]", "New partner, first payout.")
    page.submit("form[data-workflow] button[type=submit]")
    page.shot("approval-requested")
    page.click("a:has-text('Approve')")
    page.submit("form[data-workflow] button[type=submit]")
    assert f"You requested payout #{payout.pk}; a second person must approve it." in page.inner_text("body")
    page.shot("requester-refused")
    payout.refresh_from_db()
    assert payout.status == Payout.Status.AWAITING_APPROVAL

    page.context.clear_cookies()
    admin_login(finance)
    page.goto(f"/admin/payouts/payout/{payout.pk}/change/")
    page.click("a:has-text('Approve')")
    page.submit("form[data-workflow] button[type=submit]")
    page.shot("second-person-approved")
    payout.refresh_from_db()
    assert payout.status == Payout.Status.APPROVED
    assert (payout.requested_by_id, payout.approved_by_id) == (lead.pk, finance.pk)
