"""The payout pages of the admin: what the background work did (runs, attempts, failures), and the
payout workflows (one confirmation page and one service call per step, bulk approve, filters)."""

from decimal import Decimal

import pytest
from django.forms.models import model_to_dict
from django.urls import reverse
from django.utils import timezone

from marketplace.accounts.services import StaffGroup
from marketplace.audit.models import Event
from marketplace.partners.services import partner_scope_grant
from marketplace.payouts import services as payouts
from marketplace.payouts.models import Payout, PayoutRun
from marketplace.payouts.runs import payout_run_execute
from tests.factories import PartnerFactory
from tests.factories.flows import settled_booking
from tests.factories.settlement import payout_in, staff, staff_with

pytestmark = pytest.mark.django_db


def test_finance_reads_the_payout_runs_with_their_report(client):
    settled_booking()
    run = payout_run_execute()
    client.force_login(staff(StaffGroup.FINANCE))

    listing = client.get(reverse("admin:payouts_payoutrun_changelist"))
    page = client.get(reverse("admin:payouts_payoutrun_change", args=[run.pk]))

    assert listing.status_code == 200 and page.status_code == 200
    assert f">{run.pk}<" in listing.content.decode()
    assert "Finished" in listing.content.decode()
    assert "&quot;held&quot;: []" in page.content.decode()  # the report, JSON escaped into the page


def test_a_scoped_agent_does_not_see_payout_runs(client):
    run = PayoutRun.objects.create(cutoff="2026-01-01T00:00:00Z")
    client.force_login(staff(StaffGroup.OPERATIONS_AGENT))

    assert client.get(reverse("admin:payouts_payoutrun_changelist")).status_code == 403
    assert client.get(reverse("admin:payouts_payoutrun_change", args=[run.pk])).status_code == 403


def test_a_failed_payout_shows_its_reason_next_retry_and_attempts(client):
    payout = payout_in(Payout.Status.FAILED)
    client.force_login(staff(StaffGroup.FINANCE))

    listing = client.get(reverse("admin:payouts_payout_changelist")).content.decode()
    page = client.get(reverse("admin:payouts_payout_change", args=[payout.pk])).content.decode()

    assert "sandbox: injected payout failure" in listing
    assert "Failed" in listing
    assert f"payout-{payout.pk}-attempt-1" in page  # the attempt inline, with its idempotency key
    assert "sandbox: injected payout failure" in page


# --- workflows: one confirmation page and one service call per step ---------------------------

S = Payout.Status


def fee_of(amount: str, rate: str = "0.15") -> dict:
    amount, rate = Decimal(amount), Decimal(rate)
    return {"amount": amount, "commission_rate": rate, "platform_fee": (amount * rate).quantize(Decimal("0.01"))}


def _messages(response) -> list[str]:
    return [str(m) for m in response.context["messages"]] if response.context else []


def _url(step: str, payout: Payout) -> str:
    return reverse(f"admin:payouts_payout_{step}", args=[payout.pk])


def _row(payout: Payout) -> dict:
    fresh = Payout.objects.get(pk=payout.pk)
    return {**model_to_dict(fresh), "updated_at": fresh.updated_at}


def _events(verb: str, payout: Payout):
    return Event.objects.filter(verb=verb, target_id=str(payout.pk))


# step, from state, form data, to state, audit verb, success message, what a second click is told
STEPS = [
    ("hold", S.READY, {"reason": "Bank details look wrong"}, S.ON_HOLD, "payout.hold", "{p} is on hold.", None),
    ("release_hold", S.ON_HOLD, {"reason": ""}, S.READY, "payout.release", "{p}: hold released.", "ready"),
    (
        "request_approval",
        S.READY,
        {"reason": "Large payout, please check"},
        S.AWAITING_APPROVAL,
        "payout.request_approval",
        "{p} is awaiting a second person's approval.",
        "awaiting approval",
    ),
    ("approve", S.AWAITING_APPROVAL, {}, S.APPROVED, "payout.approve", "{p} is approved.", "approved"),
    (
        "reject",
        S.AWAITING_APPROVAL,
        {"reason": "Wrong account"},
        S.READY,
        "payout.reject",
        "{p} is rejected: back to ready, its approval must be requested again.",
        "ready",
    ),
    (
        "retry",
        S.FAILED,
        {},
        S.READY,
        "payout.retry",
        "{p} is ready again; its next submission is a new attempt.",
        "ready",
    ),
    (
        "cancel",
        S.READY,
        {"reason": "Partner closed"},
        S.CANCELLED,
        "payout.cancel",
        "{p} is cancelled; its bookings can be paid by a later payout.",
        "cancelled",
    ),
]


@pytest.mark.parametrize(
    ("step", "start", "data", "end", "verb", "success", "already"), STEPS, ids=[s[0] for s in STEPS]
)
def test_payout_step_confirms_then_calls_the_service_once(client, step, start, data, end, verb, success, already):
    # given a payout in the step's starting state and a Finance user (who may hold, change, approve)
    payout = payout_in(start)
    finance = staff(StaffGroup.FINANCE)
    client.force_login(finance)

    # when they open the step's page, nothing changes
    page = client.get(_url(step, payout))
    assert page.status_code == 200
    assert str(payout) in page.content.decode()
    assert Payout.objects.get(pk=payout.pk).status == start

    # when they confirm it, the payout moves, with one audit event by them and the step's message
    done = client.post(_url(step, payout), data, follow=True)
    assert Payout.objects.get(pk=payout.pk).status == end
    event = _events(verb, payout).get()
    # (a released payout accrues, then matures at once when its hold period is over: two events)
    moved_to = S.ACCRUING if step == "release_hold" else end
    assert (event.actor_id, event.from_state, event.to_state) == (finance.pk, start, moved_to)
    assert event.reason == data.get("reason", "")
    assert success.format(p=payout) in _messages(done)

    # when they click again (a double click), nothing more is written and they are told why
    again = client.post(_url(step, payout), data, follow=True)
    assert _events(verb, payout).count() == 1
    assert Payout.objects.get(pk=payout.pk).status == end
    if already:
        assert f"{payout} is already {already}; nothing to do." in _messages(again)
    else:  # a held payout collects the same hold once and stays on hold
        assert success.format(p=payout) in _messages(again)


@pytest.mark.parametrize("step", ["hold", "reject", "cancel"])
def test_payout_step_without_its_reason_asks_for_one_and_changes_nothing(client, step):
    payout = payout_in(S.AWAITING_APPROVAL)
    client.force_login(staff(StaffGroup.FINANCE))
    before = _row(payout)

    response = client.post(_url(step, payout), {"reason": "  "})

    assert response.status_code == 200  # the confirmation page again, with the form's error
    assert list(response.context["form"].errors) == ["reason"]
    assert _row(payout) == before


def test_payout_step_refused_by_the_service_shows_its_message_and_changes_nothing(client):
    payout = payout_in(S.PAID)
    client.force_login(staff(StaffGroup.FINANCE))
    before = _row(payout)

    response = client.post(_url("cancel", payout), {"reason": "Too late"}, follow=True)

    assert f"Payout #{payout.pk} is 'paid': cannot cancel." in _messages(response)
    assert _row(payout) == before


# --- four-eyes through the admin ---------------------------------------------------------------


def test_payout_approve_by_its_requester_is_refused_then_a_second_finance_user_approves(client):
    # given a ready payout, and a Finance user who requests its approval through the admin
    payout = payout_in(S.READY)
    requester, second = staff(StaffGroup.FINANCE), staff(StaffGroup.FINANCE)
    client.force_login(requester)
    client.post(_url("request_approval", payout), {"reason": "Please check"})
    assert Payout.objects.get(pk=payout.pk).requested_by_id == requester.pk
    before = _row(payout)

    # when the requester approves it, then it is refused with the service's message, nothing written
    refused = client.post(_url("approve", payout), follow=True)
    assert f"You requested payout #{payout.pk}; a second person must approve it." in _messages(refused)
    assert _row(payout) == before
    assert not _events("payout.approve", payout).exists()

    # when a second Finance user approves it, then it is approved by them
    client.force_login(second)
    done = client.post(_url("approve", payout), follow=True)
    payout.refresh_from_db()
    assert (payout.status, payout.approved_by_id) == (S.APPROVED, second.pk)
    assert f"{payout} is approved." in _messages(done)


def test_payout_approve_above_the_finance_threshold_by_a_non_finance_approver_is_refused(client):
    # given a payout of 17,000.00 (above MARKETPLACE_PAYOUT_FINANCE_ABOVE = 10,000.00) awaiting approval
    payout = payout_in(S.AWAITING_APPROVAL, **fee_of("20000.00"))
    assert payout.amount == Decimal("17000.00")
    approver = staff_with("approve_payout", "view_payout")
    partner_scope_grant(partner=payout.partner, grantee=approver)
    client.force_login(approver)
    before = _row(payout)

    response = client.post(_url("approve", payout), follow=True)

    assert f"Payout #{payout.pk} is above 10000.00 EUR; only Finance can approve it." in _messages(response)
    assert _row(payout) == before


# --- scope and permissions ---------------------------------------------------------------------

ALL_STEPS = [s[0] for s in STEPS]


@pytest.mark.parametrize("step", ALL_STEPS)
def test_payout_step_on_another_partners_payout_is_404(client, step):
    # given an operator holding every payout permission, granted another partner only
    payout = payout_in(S.AWAITING_APPROVAL)
    operator = staff_with("view_payout", "change_payout", "hold_payout", "approve_payout")
    partner_scope_grant(partner=PartnerFactory(), grantee=operator)
    client.force_login(operator)
    before = _row(payout)

    assert client.get(_url(step, payout)).status_code == 404
    assert client.post(_url(step, payout), {"reason": "Looks odd"}).status_code == 404
    assert _row(payout) == before


# The steps each staff group may take on a payout of its scope (agents: granted the partner), and
# those a payout awaiting approval allows: a button shows where both hold.
AWAITING_APPROVAL_STEPS = {"hold", "approve", "reject", "cancel"}
BUTTONS = {
    StaffGroup.OPERATIONS_AGENT: set(),
    StaffGroup.OPERATIONS_LEAD: {"hold", "release_hold", "request_approval", "retry", "cancel"},
    StaffGroup.FINANCE: set(ALL_STEPS),
}


@pytest.mark.parametrize("group", list(BUTTONS))
def test_payout_page_shows_only_the_buttons_of_the_users_permissions(client, group):
    payout = payout_in(S.AWAITING_APPROVAL)
    user = staff(group, scope=payout.partner if group == StaffGroup.OPERATIONS_AGENT else None)
    client.force_login(user)

    page = client.get(reverse("admin:payouts_payout_change", args=[payout.pk]))

    assert page.status_code == 200
    html = page.content.decode()
    assert {step for step in ALL_STEPS if _url(step, payout) in html} == BUTTONS[group] & AWAITING_APPROVAL_STEPS
    for step in set(ALL_STEPS) - BUTTONS[group]:  # and the step itself refuses them
        assert client.post(_url(step, payout), {"reason": "Looks odd"}).status_code == 403
    assert Payout.objects.get(pk=payout.pk).status == S.AWAITING_APPROVAL


# --- bulk approve ------------------------------------------------------------------------------


def _bulk_approve(client, payouts):
    return client.post(
        reverse("admin:payouts_payout_changelist"),
        {"action": "approve_selected", "_selected_action": [p.pk for p in payouts]},
        follow=True,
    )


def test_payout_bulk_approve_approves_the_approvable_and_names_each_refusal(client):
    # given three payouts: one awaiting approval requested by a lead, one the acting Finance user
    # requested, one ready (not awaiting approval)
    finance = staff(StaffGroup.FINANCE)
    approvable = payout_in(S.AWAITING_APPROVAL)
    own = payouts.payout_request_approval(payout=payout_in(S.READY), actor=finance, note="Mine")
    ready = payout_in(S.READY)
    before = {p.pk: _row(p) for p in (own, ready)}
    client.force_login(finance)

    # when they approve the three at once
    response = _bulk_approve(client, [approvable, own, ready])

    # then only the approvable one is approved, and one message says what happened to each
    assert Payout.objects.get(pk=approvable.pk).status == S.APPROVED
    assert {p.pk: _row(p) for p in (own, ready)} == before
    assert _messages(response) == [
        f"Approved 1 of 3 payouts: #{approvable.pk}. Refused 2: "
        f"#{own.pk} (You requested payout #{own.pk}; a second person must approve it.); "
        f"#{ready.pk} (Payout #{ready.pk} is 'ready': cannot approve.)"
    ]

    # when the same selection is submitted again, nothing is approved twice
    again = _bulk_approve(client, [approvable, own, ready])
    assert _events("payout.approve", approvable).count() == 1
    assert _messages(again)[0].startswith(
        f"Approved 0 of 3 payouts. Already approved, nothing to do: #{approvable.pk}. Refused 2: "
    )


def test_payout_bulk_approve_acts_only_on_payouts_in_scope(client):
    # given an approver granted one partner, selecting a payout of it and one of another partner
    mine, theirs = payout_in(S.AWAITING_APPROVAL), payout_in(S.AWAITING_APPROVAL)
    approver = staff_with("view_payout", "approve_payout")
    partner_scope_grant(partner=mine.partner, grantee=approver)
    client.force_login(approver)
    before = _row(theirs)

    response = _bulk_approve(client, [mine, theirs])

    assert Payout.objects.get(pk=mine.pk).status == S.APPROVED
    assert _row(theirs) == before
    assert _messages(response) == [f"Approved 1 of 1 payout: #{mine.pk}."]


def test_payout_bulk_approve_is_not_offered_without_the_approve_permission(client):
    payout = payout_in(S.AWAITING_APPROVAL)
    client.force_login(staff(StaffGroup.OPERATIONS_LEAD))

    page = client.get(reverse("admin:payouts_payout_changelist"))
    response = _bulk_approve(client, [payout])

    assert "approve_selected" not in page.content.decode()
    assert Payout.objects.get(pk=payout.pk).status == S.AWAITING_APPROVAL
    assert not _events("payout.approve", payout).exists()
    assert response.status_code == 200


# --- changelist filters and query count ----------------------------------------------------------


def _listed(client, **params) -> set[int]:
    response = client.get(reverse("admin:payouts_payout_changelist"), params)
    assert response.status_code == 200
    return {p.pk for p in response.context["cl"].result_list}


def test_payout_changelist_filters_by_status_partner_amount_and_my_approval(client):
    # given payouts waiting for approval (one requested by the viewer), ready and of various amounts
    finance = staff(StaffGroup.FINANCE)
    small = payout_in(S.AWAITING_APPROVAL, **fee_of("100.00"))  # 85.00
    large = payout_in(S.AWAITING_APPROVAL, **fee_of("2000.00"))  # 1,700.00
    own = payouts.payout_request_approval(payout=payout_in(S.READY, **fee_of("100.00")), actor=finance, note="")
    ready = payout_in(S.READY, **fee_of("100.00"))
    client.force_login(finance)

    assert _listed(client, approval="mine") == {small.pk, large.pk}
    assert _listed(client, status__exact=S.READY) == {ready.pk}
    assert _listed(client, partner__id__exact=large.partner_id) == {large.pk}
    assert _listed(client, amount_from="1000", amount_to="2000") == {large.pk}
    assert _listed(client, amount_to="100") == {small.pk, own.pk, ready.pk}


def test_payout_changelist_offers_only_the_partners_in_scope(client):
    # given an agent granted two partners, and a payout of a third
    first, second, theirs = payout_in(S.READY), payout_in(S.READY), payout_in(S.READY)
    agent = staff(StaffGroup.OPERATIONS_AGENT, scope=first.partner)
    partner_scope_grant(partner=second.partner, grantee=agent)
    client.force_login(agent)

    # when the partner filter's autocomplete is asked for every partner
    response = client.get(
        reverse("admin:autocomplete"), {"app_label": "payouts", "model_name": "payout", "field_name": "partner"}
    )

    # then it offers the two in scope, and not the third
    assert response.status_code == 200
    offered = {int(row["id"]) for row in response.json()["results"]}
    assert offered == {first.partner_id, second.partner_id}
    assert theirs.partner_id not in offered


# Session, user, the session's verified second-factor device (django-otp), permissions, the count (capped count and the planner's estimate), the page (its
# ids, then its rows with partner, requester and run joined), and the sidebar badges
# (dashboards/sidebar.py): 14 for any number of rows (the test prints them). The partner filter
# lists nothing up front (its choices come from the autocomplete view).
CHANGELIST_QUERIES = 14


def _payouts(n: int, *, run: PayoutRun, requester) -> None:
    for _ in range(n):
        Payout.objects.create(
            partner=PartnerFactory(),
            amount=Decimal("120.00"),
            currency="EUR",
            hold_until=timezone.now(),
            status=S.AWAITING_APPROVAL,
            requested_by=requester,
            run=run,
        )


def test_payout_changelist_query_count_does_not_grow_with_rows(client, django_assert_num_queries):
    # given payouts each with its own partner, requester and run (every column's join)
    finance = staff(StaffGroup.FINANCE)
    run, lead = PayoutRun.objects.create(cutoff=timezone.now()), staff(StaffGroup.OPERATIONS_LEAD)
    _payouts(3, run=run, requester=lead)
    client.force_login(finance)
    url = reverse("admin:payouts_payout_changelist")

    with django_assert_num_queries(CHANGELIST_QUERIES):
        assert len(client.get(url).context["cl"].result_list) == 3

    _payouts(27, run=run, requester=lead)
    with django_assert_num_queries(CHANGELIST_QUERIES):
        assert len(client.get(url).context["cl"].result_list) == 30
