"""Job application transitions fired twice at once from two database connections (STYLE.md, Tests):
the second call is seen waiting on the application's row lock (pg_stat_activity) while the first
still holds it, so the transactions really overlapped; the first wins, and a hire makes one
booking. Two different decisions on one application end as their serial order."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from marketplace.audit.models import Event
from marketplace.bookings.models import Booking
from marketplace.core.exceptions import InvalidInput, TransitionNotAllowed
from marketplace.jobs import services as jobs
from marketplace.jobs.models import JobApplication
from marketplace.jobs.services import TRANSITIONS
from tests.concurrency import run_overlapping
from tests.factories.states import applicant_with_partner, application_in, job_listing

pytestmark = pytest.mark.django_db(transaction=True)

S = JobApplication.Status


def _hire(application: JobApplication, actor) -> JobApplication:
    starts_at = timezone.now() + timedelta(days=2)
    return jobs.application_hire(
        application=application, actor=actor, starts_at=starts_at, ends_at=starts_at + timedelta(hours=8)
    )


# Each transition with who makes it: the job's owner decides, the applicant withdraws.
FIRE = {
    "shortlist": lambda a, owner, applicant: jobs.application_shortlist(application=a, actor=owner),
    "hire": lambda a, owner, applicant: _hire(a, owner),
    "reject": lambda a, owner, applicant: jobs.application_reject(application=a, actor=owner, reason="Not a fit."),
    "withdraw": lambda a, owner, applicant: jobs.application_withdraw(application=a, actor=applicant),
}


def _events(application: JobApplication, verb: str) -> int:
    return Event.objects.filter(verb=verb, target_id=str(application.pk)).count()


def _overlap(application: JobApplication, first: str, second: str):
    """`first` holding the application while `second` is fired (the actors are loaded here)."""
    owner, applicant = application.listing.owner, application.applicant
    return run_overlapping(
        lambda: FIRE[first](application, owner, applicant),
        lambda: FIRE[second](application, owner, applicant),
    )


def test_application_concurrency_covers_every_transition():
    assert set(FIRE) == set(TRANSITIONS)


@pytest.mark.parametrize("transition", list(FIRE))
def test_application_transition_twice_at_once_one_wins(transition):
    # given a submitted application of 180.00
    application = application_in(S.SUBMITTED, amount=Decimal("180.00"))
    target = TRANSITIONS[transition][1]

    # when the transition is fired a second time while the first still holds the application
    overlap = _overlap(application, transition, transition)

    # then the second was seen waiting on the application's row lock before the first committed
    assert overlap.wait.waiting_for == ("Lock", "SELECT", "jobs_jobapplication")
    # and the first wins; the second is told the application already moved on
    winner, loser = overlap.one_winner()
    assert (winner.index, loser.index) == (0, 1)
    assert isinstance(loser.error, TransitionNotAllowed), loser.error
    assert loser.error.message == f"Job application #{application.pk} is '{target}': cannot {transition}."
    application.refresh_from_db()
    assert application.status == target
    assert _events(application, f"application.{transition}") == 1
    # and a hire made exactly one booking, at the proposed amount, linked to the application
    if transition == "hire":
        booking = Booking.objects.get()
        assert (application.booking_id, booking.amount) == (booking.pk, Decimal("180.00"))
    else:
        assert (application.booking_id, Booking.objects.count()) == (None, 0)


def test_application_hire_then_withdraw_overlapping_hires():
    # given a shortlisted application
    application = application_in(S.SHORTLISTED)

    # when the applicant withdraws while the client's hire still holds the application
    overlap = _overlap(application, "hire", "withdraw")

    # then the withdrawal waited on the application's row lock, then found it hired
    assert overlap.wait.waiting_for == ("Lock", "SELECT", "jobs_jobapplication")
    winner, loser = overlap.one_winner()
    assert (winner.index, loser.index) == (0, 1)
    assert loser.error.message == f"Job application #{application.pk} is 'hired': cannot withdraw."
    application.refresh_from_db()
    assert (application.status, application.booking_id) == (S.HIRED, Booking.objects.get().pk)


def test_application_withdraw_then_hire_overlapping_makes_no_booking():
    # given a shortlisted application
    application = application_in(S.SHORTLISTED)

    # when the client hires while the applicant's withdrawal still holds the application
    overlap = _overlap(application, "withdraw", "hire")

    # then the hire waited on the application's row lock, then found it withdrawn: no booking is made
    assert overlap.wait.waiting_for == ("Lock", "SELECT", "jobs_jobapplication")
    winner, loser = overlap.one_winner()
    assert (winner.index, loser.index) == (0, 1)
    assert loser.error.message == f"Job application #{application.pk} is 'withdrawn': cannot hire."
    application.refresh_from_db()
    assert (application.status, application.booking_id, Booking.objects.count()) == (S.WITHDRAWN, None, 0)


def test_application_shortlist_then_withdraw_overlapping_ends_withdrawn():
    # given a submitted application
    application = application_in(S.SUBMITTED)

    # when the applicant withdraws while the client's shortlisting still holds the application
    overlap = _overlap(application, "shortlist", "withdraw")

    # then the withdrawal waited, then withdrew the shortlisted application: both happened, in that order
    assert overlap.wait.waiting_for == ("Lock", "SELECT", "jobs_jobapplication")
    assert overlap.errors == []
    application.refresh_from_db()
    assert application.status == S.WITHDRAWN
    events = Event.objects.filter(
        target_id=str(application.pk), verb__in=["application.shortlist", "application.withdraw"]
    )
    assert list(events.order_by("pk").values_list("verb", "from_state", "to_state")) == [
        ("application.shortlist", S.SUBMITTED, S.SHORTLISTED),
        ("application.withdraw", S.SHORTLISTED, S.WITHDRAWN),
    ]


def test_application_withdraw_then_shortlist_overlapping_refuses_the_shortlist():
    # given a submitted application
    application = application_in(S.SUBMITTED)

    # when the client shortlists while the applicant's withdrawal still holds the application
    overlap = _overlap(application, "withdraw", "shortlist")

    # then the shortlisting waited, then found the application withdrawn
    assert overlap.wait.waiting_for == ("Lock", "SELECT", "jobs_jobapplication")
    winner, loser = overlap.one_winner()
    assert (winner.index, loser.index) == (0, 1)
    assert loser.error.message == f"Job application #{application.pk} is 'withdrawn': cannot shortlist."
    application.refresh_from_db()
    assert application.status == S.WITHDRAWN
    assert _events(application, "application.shortlist") == 0


def test_application_submit_twice_at_once_keeps_one_application():
    # given an open job and a worker
    listing = job_listing()
    worker = applicant_with_partner()

    # when the worker's application is sent a second time while the first is not committed yet
    overlap = run_overlapping(
        lambda: jobs.application_submit(listing=listing, applicant=worker, proposed_amount=Decimal("180.00")),
        lambda: jobs.application_submit(listing=listing, applicant=worker, proposed_amount=Decimal("180.00")),
    )

    # then the second insert was seen waiting on the first's transaction (the one-active-application
    # unique index), then refused as a duplicate
    assert overlap.wait.waiting_for == ("Lock", "INSERT", "jobs_jobapplication")
    winner, loser = overlap.one_winner()
    assert (winner.index, loser.index) == (0, 1)
    assert isinstance(loser.error, InvalidInput)
    assert loser.error.message == "You have already applied to this job."
    assert list(JobApplication.objects.values_list("pk", "status")) == [(winner.value.pk, S.SUBMITTED)]
