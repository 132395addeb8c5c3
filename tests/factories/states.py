"""Objects in ANY state of their state machine, reached through the real services.

`tests.factories.flows.booking_in` walks the happy path (requested .. completed); these builders
reach every other state too (declined, expired, cancelled, disputed, resolved, closed for bookings;
every moderation state for listings; every job application state), so the transition tables can
be tested state by state.
"""

from datetime import timedelta
from decimal import Decimal

from django.contrib.auth.models import Permission
from django.utils import timezone

from marketplace.bookings.models import Booking
from marketplace.bookings.services import booking_close
from marketplace.catalog import services as catalog
from marketplace.catalog.models import Listing
from marketplace.disputes.models import Dispute
from marketplace.disputes.services import dispute_open, dispute_resolve
from marketplace.jobs import services as jobs
from marketplace.jobs.models import JobApplication
from marketplace.partners.models import Partner, PartnerMembership
from marketplace.partners.services import partner_scope_grant
from marketplace.payments.services import booking_cancel, booking_decline, booking_expire
from tests.factories import (
    CategoryFactory,
    ClientFactory,
    ListingFactory,
    MembershipFactory,
    PartnerFactory,
    ProviderFactory,
    StaffFactory,
    WorkerFactory,
)
from tests.factories.flows import booking_in

# --- Listings ---------------------------------------------------------------------------------

# The moderation steps that lead from a new draft to each listing state.
LISTING_PATHS: dict[str, list[str]] = {
    Listing.Status.DRAFT: [],
    Listing.Status.PENDING_REVIEW: ["submit"],
    Listing.Status.CHANGES_REQUESTED: ["submit", "request_changes"],
    Listing.Status.REJECTED: ["submit", "reject"],
    Listing.Status.PUBLISHED: ["submit", "approve"],
    Listing.Status.PAUSED: ["submit", "approve", "pause"],
    Listing.Status.SUSPENDED: ["submit", "approve", "suspend"],
    Listing.Status.EXPIRED: ["submit", "approve", "expire"],
    Listing.Status.ARCHIVED: ["archive"],
}
# The steps the owner takes; the others are moderation, taken by a moderator in scope.
LISTING_OWNER_STEPS = {"submit", "pause", "resume", "archive"}
# Each listing transition as a call of its service; transitions that need a reason get one.
LISTING_SERVICES = {
    "submit": lambda listing, actor: catalog.listing_submit(listing=listing, actor=actor),
    "approve": lambda listing, actor: catalog.listing_approve(listing=listing, actor=actor),
    "request_changes": lambda listing, actor: catalog.listing_request_changes(
        listing=listing, actor=actor, reason="Add photos of your work."
    ),
    "reject": lambda listing, actor: catalog.listing_reject(listing=listing, actor=actor, reason="Prohibited service."),
    "pause": lambda listing, actor: catalog.listing_pause(listing=listing, actor=actor),
    "resume": lambda listing, actor: catalog.listing_resume(listing=listing, actor=actor),
    "suspend": lambda listing, actor: catalog.listing_suspend(listing=listing, actor=actor, reason="Complaints."),
    "reinstate": lambda listing, actor: catalog.listing_reinstate(listing=listing, actor=actor),
    "expire": lambda listing, actor: catalog.listing_expire(listing=listing, actor=actor),
    "archive": lambda listing, actor: catalog.listing_archive(listing=listing, actor=actor),
}


def listing_in(status: str, *, actor=None, price: Decimal = Decimal("100.00"), **kwargs) -> Listing:
    """A service listing created as a draft by `listing_create`, then moderated to `status`.

    The owner takes the owner's steps and a moderator granted the listing's partner the moderation
    steps, unless `actor` is given, who then takes every step.
    """
    owner = kwargs.pop("owner", None) or ProviderFactory()
    partner = kwargs.pop("partner", None) or PartnerFactory()
    PartnerMembership.objects.get_or_create(partner=partner, user=owner)  # listing_create asks for it
    listing = catalog.listing_create(
        owner=owner,
        partner=partner,
        category=kwargs.pop("category", None) or CategoryFactory(),
        title=kwargs.pop("title", "Garden tidy-up"),
        price=price,
        **kwargs,
    )
    steps = LISTING_PATHS[status]
    reviewer = actor or (listing_moderator(scope=listing.partner) if set(steps) - LISTING_OWNER_STEPS else None)
    for step in steps:
        listing = LISTING_SERVICES[step](listing, actor or (owner if step in LISTING_OWNER_STEPS else reviewer))
    return listing


# --- Staff ------------------------------------------------------------------------------------


def operator_with(*codenames: str, scope: Partner | str | None = "all", **kwargs):
    """A staff user holding these model permissions directly (no staff groups needed), with a scope.

    scope="all" gives `partners.operate_all_partners` (every partner); a Partner is granted through
    `partner_scope_grant` (which writes a `scope.granted` audit event); None leaves the user with no
    scope at all. Returns a fresh instance, so no permission cache is stale.
    """
    user = StaffFactory(**kwargs)
    names = [*codenames, "operate_all_partners"] if scope == "all" else codenames
    user.user_permissions.add(*Permission.objects.filter(codename__in=names))
    if isinstance(scope, Partner):
        partner_scope_grant(partner=scope, grantee=user)
    return type(user).objects.get(pk=user.pk)


def listing_moderator(*, scope: Partner | str | None = "all", **kwargs):
    """A listing moderator (`catalog.moderate_listing`) with `scope` (see `operator_with`)."""
    return operator_with("moderate_listing", scope=scope, **kwargs)


# --- Bookings ---------------------------------------------------------------------------------


def booking_at(status: str, **kwargs) -> Booking:
    """A booking brought to any of its twelve states through the real services, money included."""
    S = Booking.Status
    if status in (S.REQUESTED, S.PENDING_PAYMENT, S.AUTHORIZED, S.ACCEPTED, S.IN_PROGRESS, S.COMPLETED):
        return booking_in(status, **kwargs)
    if status == S.DECLINED:
        booking = booking_in(S.AUTHORIZED, **kwargs)
        return booking_decline(booking=booking, actor=booking.provider, reason="Fully booked that week.")
    if status == S.EXPIRED:
        booking = booking_in(S.AUTHORIZED, **kwargs)
        Booking.objects.filter(pk=booking.pk).update(expires_at=timezone.now() - timedelta(minutes=1))
        return booking_expire(booking=booking, actor=None)
    if status == S.CANCELLED:
        booking = booking_in(S.ACCEPTED, **kwargs)
        return booking_cancel(booking=booking, actor=booking.client, reason="Plans changed.")
    if status in (S.DISPUTED, S.RESOLVED):
        booking = booking_in(S.COMPLETED, **kwargs)
        dispute = dispute_open(
            booking=booking, actor=booking.client, reason_code=Dispute.Reason.QUALITY, description="Half done."
        )
        if status == S.RESOLVED:
            dispute_resolve(
                dispute=dispute,
                actor=operator_with("resolve_dispute"),
                outcome="release",
                reason_code="work_delivered",
            )
        booking.refresh_from_db()
        return booking
    if status == S.CLOSED:
        booking = booking_in(S.COMPLETED, **kwargs)
        return booking_close(booking=booking, actor=None)
    raise ValueError(f"booking_at() does not know the state {status!r}")


# --- Job applications -------------------------------------------------------------------------


def job_listing(**kwargs) -> Listing:
    """A JOB listing posted by a client, published unless `status` says otherwise."""
    if "owner" not in kwargs:
        kwargs["owner"] = ClientFactory()
    kwargs.setdefault("status", Listing.Status.PUBLISHED)
    kwargs.setdefault("price", Decimal("250.00"))
    return ListingFactory(kind=Listing.Kind.JOB, **kwargs)


def applicant_with_partner(**kwargs):
    """A worker who belongs to a partner (the account a hire is paid out through)."""
    worker = WorkerFactory(**kwargs)
    MembershipFactory(user=worker)
    return worker


def application_in(status: str, *, listing: Listing | None = None, applicant=None, amount=Decimal("180.00")):
    """A job application submitted by `applicant_with_partner()` and decided to `status`."""
    S = JobApplication.Status
    listing = listing or job_listing()
    applicant = applicant or applicant_with_partner()
    application = jobs.application_submit(listing=listing, applicant=applicant, proposed_amount=amount)
    owner = listing.owner
    if status == S.SHORTLISTED:
        application = jobs.application_shortlist(application=application, actor=owner)
    elif status == S.HIRED:
        starts_at = timezone.now() + timedelta(days=3)
        application = jobs.application_hire(
            application=application, actor=owner, starts_at=starts_at, ends_at=starts_at + timedelta(hours=4)
        )
    elif status == S.REJECTED:
        application = jobs.application_reject(application=application, actor=owner, reason="Not a fit.")
    elif status == S.WITHDRAWN:
        application = jobs.application_withdraw(application=application, actor=applicant)
    elif status != S.SUBMITTED:
        raise ValueError(f"application_in() does not know the state {status!r}")
    return application
