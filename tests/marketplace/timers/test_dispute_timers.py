"""The dispute timers: the response deadline, SLA escalation to the lead queue, reminders; and the
redelivery rule of issue 3 for `dispute_timers_run`."""

from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from marketplace.accounts.services import StaffGroup
from marketplace.audit.models import Event
from marketplace.core.exceptions import InvalidInput
from marketplace.disputes import services as disputes
from marketplace.disputes import tasks
from marketplace.disputes.models import Dispute, DisputeUserObjectPermission
from marketplace.disputes.selectors import dispute_for_user
from marketplace.notifications.models import EmailOutbox, Notification
from tests.factories.settlement import dispute_in, staff
from tests.processes import run_in_processes

S = Dispute.Status
ZERO_COUNTS = {"reviewing": 0, "escalated": 0, "reminded": 0, "skipped": 0, "failed": 0}


def _ago(**delta):
    return timezone.now() - timedelta(**delta)


def _ahead(**delta):
    return timezone.now() + timedelta(**delta)


def _move(dispute: Dispute, **fields) -> Dispute:
    Dispute.objects.filter(pk=dispute.pk).update(**fields)
    dispute.refresh_from_db()
    return dispute


def _events(dispute: Dispute, verb: str) -> list[Event]:
    return list(Event.objects.filter(verb=verb, target_id=str(dispute.pk)).order_by("pk"))


def _notified(verb: str, dispute: Dispute | None = None) -> list[int]:
    qs = Notification.objects.filter(verb=verb)
    if dispute is not None:
        qs = qs.filter(target_type="disputes.dispute", target_id=str(dispute.pk))
    return sorted(qs.values_list("user_id", flat=True))


def _emails(verb: str) -> list[str]:
    return sorted(EmailOutbox.objects.filter(template=f"notifications/email/{verb}").values_list("to", flat=True))


def _assigned(dispute: Dispute, lead, **kwargs):
    agent = staff(StaffGroup.OPERATIONS_AGENT, **kwargs)
    disputes.dispute_assign(dispute=dispute, actor=lead, assignee=agent)
    dispute.refresh_from_db()
    return dispute, agent


def _handle_grants(dispute: Dispute) -> list[int]:
    return sorted(
        DisputeUserObjectPermission.objects.filter(
            content_object=dispute, permission__codename="handle_dispute"
        ).values_list("user_id", flat=True)
    )


# --- The response deadline ----------------------------------------------------------------------


@pytest.mark.django_db
def test_dispute_timers_take_a_dispute_into_review_when_the_response_deadline_passes():
    # given a dispute awaiting the provider's response past its deadline, whose SLA from opening
    # has run out too; and one still within its response time
    overdue = _move(dispute_in(S.AWAITING_RESPONSE), response_due_at=_ago(minutes=1), sla_due_at=_ago(minutes=1))
    waiting = dispute_in(S.AWAITING_RESPONSE)

    # when the timers run
    counts = tasks.dispute_timers_run()

    # then the overdue one is under review with a fresh SLA, and not escalated: the SLA waited
    # for the counterparty
    assert counts == {**ZERO_COUNTS, "reviewing": 1}
    overdue.refresh_from_db()
    assert overdue.status == S.UNDER_REVIEW
    sla = timedelta(hours=settings.MARKETPLACE_DISPUTE_SLA_HOURS)
    assert _ahead() + sla - timedelta(minutes=1) < overdue.sla_due_at <= _ahead() + sla
    [event] = _events(overdue, "dispute.start_review")
    assert (event.actor_id, event.from_state, event.to_state) == (None, S.AWAITING_RESPONSE, S.UNDER_REVIEW)
    assert event.reason == "The response deadline passed."
    assert _events(overdue, "dispute.escalate") == []
    booking = overdue.booking
    assert _notified("dispute.review_started") == sorted([booking.client_id, booking.provider_id])
    assert _emails("dispute.review_started") == sorted([booking.client.email, booking.provider.email])
    waiting.refresh_from_db()
    assert waiting.status == S.AWAITING_RESPONSE


@pytest.mark.django_db
def test_dispute_start_review_by_the_timer_refuses_a_dispute_not_yet_due():
    # given a dispute awaiting a response due in 3 days, and one just opened
    waiting = dispute_in(S.AWAITING_RESPONSE)
    opened = dispute_in(S.OPENED)
    events = Event.objects.count()

    # when the timer's service is called on them anyway, then it refuses and writes nothing
    with pytest.raises(InvalidInput, match=f"Dispute #{waiting.pk} is not past its response deadline yet."):
        disputes.dispute_start_review(dispute=waiting, actor=None)
    with pytest.raises(InvalidInput):
        disputes.dispute_start_review(dispute=opened, actor=None)
    assert Event.objects.count() == events
    assert Dispute.objects.get(pk=waiting.pk).status == S.AWAITING_RESPONSE


# --- SLA escalation -----------------------------------------------------------------------------


@pytest.mark.django_db
def test_dispute_opened_has_an_sla_deadline():
    dispute = dispute_in(S.OPENED)
    sla = timedelta(hours=settings.MARKETPLACE_DISPUTE_SLA_HOURS)
    assert _ahead() + sla - timedelta(minutes=1) < dispute.sla_due_at <= _ahead() + sla


@pytest.mark.django_db
def test_dispute_timers_escalate_sla_breaches_to_the_lead_queue():
    # given two active Operations leads (one assigns) and an inactive one
    lead = staff(StaffGroup.OPERATIONS_LEAD)
    other_lead = staff(StaffGroup.OPERATIONS_LEAD)
    staff(StaffGroup.OPERATIONS_LEAD, is_active=False)
    # and an opened dispute assigned to an agent, and an unassigned one under review, both past their SLA
    assigned, agent = _assigned(dispute_in(S.OPENED), lead)
    assigned = _move(assigned, sla_due_at=_ago(minutes=1))
    reviewing = _move(dispute_in(S.UNDER_REVIEW), sla_due_at=_ago(hours=2))
    assert dispute_for_user(agent).filter(pk=assigned.pk).exists()
    # and ones that stay: under review within its SLA; awaiting a response (the SLA waits on it)
    in_time = dispute_in(S.UNDER_REVIEW)
    awaiting = _move(dispute_in(S.AWAITING_RESPONSE), sla_due_at=_ago(minutes=1))

    # when the timers run
    counts = tasks.dispute_timers_run()

    # then both breaches are escalated by the system
    assert counts == {**ZERO_COUNTS, "escalated": 2}
    for dispute, from_state in ((assigned, S.OPENED), (reviewing, S.UNDER_REVIEW)):
        dispute.refresh_from_db()
        assert dispute.status == S.ESCALATED and dispute.escalated_at is not None
        assert dispute.assignee_id is None
        [event] = _events(dispute, "dispute.escalate")
        assert (event.actor_id, event.from_state, event.to_state, event.reason) == (
            None,
            from_state,
            S.ESCALATED,
            "SLA breached",
        )
    # the assigned one left its agent, in the audit trail, and the agent's object grant went with it
    [escalation] = _events(assigned, "dispute.escalate")
    assert escalation.data == {"previous_assignee": agent.pk}
    unassigned = _events(assigned, "dispute.assigned")[-1]
    assert (unassigned.actor_id, unassigned.data) == (None, {"assignee": None, "previous": agent.pk})
    [revoked] = _events(assigned, "scope.revoked")
    assert revoked.data == {"grantee": str(agent), "permission": "disputes.handle_dispute"}
    assert _handle_grants(assigned) == []
    assert not dispute_for_user(type(agent).objects.get(pk=agent.pk)).filter(pk=assigned.pk).exists()
    # the parties, the previous assignee and the active leads were told, once each, in-app and by email
    leads = [lead, other_lead]
    b1, b2 = assigned.booking, reviewing.booking
    assert _notified("dispute.escalated", assigned) == sorted(
        [b1.client_id, b1.provider_id, agent.pk, *(x.pk for x in leads)]
    )
    assert _notified("dispute.escalated", reviewing) == sorted([b2.client_id, b2.provider_id, *(x.pk for x in leads)])
    assert _emails("dispute.escalated") == sorted(
        [b1.client.email, b1.provider.email, agent.email, b2.client.email, b2.provider.email]
        + [x.email for x in leads] * 2
    )
    # and the others did not move
    for dispute in (in_time, awaiting):
        status = dispute.status
        dispute.refresh_from_db()
        assert dispute.status == status
        assert _events(dispute, "dispute.escalate") == []


@pytest.mark.django_db
def test_dispute_escalate_by_the_timer_refuses_a_dispute_within_its_sla():
    # given a dispute under review within its SLA
    dispute = dispute_in(S.UNDER_REVIEW)
    rows = (Event.objects.count(), Notification.objects.count())

    # when the timer's service is called on it anyway, then it refuses and writes nothing
    with pytest.raises(InvalidInput, match=f"Dispute #{dispute.pk} is within its SLA until"):
        disputes.dispute_escalate(dispute=dispute, actor=None)
    assert (Event.objects.count(), Notification.objects.count()) == rows
    assert Dispute.objects.get(pk=dispute.pk).status == S.UNDER_REVIEW


@pytest.mark.django_db
def test_dispute_escalate_by_a_handler_keeps_the_assignee():
    # given an assigned dispute, escalated by a lead before its SLA ran out
    lead = staff(StaffGroup.OPERATIONS_LEAD)
    dispute, agent = _assigned(dispute_in(S.OPENED), lead)

    # when the lead escalates it
    disputes.dispute_escalate(dispute=dispute, actor=lead, reason="Large amount")

    # then it is escalated and stays with its agent
    dispute.refresh_from_db()
    assert (dispute.status, dispute.assignee_id) == (S.ESCALATED, agent.pk)
    assert _handle_grants(dispute) == [agent.pk]


# --- Reminders ----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_dispute_timers_remind_the_counterparty_and_the_assignee_before_their_deadlines():
    lead = staff(StaffGroup.OPERATIONS_LEAD)
    # given a dispute (opened by the client) whose provider must respond within 3 hours
    respond = _move(dispute_in(S.AWAITING_RESPONSE), response_due_at=_ahead(hours=3))
    # and an assigned dispute under review 2 hours from its SLA, and one 10 hours from it
    due_soon, agent = _assigned(dispute_in(S.UNDER_REVIEW), lead)
    due_soon = _move(due_soon, sla_due_at=_ahead(hours=2))
    due_later, other_agent = _assigned(dispute_in(S.UNDER_REVIEW), lead)
    _move(due_later, sla_due_at=_ahead(hours=10))

    # when the timers run
    counts = tasks.dispute_timers_run()

    # then the provider and the first agent are reminded, once, keyed by their deadlines
    assert counts == {**ZERO_COUNTS, "reminded": 2}
    [response] = Notification.objects.filter(verb="dispute.response_reminder")
    assert (response.user_id, response.target_id) == (respond.booking.provider_id, str(respond.pk))
    assert response.dedupe_key == f"reminder:dispute-response:{respond.pk}:{respond.response_due_at.isoformat()}"
    [sla] = Notification.objects.filter(verb="dispute.sla_reminder")
    assert (sla.user_id, sla.target_id) == (agent.pk, str(due_soon.pk))
    assert sla.dedupe_key == f"reminder:dispute-sla:{due_soon.pk}:{agent.pk}:{due_soon.sla_due_at.isoformat()}"
    assert _emails("dispute.response_reminder") == [respond.booking.provider.email]
    assert _emails("dispute.sla_reminder") == [agent.email]
    assert not Notification.objects.filter(user=other_agent, verb="dispute.sla_reminder").exists()


# --- Redelivery: twice in a row, twice at once ---------------------------------------------------


def _all_due_disputes() -> dict:
    """One dispute for each thing the dispute timers do, and two active leads."""
    leads = [staff(StaffGroup.OPERATIONS_LEAD), staff(StaffGroup.OPERATIONS_LEAD)]
    breached, agent = _assigned(dispute_in(S.UNDER_REVIEW), leads[0])
    to_remind_agent, sla_agent = _assigned(dispute_in(S.UNDER_REVIEW), leads[0])
    return {
        "leads": leads,
        "agent": agent,
        "sla_agent": sla_agent,
        "overdue": _move(dispute_in(S.AWAITING_RESPONSE), response_due_at=_ago(minutes=1)),
        "breached": _move(breached, sla_due_at=_ago(minutes=1)),
        "to_respond": _move(dispute_in(S.AWAITING_RESPONSE), response_due_at=_ahead(hours=3)),
        "to_handle": _move(to_remind_agent, sla_due_at=_ahead(hours=1)),
    }


def _assert_done_once(due: dict) -> None:
    status = {name: Dispute.objects.get(pk=due[name].pk).status for name in ("overdue", "breached", "to_respond")}
    assert status == {"overdue": S.UNDER_REVIEW, "breached": S.ESCALATED, "to_respond": S.AWAITING_RESPONSE}
    assert len(_events(due["overdue"], "dispute.start_review")) == 1
    assert len(_events(due["breached"], "dispute.escalate")) == 1
    assert len(_events(due["breached"], "scope.revoked")) == 1
    assert Event.objects.filter(verb="dispute.escalate").count() == 1
    overdue, breached = due["overdue"].booking, due["breached"].booking
    assert _notified("dispute.review_started") == sorted([overdue.client_id, overdue.provider_id])
    assert len(_emails("dispute.review_started")) == 2
    assert _notified("dispute.escalated") == sorted(
        [breached.client_id, breached.provider_id, due["agent"].pk, *(x.pk for x in due["leads"])]
    )
    assert len(_emails("dispute.escalated")) == 5
    assert _notified("dispute.response_reminder") == [due["to_respond"].booking.provider_id]
    assert _notified("dispute.sla_reminder") == [due["sla_agent"].pk]
    assert len(_emails("dispute.response_reminder")) == 1
    assert len(_emails("dispute.sla_reminder")) == 1


def _rows() -> tuple[int, int, int]:
    return Event.objects.count(), Notification.objects.count(), EmailOutbox.objects.count()


@pytest.mark.django_db
def test_dispute_timers_run_twice_in_a_row_does_everything_once():
    # given one dispute due for each timer
    due = _all_due_disputes()

    # when the task runs, and is delivered again
    first = tasks.dispute_timers_run()
    rows = _rows()
    second = tasks.dispute_timers_run()

    # then the second run does nothing at all
    assert first == {**ZERO_COUNTS, "reviewing": 1, "escalated": 1, "reminded": 2}
    assert second == ZERO_COUNTS
    assert _rows() == rows
    _assert_done_once(due)


@pytest.mark.django_db(transaction=True)
def test_dispute_timers_run_twice_at_once_in_two_processes_does_everything_once():
    # given one dispute due for each timer
    due = _all_due_disputes()

    # when two workers run the task at the same moment
    outcomes = run_in_processes(tasks.dispute_timers_run, tasks.dispute_timers_run)

    # then neither failed, and between them each effect happened once: one review, one
    # escalation (one revoke), one notification per recipient, one email each
    assert outcomes.all_ok()
    totals = {key: sum(o.value[key] for o in outcomes) for key in ZERO_COUNTS}
    assert {**totals, "skipped": 0} == {**ZERO_COUNTS, "reviewing": 1, "escalated": 1, "reminded": 2}
    _assert_done_once(due)
    assert tasks.dispute_timers_run() == ZERO_COUNTS
