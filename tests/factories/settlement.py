"""Payouts and disputes in ANY state of their state machines, reached through the real services.

    payout = payout_in("submitted")            # settled booking -> payout -> ... -> submitted
    dispute = dispute_in("under_review")       # settled booking -> dispute opened by the client -> ...

The payout's submission is queued with `transaction.on_commit`; the builders switch the queue off
while they work, so `payout_in("submitted")` stays submitted even in `transaction=True` tests.
"""

from contextlib import contextmanager
from decimal import Decimal
from unittest import mock

from django.contrib.auth.models import Group, Permission

from marketplace.accounts.services import StaffGroup, staff_groups_ensure
from marketplace.bookings.models import Booking
from marketplace.disputes import services as disputes
from marketplace.disputes.models import Dispute
from marketplace.partners.models import Partner
from marketplace.partners.services import partner_scope_grant
from marketplace.payments.gateway import SandboxGateway
from marketplace.payouts import services as payouts
from marketplace.payouts.models import Payout, PayoutAttempt
from tests.factories import StaffFactory
from tests.factories.flows import settled_booking

P = Payout.Status
D = Dispute.Status


def staff(*groups: str, scope: Partner | None = None, **kwargs):
    """An active staff user in these staff groups (the groups are created if missing).

    Leads and Finance see every partner through their group; anyone else sees only what they are
    granted: `scope=<partner>` grants that partner (`partner_scope_grant`, audited), and the
    returned instance is fresh, so no permission cache is stale.
    """
    if Group.objects.filter(name__in=groups).count() < len(set(groups)):
        staff_groups_ensure()
    user = StaffFactory(groups=list(groups), **kwargs)
    if scope is not None:
        partner_scope_grant(partner=scope, grantee=user)
        user = type(user).objects.get(pk=user.pk)
    return user


def staff_with(*codenames: str, **kwargs):
    """A staff user holding these model permissions directly, in no group; a fresh instance."""
    user = StaffFactory(**kwargs)
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    return type(user).objects.get(pk=user.pk)


@contextmanager
def submissions_not_sent():
    """Keep `payout_submit` from handing the attempt to the task queue on commit."""
    with mock.patch("marketplace.payouts.services._enqueue_attempt"):
        yield


# The payout steps that lead from a new (accruing) payout to each state.
PAYOUT_PATHS: dict[str, list[str]] = {
    P.ACCRUING: [],
    P.ON_HOLD: ["hold"],
    P.READY: ["mature"],
    P.AWAITING_APPROVAL: ["mature", "request_approval"],
    P.APPROVED: ["mature", "approve"],
    P.SUBMITTED: ["mature", "approve", "submit"],
    P.PAID: ["mature", "approve", "submit", "pay"],
    P.FAILED: ["mature", "approve", "submit", "fail"],
    P.CANCELLED: ["cancel"],
    P.REVERSED: ["mature", "approve", "submit", "pay", "reverse"],
}


def payout_in(status: str, *, bookings: list[Booking] | None = None, **booking_kwargs) -> Payout:
    """A payout of settled bookings (one new settled booking by default) brought to `status`.

    Approval goes through the four-eyes path when the payout needs it (an Operations lead requests,
    a Finance user approves), otherwise through auto-approval.
    """
    bookings = bookings or [settled_booking(**booking_kwargs)]
    lead = staff(StaffGroup.OPERATIONS_LEAD)
    payout = payouts.payout_create(partner=bookings[0].partner, bookings=bookings, actor=lead)
    for step in PAYOUT_PATHS[status]:
        if step == "hold":
            payout = payouts.payout_hold(payout=payout, actor=lead, reason="Manual review of the partner")
        elif step == "mature":
            payout = payouts.payout_mature(payout=payout)
        elif step == "request_approval":
            payout = payouts.payout_request_approval(payout=payout, actor=lead, note="Please approve")
        elif step == "approve":
            if payouts.payout_needs_approval(payout):
                payouts.payout_request_approval(payout=payout, actor=lead, note="Please approve")
                payout = payouts.payout_approve(payout=payout, actor=staff(StaffGroup.FINANCE))
            else:
                payout = payouts.payout_auto_approve(payout=payout)
        elif step == "submit":
            with submissions_not_sent():
                payouts.payout_submit(payout=payout, actor=lead)
        elif step in ("pay", "fail"):
            if step == "fail":
                SandboxGateway.fail_next("payout")
            attempt = PayoutAttempt.objects.filter(payout=payout).latest("number")
            payouts.payout_attempt_process(attempt_id=attempt.pk)
        elif step == "cancel":
            payout = payouts.payout_cancel(payout=payout, actor=lead, reason="Bank details under review")
        elif step == "reverse":
            payout = payouts.payout_reverse(payout=payout, actor=lead, reason="Returned by the bank")
    payout.refresh_from_db()
    assert payout.status == status, f"payout_in({status!r}) reached {payout.status!r}"
    return payout


# The dispute steps that lead from a newly opened dispute to each state.
DISPUTE_PATHS: dict[str, list[str]] = {
    D.OPENED: [],
    D.AWAITING_RESPONSE: ["request_response"],
    D.UNDER_REVIEW: ["start_review"],
    D.ESCALATED: ["escalate"],
    D.RESOLVED_RELEASE: ["resolve_release"],
    D.RESOLVED_PARTIAL_REFUND: ["resolve_partial_refund"],
    D.RESOLVED_FULL_REFUND: ["resolve_full_refund"],
    D.WITHDRAWN: ["withdraw"],
}
PARTIAL_REFUND = Decimal("30.00")


def dispute_in(status: str, *, booking: Booking | None = None, **booking_kwargs) -> Dispute:
    """A dispute opened by the client on a settled booking (a new one by default), brought to `status`.

    Staff steps are taken by an Operations agent granted the booking's partner; the partial
    refund is PARTIAL_REFUND.
    """
    booking = booking or settled_booking(window_open=True, **booking_kwargs)
    dispute = disputes.dispute_open(
        booking=booking, actor=booking.client, reason_code=Dispute.Reason.NOT_AS_DESCRIBED, description="Not done"
    )
    for step in DISPUTE_PATHS[status]:
        agent = staff(StaffGroup.OPERATIONS_AGENT, scope=booking.partner)
        if step == "request_response":
            dispute = disputes.dispute_request_response(dispute=dispute, actor=agent)
        elif step == "start_review":
            dispute = disputes.dispute_start_review(dispute=dispute, actor=agent)
        elif step == "escalate":
            dispute = disputes.dispute_escalate(dispute=dispute, actor=agent)
        elif step.startswith("resolve_"):
            outcome = step.removeprefix("resolve_")
            dispute = disputes.dispute_resolve(
                dispute=dispute,
                actor=agent,
                outcome=outcome,
                reason_code="agreed",
                refund_amount=PARTIAL_REFUND if outcome == "partial_refund" else None,
            )
        elif step == "withdraw":
            dispute = disputes.dispute_withdraw(dispute=dispute, actor=booking.client, reason="Sorted it out")
    dispute.refresh_from_db()
    assert dispute.status == status, f"dispute_in({status!r}) reached {dispute.status!r}"
    return dispute
