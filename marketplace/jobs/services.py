"""Job applications: submit, shortlist, reject, withdraw, and hire (which creates a booking)."""

from decimal import Decimal

from django.db import IntegrityError, transaction

from marketplace.accounts.models import User
from marketplace.audit.services import event_record
from marketplace.bookings.services import booking_create_for_hire
from marketplace.catalog.models import Listing
from marketplace.core.exceptions import InvalidInput, NotPermitted
from marketplace.core.money import quantize
from marketplace.core.transitions import guard, lock
from marketplace.jobs.models import JobApplication
from marketplace.notifications.services import notify
from marketplace.partners.models import Partner, PartnerMembership

S = JobApplication.Status

TRANSITIONS: dict[str, tuple[set[str], str]] = {
    "shortlist": ({S.SUBMITTED}, S.SHORTLISTED),
    "hire": ({S.SUBMITTED, S.SHORTLISTED}, S.HIRED),
    "reject": ({S.SUBMITTED, S.SHORTLISTED}, S.REJECTED),
    "withdraw": ({S.SUBMITTED, S.SHORTLISTED}, S.WITHDRAWN),
}


def _apply(application: JobApplication, *, actor, transition: str, reason: str = "", fields=()) -> JobApplication:
    target = guard(application, TRANSITIONS, transition)
    from_state = application.status
    application.status = target
    application.save(update_fields=["status", "updated_at", *fields])
    event_record(
        verb=f"application.{transition}",
        actor=actor,
        target=application,
        from_state=from_state,
        to_state=target,
        reason=reason,
    )
    recipient = application.listing.owner if actor.pk == application.applicant_id else application.applicant
    notify(
        user=recipient,
        verb=f"application.{transition}",
        target=application,
        title=f"Application #{application.pk} for “{application.listing.title}”: {target}",
        body=reason,
    )
    return application


def application_submit(*, listing: Listing, applicant, proposed_amount: Decimal, cover_letter: str = ""):
    if listing.kind != Listing.Kind.JOB or listing.status != Listing.Status.PUBLISHED:
        raise InvalidInput(f"Listing #{listing.pk} is not an open job.")
    if Partner.objects.filter(pk=listing.partner_id, status=Partner.Status.SUSPENDED).exists():
        raise InvalidInput(f"Listing #{listing.pk} is not an open job: its partner is suspended.")
    if applicant.role not in (User.Role.WORKER, User.Role.SERVICE_PROVIDER):
        raise NotPermitted("Only workers and service providers can apply to jobs.")
    if applicant.pk == listing.owner_id:
        raise InvalidInput("You cannot apply to your own job.")
    if proposed_amount is None or Decimal(proposed_amount) <= 0:
        raise InvalidInput("The proposed amount must be more than zero.")
    try:
        with transaction.atomic():
            application = JobApplication.objects.create(
                listing=listing,
                applicant=applicant,
                proposed_amount=quantize(proposed_amount),
                cover_letter=cover_letter,
            )
            event_record(verb="application.submitted", actor=applicant, target=application, to_state=application.status)
            notify(
                user=listing.owner,
                verb="application.submitted",
                target=application,
                title=f"New application for “{listing.title}”",
            )
    except IntegrityError as exc:
        raise InvalidInput("You have already applied to this job.") from exc
    return application


def _require_owner(application: JobApplication, actor) -> None:
    if actor.pk != application.listing.owner_id:
        raise NotPermitted("Only the client who posted the job can decide on applications.")


def application_shortlist(*, application: JobApplication, actor) -> JobApplication:
    with transaction.atomic():
        application = lock(JobApplication, application.pk, related=("listing",))
        _require_owner(application, actor)
        return _apply(application, actor=actor, transition="shortlist")


def application_reject(*, application: JobApplication, actor, reason: str = "") -> JobApplication:
    with transaction.atomic():
        application = lock(JobApplication, application.pk, related=("listing",))
        _require_owner(application, actor)
        application.decision_reason = reason
        return _apply(application, actor=actor, transition="reject", reason=reason, fields=["decision_reason"])


def application_withdraw(*, application: JobApplication, actor) -> JobApplication:
    with transaction.atomic():
        application = lock(JobApplication, application.pk, related=("listing",))
        if actor.pk != application.applicant_id:
            raise NotPermitted("Only the applicant can withdraw an application.")
        return _apply(application, actor=actor, transition="withdraw")


def application_hire(*, application: JobApplication, actor, starts_at, ends_at) -> JobApplication:
    """Hire the applicant: a booking is created at the proposed amount, paid out to the applicant's partner."""
    with transaction.atomic():
        application = lock(JobApplication, application.pk, related=("listing__category", "applicant"))
        _require_owner(application, actor)
        guard(application, TRANSITIONS, "hire")
        membership = (
            PartnerMembership.objects.filter(user=application.applicant)
            .select_related("partner")
            .order_by("pk")
            .first()
        )
        if membership is None:
            raise InvalidInput(
                f"{application.applicant} has no partner account to be paid through; they must set one up."
            )
        booking = booking_create_for_hire(
            listing=application.listing,
            client=actor,
            provider=application.applicant,
            partner=membership.partner,
            amount=application.proposed_amount,
            starts_at=starts_at,
            ends_at=ends_at,
        )
        application.booking = booking
        return _apply(application, actor=actor, transition="hire", fields=["booking"])
