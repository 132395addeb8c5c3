"""Job applications (marketplace/jobs/services.py): every transition from every state, duplicates,
who decides, and hiring, which creates a booking paid out to the applicant's partner."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from marketplace.audit.models import Event
from marketplace.audit.selectors import event_list_for_object
from marketplace.bookings.models import Booking
from marketplace.catalog.models import Listing
from marketplace.core.exceptions import InvalidInput, NotPermitted, TransitionNotAllowed
from marketplace.jobs import services as jobs
from marketplace.jobs.models import JobApplication
from marketplace.jobs.services import TRANSITIONS
from marketplace.notifications.models import Notification
from tests.factories import CategoryFactory, ClientFactory, MembershipFactory, ProviderFactory, WorkerFactory
from tests.factories.states import applicant_with_partner, application_in, job_listing, listing_in

pytestmark = pytest.mark.django_db

S = JobApplication.Status
LEGAL = [(name, state) for name, (sources, _) in TRANSITIONS.items() for state in sorted(sources)]
ILLEGAL = [(name, state) for name, (sources, _) in TRANSITIONS.items() for state in S.values if state not in sources]


def _hire(application: JobApplication, actor) -> JobApplication:
    starts_at = timezone.now() + timedelta(days=2)
    return jobs.application_hire(
        application=application, actor=actor, starts_at=starts_at, ends_at=starts_at + timedelta(hours=8)
    )


# Each transition with the person who may make it: the job's owner decides, the applicant withdraws.
FIRE = {
    "shortlist": lambda a: jobs.application_shortlist(application=a, actor=a.listing.owner),
    "hire": lambda a: _hire(a, a.listing.owner),
    "reject": lambda a: jobs.application_reject(application=a, actor=a.listing.owner, reason="Not a fit."),
    "withdraw": lambda a: jobs.application_withdraw(application=a, actor=a.applicant),
}


def _snapshot(application: JobApplication) -> dict:
    row = JobApplication.objects.get(pk=application.pk)
    return {
        "application": (row.status, row.updated_at, row.booking_id, row.decision_reason),
        "bookings": Booking.objects.count(),
        "events": Event.objects.count(),
        "notifications": Notification.objects.count(),
    }


@pytest.mark.parametrize(("transition", "state"), LEGAL, ids=[f"{t}-from-{s}" for t, s in LEGAL])
def test_application_transition_legal_from_source_state(transition, state):
    # given
    application = application_in(state)
    target = TRANSITIONS[transition][1]
    # when
    FIRE[transition](application)
    # then the application moved, the audit trail says so, and the other side was told
    application.refresh_from_db()
    assert application.status == target
    event = event_list_for_object(obj=application).first()
    assert (event.verb, event.from_state, event.to_state) == (f"application.{transition}", state, target)
    told = application.listing.owner if transition == "withdraw" else application.applicant
    assert Notification.objects.filter(user=told, verb=f"application.{transition}").count() == 1


@pytest.mark.parametrize(("transition", "state"), ILLEGAL, ids=[f"{t}-from-{s}" for t, s in ILLEGAL])
def test_application_transition_illegal_from_other_state(transition, state):
    # given
    application = application_in(state)
    before = _snapshot(application)
    # when
    with pytest.raises(TransitionNotAllowed) as raised:
        FIRE[transition](application)
    # then
    assert str(raised.value) == f"Job application #{application.pk} is '{state}': cannot {transition}."
    assert raised.value.extra["state"] == state and raised.value.extra["transition"] == transition
    assert _snapshot(application) == before


def test_application_submit_creates_a_submitted_application():
    # given
    listing = job_listing()
    worker = WorkerFactory()
    # when
    application = jobs.application_submit(
        listing=listing, applicant=worker, proposed_amount="199.999", cover_letter="Ten years of tiling."
    )
    # then the amount is kept to the cent and the client is told
    application.refresh_from_db()
    assert (application.status, application.proposed_amount) == (S.SUBMITTED, Decimal("200.00"))
    event = event_list_for_object(obj=application).get()
    assert (event.verb, event.to_state, event.actor) == ("application.submitted", S.SUBMITTED, worker)
    assert Notification.objects.filter(user=listing.owner, verb="application.submitted").count() == 1


def test_application_submit_twice_is_refused():
    # given a worker with an active application
    application = application_in(S.SUBMITTED)
    events_before = Event.objects.count()
    # when they apply again
    with pytest.raises(InvalidInput) as raised:
        jobs.application_submit(listing=application.listing, applicant=application.applicant, proposed_amount=150)
    # then
    assert str(raised.value) == "You have already applied to this job."
    assert JobApplication.objects.count() == 1
    assert Event.objects.count() == events_before


@pytest.mark.parametrize("state", [S.SHORTLISTED, S.HIRED])
def test_application_submit_while_active_is_refused(state):
    # given
    application = application_in(state)
    # when / then
    with pytest.raises(InvalidInput, match="already applied"):
        jobs.application_submit(listing=application.listing, applicant=application.applicant, proposed_amount=150)
    assert JobApplication.objects.count() == 1


@pytest.mark.parametrize("state", [S.WITHDRAWN, S.REJECTED])
def test_application_submit_again_after_it_ended_is_allowed(state):
    # given an application that is no longer active
    application = application_in(state)
    # when
    again = jobs.application_submit(listing=application.listing, applicant=application.applicant, proposed_amount=150)
    # then
    assert again.pk != application.pk and again.status == S.SUBMITTED


@pytest.mark.parametrize(
    ("make_listing", "message"),
    [
        (lambda: listing_in(Listing.Status.PUBLISHED), "is not an open job."),  # a service, not a job
        (lambda: job_listing(status=Listing.Status.PAUSED), "is not an open job."),
    ],
    ids=["service-listing", "paused-job"],
)
def test_application_submit_to_a_closed_job_is_refused(make_listing, message):
    # given
    listing = make_listing()
    # when
    with pytest.raises(InvalidInput) as raised:
        jobs.application_submit(listing=listing, applicant=WorkerFactory(), proposed_amount=100)
    # then
    assert str(raised.value) == f"Listing #{listing.pk} {message}"
    assert JobApplication.objects.count() == 0


@pytest.mark.parametrize(
    ("applicant", "amount", "error", "message"),
    [
        (ClientFactory, 100, NotPermitted, "Only workers and service providers can apply to jobs."),
        (WorkerFactory, 0, InvalidInput, "The proposed amount must be more than zero."),
        (WorkerFactory, -5, InvalidInput, "The proposed amount must be more than zero."),
    ],
    ids=["client-applies", "zero-amount", "negative-amount"],
)
def test_application_submit_with_bad_input_is_refused(applicant, amount, error, message):
    # given
    listing = job_listing()
    # when
    with pytest.raises(error) as raised:
        jobs.application_submit(listing=listing, applicant=applicant(), proposed_amount=amount)
    # then
    assert str(raised.value) == message
    assert JobApplication.objects.count() == 0


def test_application_submit_to_own_job_is_refused():
    # given a provider who posted a job
    owner = ProviderFactory()
    listing = job_listing(owner=owner)
    # when / then
    with pytest.raises(InvalidInput, match="You cannot apply to your own job."):
        jobs.application_submit(listing=listing, applicant=owner, proposed_amount=100)


# --- Who decides -------------------------------------------------------------------------------


@pytest.mark.parametrize("transition", ["shortlist", "hire", "reject"])
@pytest.mark.parametrize("who", ["applicant", "stranger"])
def test_application_decision_by_other_than_the_job_owner_is_refused(transition, who):
    # given
    application = application_in(S.SUBMITTED)
    actor = application.applicant if who == "applicant" else ClientFactory()
    before = _snapshot(application)
    calls = {
        "shortlist": lambda: jobs.application_shortlist(application=application, actor=actor),
        "hire": lambda: _hire(application, actor),
        "reject": lambda: jobs.application_reject(application=application, actor=actor),
    }
    # when
    with pytest.raises(NotPermitted) as raised:
        calls[transition]()
    # then
    assert str(raised.value) == "Only the client who posted the job can decide on applications."
    assert _snapshot(application) == before


@pytest.mark.parametrize("who", ["owner", "stranger"])
def test_application_withdraw_by_other_than_the_applicant_is_refused(who):
    # given
    application = application_in(S.SUBMITTED)
    actor = application.listing.owner if who == "owner" else WorkerFactory()
    before = _snapshot(application)
    # when
    with pytest.raises(NotPermitted) as raised:
        jobs.application_withdraw(application=application, actor=actor)
    # then
    assert str(raised.value) == "Only the applicant can withdraw an application."
    assert _snapshot(application) == before


def test_application_reject_keeps_the_reason():
    # given
    application = application_in(S.SHORTLISTED)
    # when
    jobs.application_reject(application=application, actor=application.listing.owner, reason="Chose a local firm.")
    # then
    application.refresh_from_db()
    assert application.decision_reason == "Chose a local firm."
    assert event_list_for_object(obj=application).first().reason == "Chose a local firm."


# --- Hire ------------------------------------------------------------------------------------


def test_application_hire_creates_a_booking_at_the_proposed_amount_for_the_applicants_partner():
    # given a job in a 10% category, and an applicant who belongs to a partner
    category = CategoryFactory(commission_rate=Decimal("0.1000"))
    listing = job_listing(category=category)
    applicant = WorkerFactory()
    membership = MembershipFactory(user=applicant)
    application = jobs.application_submit(listing=listing, applicant=applicant, proposed_amount=Decimal("180.55"))
    starts_at = timezone.now() + timedelta(days=2)

    # when the job's owner hires them
    jobs.application_hire(
        application=application, actor=listing.owner, starts_at=starts_at, ends_at=starts_at + timedelta(hours=8)
    )

    # then a requested booking exists between the owner (client) and the applicant (provider)
    application.refresh_from_db()
    booking = application.booking
    assert application.status == S.HIRED
    assert (booking.status, booking.client, booking.provider, booking.partner, booking.listing) == (
        Booking.Status.REQUESTED,
        listing.owner,
        applicant,
        membership.partner,
        listing,
    )
    # at the proposed amount (not the job's budget of 250.00), with the fee to the cent
    assert (booking.amount, booking.platform_fee, booking.commission_rate) == (
        Decimal("180.55"),
        Decimal("18.06"),
        Decimal("0.1000"),
    )
    assert (booking.starts_at, booking.ends_at) == (starts_at, starts_at + timedelta(hours=8))
    assert event_list_for_object(obj=booking).get().verb == "booking.created"


def test_application_hire_without_a_partner_membership_writes_nothing():
    # given an applicant who belongs to no partner
    listing = job_listing()
    applicant = WorkerFactory()
    application = jobs.application_submit(listing=listing, applicant=applicant, proposed_amount=100)
    before = _snapshot(application)

    # when
    with pytest.raises(InvalidInput) as raised:
        _hire(application, listing.owner)

    # then a clear error, and no booking, no state change, no audit event
    assert str(raised.value) == f"{applicant} has no partner account to be paid through; they must set one up."
    assert _snapshot(application) == before
    assert Booking.objects.count() == 0


def test_application_hire_ending_before_it_starts_writes_nothing():
    # given
    application = application_in(S.SHORTLISTED)
    before = _snapshot(application)
    starts_at = timezone.now() + timedelta(days=2)
    # when
    with pytest.raises(InvalidInput, match="A booking must end after it starts."):
        jobs.application_hire(
            application=application, actor=application.listing.owner, starts_at=starts_at, ends_at=starts_at
        )
    # then
    assert _snapshot(application) == before


def test_application_hire_uses_the_applicants_own_partner():
    # given two applicants of two different partners
    listing = job_listing()
    first, second = applicant_with_partner(), applicant_with_partner()
    jobs.application_submit(listing=listing, applicant=first, proposed_amount=100)
    application = jobs.application_submit(listing=listing, applicant=second, proposed_amount=120)
    # when the second is hired
    _hire(application, listing.owner)
    # then their booking is paid out through their partner
    application.refresh_from_db()
    assert application.booking.partner == second.memberships.get().partner
    assert application.booking.partner != first.memberships.get().partner
