"""Dispute workflows from the admin: assign, request a response, review, escalate, resolve (with
the second person's approval above the threshold), withdraw."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from marketplace.accounts.services import StaffGroup
from marketplace.audit.models import Event
from marketplace.bookings.models import Booking
from marketplace.disputes.admin import dispute_handlers
from marketplace.disputes.models import Dispute
from marketplace.disputes.selectors import dispute_for_user
from marketplace.ledger.models import LedgerEntry, LedgerTransaction
from marketplace.payments.models import Payment, Refund
from tests.factories import PartnerFactory, StaffFactory
from tests.factories.settlement import dispute_in, staff

pytestmark = pytest.mark.django_db
S = Dispute.Status


def _agent(partner):
    """An Operations agent granted `partner`: handles and resolves its disputes."""
    return staff(StaffGroup.OPERATIONS_AGENT, scope=partner)


def _messages(response) -> list[str]:
    return [str(m) for m in response.context["messages"]] if response.context else []


def _url(step: str, dispute: Dispute) -> str:
    return reverse(f"admin:disputes_dispute_{step}", args=[dispute.pk])


def _events(verb: str, dispute: Dispute) -> int:
    return Event.objects.filter(verb=verb, target_id=str(dispute.pk)).count()


def test_a_lead_assigns_an_agent_who_then_has_the_dispute_in_scope(client):
    dispute = dispute_in(S.OPENED)
    lead = staff(StaffGroup.OPERATIONS_LEAD)
    agent = staff(StaffGroup.OPERATIONS_AGENT)  # no partner scope of their own
    assert not dispute_for_user(agent).filter(pk=dispute.pk).exists()
    client.force_login(lead)

    page = client.get(_url("assign", dispute))
    assert page.status_code == 200
    assert agent.email in page.content.decode()

    done = client.post(_url("assign", dispute), {"assignee": agent.pk}, follow=True)

    dispute.refresh_from_db()
    assert dispute.assignee_id == agent.pk
    assert dispute_for_user(agent).filter(pk=dispute.pk).exists()
    assert f"Dispute #{dispute.pk} is assigned to {agent.email}." in _messages(done)
    event = Event.objects.get(verb="dispute.assigned", target_id=str(dispute.pk))
    assert event.actor_id == lead.pk and event.data["assignee"] == agent.pk


def test_the_assignee_choices_are_active_staff_who_handle_disputes(client):
    agent = staff(StaffGroup.OPERATIONS_AGENT)
    finance = staff(StaffGroup.FINANCE)  # sees disputes but does not handle them
    inactive = staff(StaffGroup.OPERATIONS_AGENT, is_active=False)
    not_staff = staff(StaffGroup.OPERATIONS_AGENT, is_staff=False)
    bare_staff = StaffFactory()

    handlers = set(dispute_handlers())

    assert agent in handlers
    assert not handlers & {finance, inactive, not_staff, bare_staff}

    dispute = dispute_in(S.OPENED)
    client.force_login(staff(StaffGroup.OPERATIONS_LEAD))
    refused = client.post(_url("assign", dispute), {"assignee": finance.pk})
    assert refused.status_code == 200  # the form again: not a valid choice
    dispute.refresh_from_db()
    assert dispute.assignee_id is None


def test_request_response_defaults_the_deadline_and_records_the_chosen_one(client, settings):
    dispute = dispute_in(S.OPENED)
    client.force_login(_agent(dispute.partner))

    page = client.get(_url("request_response", dispute))
    default = timezone.now() + timedelta(hours=settings.MARKETPLACE_DISPUTE_RESPONSE_HOURS)
    assert default.strftime("%Y-%m-%d") in page.content.decode()

    due = (timezone.now() + timedelta(days=2)).replace(second=0, microsecond=0)
    form = {"due_at_0": due.strftime("%Y-%m-%d"), "due_at_1": due.strftime("%H:%M")}
    done = client.post(_url("request_response", dispute), form, follow=True)
    again = client.post(_url("request_response", dispute), form, follow=True)

    dispute.refresh_from_db()
    assert dispute.status == S.AWAITING_RESPONSE
    assert dispute.response_due_at == due
    assert f"Dispute #{dispute.pk}: the other party is asked to respond by {due:%Y-%m-%d %H:%M} UTC." in _messages(done)
    assert f"Dispute #{dispute.pk} is already awaiting response; nothing to do." in _messages(again)
    assert _events("dispute.request_response", dispute) == 1


def test_a_deadline_in_the_past_shows_the_service_message(client):
    dispute = dispute_in(S.OPENED)
    client.force_login(_agent(dispute.partner))
    past = timezone.now() - timedelta(hours=1)

    response = client.post(
        _url("request_response", dispute),
        {"due_at_0": past.strftime("%Y-%m-%d"), "due_at_1": past.strftime("%H:%M")},
        follow=True,
    )

    dispute.refresh_from_db()
    assert dispute.status == S.OPENED
    assert "The response deadline must be in the future." in _messages(response)


def test_start_review_twice_is_one_transition_and_an_already_message(client):
    dispute = dispute_in(S.OPENED)
    client.force_login(_agent(dispute.partner))

    done = client.post(_url("start_review", dispute), follow=True)
    again = client.post(_url("start_review", dispute), follow=True)

    dispute.refresh_from_db()
    assert dispute.status == S.UNDER_REVIEW
    assert f"Dispute #{dispute.pk} is under review; the SLA clock has started." in _messages(done)
    assert f"Dispute #{dispute.pk} is already under review; nothing to do." in _messages(again)
    assert _events("dispute.start_review", dispute) == 1


def test_escalate_records_the_reason(client):
    dispute = dispute_in(S.UNDER_REVIEW)
    agent = _agent(dispute.partner)
    client.force_login(agent)

    done = client.post(_url("escalate", dispute), {"reason": "Threatens legal action."}, follow=True)

    dispute.refresh_from_db()
    assert dispute.status == S.ESCALATED
    assert dispute.escalated_at is not None
    assert f"Dispute #{dispute.pk} is escalated." in _messages(done)
    event = Event.objects.get(verb="dispute.escalate", target_id=str(dispute.pk))
    assert event.actor_id == agent.pk and event.reason == "Threatens legal action."


def test_resolve_with_a_partial_refund_below_the_threshold_refunds_to_the_cent(client):
    dispute = dispute_in(S.UNDER_REVIEW)
    client.force_login(_agent(dispute.partner))
    form = {"outcome": "partial_refund", "reason_code": "partly_done", "reason": "Half done.", "refund_amount": "33.33"}

    page = client.get(_url("resolve", dispute))
    assert "100.00 EUR is left on the payment" in page.content.decode()
    done = client.post(_url("resolve", dispute), form, follow=True)
    again = client.post(_url("resolve", dispute), form, follow=True)

    dispute.refresh_from_db()
    payment = Payment.objects.get(booking=dispute.booking)
    assert dispute.status == S.RESOLVED_PARTIAL_REFUND
    assert dispute.refund_amount == Decimal("33.33")
    assert dispute.resolution_code == "partly_done" and dispute.resolution_note == "Half done."
    assert payment.refunded_amount == Decimal("33.33")
    assert Refund.objects.get(payment=payment).amount == Decimal("33.33")
    txn = LedgerTransaction.objects.get(kind="refund", booking=dispute.booking)
    assert LedgerEntry.objects.get(transaction=txn, account="cash").amount == Decimal("-33.33")
    assert Booking.objects.get(pk=dispute.booking_id).status == Booking.Status.RESOLVED
    assert f"Dispute #{dispute.pk} is resolved: resolved: partial refund." in _messages(done)
    assert f"Dispute #{dispute.pk} is already resolved partial refund; nothing to do." in _messages(again)
    assert _events("dispute.resolve_partial_refund", dispute) == 1


def test_resolve_with_release_refunds_nothing(client):
    dispute = dispute_in(S.OPENED)
    client.force_login(_agent(dispute.partner))

    done = client.post(_url("resolve", dispute), {"outcome": "release", "reason_code": "work_delivered"}, follow=True)

    dispute.refresh_from_db()
    assert dispute.status == S.RESOLVED_RELEASE
    assert dispute.refund_amount == Decimal("0.00")
    assert Payment.objects.get(booking=dispute.booking).refunded_amount == Decimal("0.00")
    assert not LedgerTransaction.objects.filter(kind="refund", booking=dispute.booking).exists()
    assert f"Dispute #{dispute.pk} is resolved: resolved: released to provider." in _messages(done)


def test_a_partial_refund_above_the_threshold_is_a_proposal_a_second_person_approves(client, settings):
    settings.MARKETPLACE_REFUND_SECOND_APPROVAL_ABOVE = {
        "EUR": Decimal("25.00"),
        "USD": Decimal("25.00"),
        "GBP": Decimal("25.00"),
    }
    dispute = dispute_in(S.UNDER_REVIEW)
    proposer = staff(StaffGroup.OPERATIONS_LEAD)  # resolves and approves refunds
    form = {"outcome": "partial_refund", "reason_code": "partly_done", "reason": "", "refund_amount": "60.50"}

    # when the lead resolves above the threshold: a proposal, no money moves
    client.force_login(proposer)
    proposed = client.post(_url("resolve", dispute), form, follow=True)

    dispute.refresh_from_db()
    payment = Payment.objects.get(booking=dispute.booking)
    assert dispute.status == S.UNDER_REVIEW
    assert dispute.proposed_outcome == "partial_refund" and dispute.proposed_refund == Decimal("60.50")
    assert payment.refunded_amount == Decimal("0.00")
    assert f"Dispute #{dispute.pk}: a refund of 60.50 EUR is proposed; a second person must approve it." in _messages(
        proposed
    )
    assert _events("dispute.resolution_proposed", dispute) == 1

    # the same person cannot approve it
    own = client.post(_url("approve_resolution", dispute), follow=True)
    dispute.refresh_from_db()
    assert dispute.status == S.UNDER_REVIEW
    assert f"You proposed the resolution of dispute #{dispute.pk}; a second person must approve it." in _messages(own)

    # a second person (Finance) sees the proposal and approves it, once
    client.force_login(staff(StaffGroup.FINANCE))
    page = client.get(_url("approve_resolution", dispute))
    assert f"Approve a refund of 60.50 EUR proposed by {proposer.email}" in page.content.decode()
    approved = client.post(_url("approve_resolution", dispute), follow=True)
    again = client.post(_url("approve_resolution", dispute), follow=True)

    dispute.refresh_from_db()
    payment.refresh_from_db()
    assert dispute.status == S.RESOLVED_PARTIAL_REFUND
    assert dispute.refund_amount == Decimal("60.50")
    assert dispute.approved_by is not None and dispute.approved_by != proposer
    assert payment.refunded_amount == Decimal("60.50")
    txn = LedgerTransaction.objects.get(kind="refund", booking=dispute.booking)
    assert LedgerEntry.objects.get(transaction=txn, account="cash").amount == Decimal("-60.50")
    assert f"Dispute #{dispute.pk}: the refund is approved and the dispute resolved." in _messages(approved)
    assert f"Dispute #{dispute.pk} is already resolved partial refund; nothing to do." in _messages(again)
    assert _events("dispute.resolve_partial_refund", dispute) == 1


def test_withdraw_completes_the_booking_again(client):
    dispute = dispute_in(S.UNDER_REVIEW)
    agent = _agent(dispute.partner)
    client.force_login(agent)

    done = client.post(_url("withdraw", dispute), {"reason": "Client withdrew by phone."}, follow=True)
    again = client.post(_url("withdraw", dispute), {"reason": "Client withdrew by phone."}, follow=True)

    dispute.refresh_from_db()
    assert dispute.status == S.WITHDRAWN
    assert dispute.resolved_by_id == agent.pk
    assert Booking.objects.get(pk=dispute.booking_id).status == Booking.Status.COMPLETED
    assert Payment.objects.get(booking=dispute.booking).refunded_amount == Decimal("0.00")
    assert any(m.startswith(f"Dispute #{dispute.pk} is withdrawn") for m in _messages(done))
    assert f"Dispute #{dispute.pk} is already withdrawn; nothing to do." in _messages(again)
    assert _events("dispute.withdraw", dispute) == 1


@pytest.mark.parametrize(
    "step", ["assign", "request_response", "start_review", "escalate", "resolve", "approve_resolution", "withdraw"]
)
def test_a_dispute_of_another_partner_is_404(client, step):
    dispute = dispute_in(S.OPENED)
    outsider = staff(StaffGroup.OPERATIONS_AGENT, scope=PartnerFactory())
    # every permission, so only the scope stands in the way
    outsider.user_permissions.add(*Permission.objects.filter(codename__in=["assign_dispute", "approve_refund"]))
    client.force_login(type(outsider).objects.get(pk=outsider.pk))

    assert client.get(_url(step, dispute)).status_code == 404
    assert client.post(_url(step, dispute), {"reason": "x", "outcome": "release"}).status_code == 404
    dispute.refresh_from_db()
    assert dispute.status == S.OPENED and dispute.assignee_id is None


def test_the_buttons_show_by_permission(client):
    dispute = dispute_in(S.OPENED)
    change_url = reverse("admin:disputes_dispute_change", args=[dispute.pk])
    steps = ["assign", "request_response", "start_review", "escalate", "resolve", "approve_resolution", "withdraw"]

    # Support sees the dispute and handles it, but neither assigns, resolves nor approves
    client.force_login(staff(StaffGroup.SUPPORT, scope=dispute.partner))
    page = client.get(change_url).content.decode()
    shown = {step for step in steps if _url(step, dispute) in page}
    assert shown == {"request_response", "start_review", "escalate"}
    assert client.post(_url("resolve", dispute), {"outcome": "release", "reason_code": "x"}).status_code == 403
    dispute.refresh_from_db()
    assert dispute.status == S.OPENED

    # a lead holds every permission: every step an opened dispute allows (no refund is proposed yet)
    client.force_login(staff(StaffGroup.OPERATIONS_LEAD))
    page = client.get(change_url).content.decode()
    assert {step for step in steps if _url(step, dispute) in page} == set(steps) - {"approve_resolution"}


def test_the_changelist_shows_state_money_and_assignee_in_a_fixed_number_of_queries(client):
    dispute = dispute_in(S.OPENED)
    lead = staff(StaffGroup.OPERATIONS_LEAD)
    client.force_login(lead)
    url = reverse("admin:disputes_dispute_changelist")

    with CaptureQueriesContext(connection) as one:
        page = client.get(url)
    assert page.status_code == 200
    assert "100.00 EUR" in page.content.decode()
    more = [dispute_in(S.RESOLVED_PARTIAL_REFUND), dispute_in(S.ESCALATED), dispute_in(S.OPENED)]
    agent = staff(StaffGroup.OPERATIONS_AGENT)
    Dispute.objects.filter(pk=more[2].pk).update(assignee=agent)
    with CaptureQueriesContext(connection) as four:
        page = client.get(url)

    content = page.content.decode()
    assert "30.00 EUR" in content  # the partial refund
    assert agent.email in content
    assert len(four) == len(one), "\n".join(q["sql"] for q in four.captured_queries)

    # filtered by assignee and by status
    mine = client.get(url, {"assignee__id__exact": agent.pk}).content.decode()
    assert reverse("admin:disputes_dispute_change", args=[more[2].pk]) in mine
    assert reverse("admin:disputes_dispute_change", args=[dispute.pk]) not in mine
    escalated = client.get(url, {"status__exact": S.ESCALATED}).content.decode()
    assert reverse("admin:disputes_dispute_change", args=[more[1].pk]) in escalated
    assert reverse("admin:disputes_dispute_change", args=[more[0].pk]) not in escalated
