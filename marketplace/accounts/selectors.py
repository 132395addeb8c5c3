"""People reads. `user_for_user` is the one scope for users (people), used by every door.

A person is in a scoped staff member's scope when they are connected to an object in it: a
member of a granted partner, the owner of a listing in scope, the client of a booking in scope,
the opener of a dispute in scope or someone who submitted evidence to it, an applicant to a job
listing in scope; and the staff member themselves. Each connection is the other model's own
`<model>_for_user` scope, read as a column of user ids, so a grant widens the people exactly as
it widens the objects (one rule, in the object's selector).

The selector is `pk IN (SELECT owner_id ... UNION ALL SELECT client_id ... ...)`, as
`granted_rows_q` does for bookings: a changelist reads the ids of the scope's rows through their
own indexes, and a single-person check (`pk = X`) reaches every branch of the union as
`owner_id = X`, `client_id = X`, ..., each an index lookup on the foreign key. Never a list of
ids in Python: users are every client, millions of rows.

Other staff are people too, but none of these connections reaches them (an assignee is not a
connection): a scoped agent sees only themselves among staff.
"""

from django.db.models import CharField, Q
from django.db.models.functions import Cast

from marketplace.accounts.models import User
from marketplace.partners.selectors import can_operate, scope_is_global, scope_selector


def connected_user_ids(user) -> list:
    """One-column querysets of the ids of the people connected to the objects in `user`'s scope."""
    # accounts sits below the apps whose objects connect people: their selectors are read at call time.
    from marketplace.bookings.models import Booking
    from marketplace.bookings.selectors import booking_grant_branches
    from marketplace.catalog.selectors import listing_for_user
    from marketplace.disputes.models import DisputeEvidence
    from marketplace.disputes.selectors import dispute_for_user
    from marketplace.jobs.models import JobApplication
    from marketplace.partners.models import PartnerMembership
    from marketplace.partners.selectors import partner_for_user

    listings = listing_for_user(user).values("pk")
    disputes = dispute_for_user(user)
    branches = [
        User.objects.filter(pk=user.pk).values("pk"),
        PartnerMembership.objects.filter(partner__in=partner_for_user(user).values("pk")).values("user_id"),
        listing_for_user(user).values("owner_id"),
        # `booking_for_user` by branch: its own union nested in this one is joined row by row.
        *(Booking.objects.filter(branch).values("client_id") for branch in booking_grant_branches(user)),
        disputes.values("opened_by_id"),
        DisputeEvidence.objects.filter(dispute__in=disputes.values("pk")).values("submitted_by_id"),
        # A job listing's applicants: the listing's owner decides on them, the scope's staff see them.
        JobApplication.objects.filter(listing__in=listings).values("applicant_id"),
    ]
    return [branch.order_by() for branch in branches]


@scope_selector
def user_for_user(user):
    """The people a staff user may see: everyone for global scope, else those connected to their scope."""
    if not can_operate(user):
        return User.objects.none()
    if scope_is_global(user):
        return User.objects.all()
    first, *rest = connected_user_ids(user)
    return User.objects.filter(Q(pk__in=first.union(*rest, all=True)))


def staff_timeline_q() -> Q:
    """Audit events on a staff member's timeline (their imports, exports and downloads), for lists
    of events that span people, such as the audit log: `staff_timeline_visible` in SQL.

    Staff are a few rows (`is_staff` in a subquery); the event's target id is text.
    """
    staff_ids = User.objects.filter(is_staff=True).annotate(text_id=Cast("pk", CharField())).values("text_id")
    return Q(target_type__app_label="accounts", target_type__model="user", target_id__in=staff_ids)


def staff_timeline_visible(*, viewer, person) -> bool:
    """Whether `viewer` may read `person`'s timeline. A staff member's timeline holds what they did
    (their imports, exports and downloads hang on it), which leads review: holders of
    `accounts.view_staff_timeline` only. Anyone else's goes with their page."""
    return not person.is_staff or viewer.has_perm("accounts.view_staff_timeline")
