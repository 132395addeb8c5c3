"""The booking state machine (marketplace/bookings/services.py TRANSITIONS): every transition from
every state through the service that performs it, booking_create's guards, and who may do what.

The money each transition moves is checked in tests/marketplace/payments/services/test_checkout.py.
"""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import transaction
from django.utils import timezone
from guardian.shortcuts import assign_perm

from marketplace.audit.models import Event
from marketplace.audit.selectors import event_list_for_object
from marketplace.bookings.models import Booking
from marketplace.bookings.services import (
    TRANSITIONS,
    booking_apply_transition,
    booking_close,
    booking_complete,
    booking_create,
    booking_request_payment,
    booking_start,
)
from marketplace.catalog.models import Listing
from marketplace.catalog.services import category_commission_set
from marketplace.core.exceptions import InvalidInput, NotPermitted, TransitionNotAllowed
from marketplace.core.transitions import lock
from marketplace.disputes.models import OPEN_STATES, Dispute
from marketplace.disputes.services import dispute_open, dispute_resolve, dispute_withdraw
from marketplace.jobs.models import JobApplication
from marketplace.jobs.services import application_hire
from marketplace.ledger.models import LedgerEntry
from marketplace.notifications.models import Notification
from marketplace.partners.models import Partner
from marketplace.payments.models import Payment, Refund
from marketplace.payments.services import (
    booking_accept,
    booking_authorize,
    booking_cancel,
    booking_decline,
    booking_expire,
)
from tests.factories import (
    CategoryFactory,
    ClientFactory,
    ListingFactory,
    PartnerFactory,
    PaymentMethodFactory,
)
from tests.factories.states import application_in, booking_at, listing_in, operator_with

pytestmark = pytest.mark.django_db

S = Booking.Status
LEGAL = [(name, state) for name, (sources, _) in TRANSITIONS.items() for state in sorted(sources)]
ILLEGAL = [(name, state) for name, (sources, _) in TRANSITIONS.items() for state in S.values if state not in sources]


def _decided_by_dispute(booking: Booking, transition: str):
    """resolve / withdraw_dispute: through the dispute workflow when a dispute is open; otherwise
    through `booking_apply_transition`, the entry point that workflow uses on the locked booking."""
    dispute = Dispute.objects.filter(booking=booking, status__in=OPEN_STATES).first()
    if dispute is not None and transition == "resolve":
        return dispute_resolve(
            dispute=dispute, actor=operator_with("resolve_dispute"), outcome="release", reason_code="delivered"
        )
    if dispute is not None:
        return dispute_withdraw(dispute=dispute, actor=dispute.opened_by, reason="Sorted it out.")
    with transaction.atomic():
        locked = lock(Booking, booking.pk)
        return booking_apply_transition(booking=locked, actor=None, transition=transition)


# Each transition as the call of the service that performs it, made by the party who would.
FIRE = {
    "request_payment": lambda b: booking_request_payment(booking=b, actor=b.client),
    "authorize": lambda b: booking_authorize(booking=b, actor=b.client, method=PaymentMethodFactory(user=b.client)),
    "accept": lambda b: booking_accept(booking=b, actor=b.provider),
    "decline": lambda b: booking_decline(booking=b, actor=b.provider, reason="Fully booked."),
    "expire": lambda b: booking_expire(booking=b, actor=None),
    "cancel": lambda b: booking_cancel(booking=b, actor=b.client, reason="Plans changed."),
    "start": lambda b: booking_start(booking=b, actor=b.provider),
    "complete": lambda b: booking_complete(booking=b, actor=b.provider),
    "dispute": lambda b: dispute_open(booking=b, actor=b.client, reason_code="quality", description="Half done."),
    "resolve": lambda b: _decided_by_dispute(b, "resolve"),
    "withdraw_dispute": lambda b: _decided_by_dispute(b, "withdraw_dispute"),
    "close": lambda b: booking_close(booking=b, actor=None),
}


def _past_deadline(booking: Booking) -> Booking:
    """The timer's view: the waiting state's deadline has passed."""
    Booking.objects.filter(pk=booking.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    booking.refresh_from_db()
    return booking


def _snapshot(booking: Booking) -> dict:
    """Everything a refused booking call must leave as it was."""
    row = Booking.objects.get(pk=booking.pk)
    payment = Payment.objects.filter(booking=booking).values("status", "captured_amount", "refunded_amount").first()
    return {
        "booking": (row.status, row.updated_at, row.expires_at, row.cancellation_reason),
        "payment": payment,
        "payments": Payment.objects.count(),
        "refunds": Refund.objects.count(),
        "ledger": LedgerEntry.objects.count(),
        "events": Event.objects.count(),
        "notifications": Notification.objects.count(),
        "disputes": Dispute.objects.count(),
    }


def test_transition_table_covers_every_booking_state():
    # given the table  # when we collect its states  # then every state appears and the ends are terminal
    sources = set().union(*(sources for sources, _ in TRANSITIONS.values()))
    targets = {target for _, target in TRANSITIONS.values()}
    assert sources | targets == set(S.values)
    assert {S.DECLINED, S.EXPIRED, S.CANCELLED, S.CLOSED}.isdisjoint(sources)
    assert set(FIRE) == set(TRANSITIONS)


@pytest.mark.parametrize("state", S.values)
def test_booking_at_reaches_every_state(state):
    # given / when
    booking = booking_at(state)
    # then
    booking.refresh_from_db()
    assert booking.status == state


@pytest.mark.parametrize(("transition", "state"), LEGAL, ids=[f"{t}-from-{s}" for t, s in LEGAL])
def test_booking_transition_legal_from_source_state(transition, state):
    # given a booking brought to `state` through the services
    booking = booking_at(state)
    if transition == "expire":
        booking = _past_deadline(booking)
    target = TRANSITIONS[transition][1]

    # when
    FIRE[transition](booking)

    # then the booking moved and the audit trail records from where to where
    booking.refresh_from_db()
    assert booking.status == target
    event = Event.objects.filter(verb=f"booking.{transition}", target_id=str(booking.pk)).latest("id")
    assert (event.from_state, event.to_state) == (state, target)


@pytest.mark.parametrize(("transition", "state"), ILLEGAL, ids=[f"{t}-from-{s}" for t, s in ILLEGAL])
def test_booking_transition_illegal_from_other_state(transition, state):
    # given a booking in a state the transition may not start from
    booking = booking_at(state)
    before = _snapshot(booking)

    # when
    with pytest.raises(TransitionNotAllowed) as raised:
        FIRE[transition](booking)

    # then the error names the booking, its state and the transition; nothing was written
    assert str(raised.value) == f"Booking #{booking.pk} is '{state}': cannot {transition}."
    assert raised.value.extra == {"object": f"Booking #{booking.pk}", "state": state, "transition": transition}
    assert _snapshot(booking) == before


@pytest.mark.parametrize(
    ("transition", "stamp"),
    [
        ("authorize", "authorized_at"),
        ("accept", "accepted_at"),
        ("start", "started_at"),
        ("complete", "completed_at"),
        ("cancel", "cancelled_at"),
        ("close", "closed_at"),
    ],
)
def test_booking_transition_stamps_its_time(transition, stamp):
    # given
    state = sorted(TRANSITIONS[transition][0])[0]
    booking = booking_at(state)
    assert getattr(booking, stamp) is None
    # when
    FIRE[transition](booking)
    # then
    booking.refresh_from_db()
    assert getattr(booking, stamp) is not None and getattr(booking, stamp) <= timezone.now()


def test_booking_request_payment_sets_the_payment_deadline(settings):
    # given
    booking = booking_at(S.REQUESTED)
    # when
    booking_request_payment(booking=booking, actor=booking.client)
    # then
    booking.refresh_from_db()
    expected = timezone.now() + timedelta(minutes=settings.MARKETPLACE_PAYMENT_EXPIRY_MINUTES)
    assert abs(booking.expires_at - expected) < timedelta(seconds=30)


def test_booking_complete_opens_the_review_and_dispute_windows(settings):
    # given
    booking = booking_at(S.IN_PROGRESS)
    # when
    booking_complete(booking=booking, actor=None)
    # then the timer may complete it, and both windows start now
    booking.refresh_from_db()
    assert booking.status == S.COMPLETED
    assert booking.review_window_ends_at - booking.completed_at == timedelta(
        days=settings.MARKETPLACE_REVIEW_WINDOW_DAYS
    )
    assert booking.dispute_window_ends_at - booking.completed_at == timedelta(
        days=settings.MARKETPLACE_DISPUTE_WINDOW_DAYS
    )


def test_booking_transition_notifies_the_other_party_only():
    # given
    booking = booking_at(S.AUTHORIZED)
    # when the provider accepts
    booking_accept(booking=booking, actor=booking.provider)
    # then the client is told, the provider (who acted) is not
    assert Notification.objects.filter(user=booking.client, verb="booking.accept").count() == 1
    assert Notification.objects.filter(user=booking.provider, verb="booking.accept").count() == 0


# --- booking_create -----------------------------------------------------------------------------


def test_booking_create_fixes_price_and_commission_at_booking_time():
    # given a published listing in a 12.5% category
    category = CategoryFactory(commission_rate=Decimal("0.1250"))
    listing = listing_in(Listing.Status.PUBLISHED, price=Decimal("99.99"), category=category)
    client = ClientFactory()
    starts_at = timezone.now() + timedelta(days=5)

    # when
    booking = booking_create(
        listing=listing, client=client, starts_at=starts_at, ends_at=starts_at + timedelta(hours=3)
    )

    # then the amounts are to the cent, the provider and partner come from the listing
    booking.refresh_from_db()
    assert (booking.status, booking.amount, booking.platform_fee, booking.commission_rate) == (
        S.REQUESTED,
        Decimal("99.99"),
        Decimal("12.50"),
        Decimal("0.1250"),
    )
    assert (booking.provider, booking.partner, booking.category, booking.currency) == (
        listing.owner,
        listing.partner,
        category,
        "EUR",
    )
    event = event_list_for_object(obj=booking).get()
    assert (event.verb, event.from_state, event.to_state, event.actor) == ("booking.created", "", S.REQUESTED, client)
    assert Notification.objects.filter(user=listing.owner, verb="booking.created").count() == 1

    # and a later change of the category's rate (through its service) does not touch it
    category_commission_set(
        category=category, rate=Decimal("0.3000"), actor=operator_with("change_category_commission"), reason="Q3."
    )
    booking.refresh_from_db()
    assert (booking.platform_fee, booking.commission_rate) == (Decimal("12.50"), Decimal("0.1250"))


@pytest.mark.parametrize(
    "state",
    [s for s in Listing.Status.values if s != Listing.Status.PUBLISHED],
)
def test_booking_create_for_unpublished_listing_is_refused(state):
    # given
    listing = listing_in(state)
    starts_at = timezone.now() + timedelta(days=5)
    events_before = Event.objects.count()
    # when
    with pytest.raises(InvalidInput) as raised:
        booking_create(
            listing=listing, client=ClientFactory(), starts_at=starts_at, ends_at=starts_at + timedelta(hours=1)
        )
    # then
    assert str(raised.value) == f"Listing #{listing.pk} is not a published service and cannot be booked."
    assert Booking.objects.count() == 0
    assert Event.objects.count() == events_before


def test_booking_create_for_job_listing_is_refused():
    # given a published JOB (jobs are applied to, not booked)
    listing = ListingFactory(kind=Listing.Kind.JOB, status=Listing.Status.PUBLISHED)
    starts_at = timezone.now() + timedelta(days=5)
    # when
    with pytest.raises(InvalidInput, match="is not a published service"):
        booking_create(
            listing=listing, client=ClientFactory(), starts_at=starts_at, ends_at=starts_at + timedelta(hours=1)
        )
    # then
    assert Booking.objects.count() == 0


def test_booking_create_of_own_listing_is_refused():
    # given
    listing = listing_in(Listing.Status.PUBLISHED)
    starts_at = timezone.now() + timedelta(days=5)
    # when
    with pytest.raises(InvalidInput) as raised:
        booking_create(
            listing=listing, client=listing.owner, starts_at=starts_at, ends_at=starts_at + timedelta(hours=1)
        )
    # then
    assert str(raised.value) == "You cannot book your own listing."
    assert Booking.objects.count() == 0


@pytest.mark.parametrize("length", [timedelta(hours=-1), timedelta(0)], ids=["ends-before-start", "zero-length"])
def test_booking_create_ending_before_it_starts_is_refused(length):
    # given
    listing = listing_in(Listing.Status.PUBLISHED)
    starts_at = timezone.now() + timedelta(days=5)
    events_before = Event.objects.count()
    # when
    with pytest.raises(InvalidInput) as raised:
        booking_create(listing=listing, client=ClientFactory(), starts_at=starts_at, ends_at=starts_at + length)
    # then
    assert str(raised.value) == "A booking must end after it starts."
    assert Booking.objects.count() == 0
    assert Event.objects.count() == events_before


def test_booking_create_starting_in_the_past_is_refused():
    # given a published listing and a start a minute ago
    listing = listing_in(Listing.Status.PUBLISHED)
    starts_at = timezone.now() - timedelta(minutes=1)
    events_before = Event.objects.count()
    # when
    with pytest.raises(InvalidInput) as raised:
        booking_create(
            listing=listing, client=ClientFactory(), starts_at=starts_at, ends_at=starts_at + timedelta(hours=2)
        )
    # then nothing is booked
    assert str(raised.value) == "A booking cannot start in the past."
    assert Booking.objects.count() == 0
    assert Event.objects.count() == events_before


# --- Who may do what ---------------------------------------------------------------------------

ACTIONS = {
    # action: (state it is tried from, the call with a given actor)
    "request_payment": (S.REQUESTED, lambda b, actor: booking_request_payment(booking=b, actor=actor)),
    "authorize": (
        S.PENDING_PAYMENT,
        lambda b, actor: booking_authorize(booking=b, actor=actor, method=PaymentMethodFactory(user=b.client)),
    ),
    "accept": (S.AUTHORIZED, lambda b, actor: booking_accept(booking=b, actor=actor)),
    "decline": (S.AUTHORIZED, lambda b, actor: booking_decline(booking=b, actor=actor, reason="No.")),
    "cancel": (S.ACCEPTED, lambda b, actor: booking_cancel(booking=b, actor=actor, reason="Plans changed.")),
    "start": (S.ACCEPTED, lambda b, actor: booking_start(booking=b, actor=actor)),
    "complete": (S.IN_PROGRESS, lambda b, actor: booking_complete(booking=b, actor=actor)),
}
# (action, who, allowed). Who: the booking's client or provider, an operator (operate_booking),
# or a stranger (a client of the platform with no part in this booking).
MATRIX = [
    ("request_payment", "client", True),
    ("request_payment", "provider", True),
    ("request_payment", "operator", True),
    ("request_payment", "stranger", False),
    ("authorize", "client", True),
    ("authorize", "provider", False),
    ("authorize", "operator", False),
    ("authorize", "stranger", False),
    ("accept", "provider", True),
    ("accept", "operator", True),
    ("accept", "client", False),
    ("accept", "stranger", False),
    ("decline", "provider", True),
    ("decline", "operator", True),
    ("decline", "client", False),
    ("decline", "stranger", False),
    ("cancel", "client", True),
    ("cancel", "provider", True),
    ("cancel", "operator", True),
    ("cancel", "stranger", False),
    ("start", "provider", True),
    ("start", "operator", True),
    ("start", "client", False),
    ("start", "stranger", False),
    ("complete", "provider", True),
    ("complete", "operator", True),
    ("complete", "client", False),
    ("complete", "stranger", False),
]
# An operator acts within their scope only: granted the booking's partner or category, yes; granted
# another partner, or no scope at all, no (even holding operate_booking).
MATRIX += [
    (action, who, who in ("operator of the partner", "operator of the category"))
    for action, who_, allowed in list(MATRIX)
    if who_ == "operator" and allowed
    for who in (
        "operator of the partner",
        "operator of the category",
        "operator of another partner",
        "operator, no scope",
    )
]


def _actor(who: str, booking: Booking):
    if who == "client":
        return booking.client
    if who == "provider":
        return booking.provider
    if who == "operator":
        return operator_with("operate_booking")
    if who == "operator of the partner":
        return operator_with("operate_booking", scope=booking.partner)
    if who == "operator of the category":
        operator = operator_with("operate_booking", scope=None)
        assign_perm("catalog.operate_category", operator, booking.category)
        return type(operator).objects.get(pk=operator.pk)
    if who == "operator of another partner":
        return operator_with("operate_booking", scope=PartnerFactory())
    if who == "operator, no scope":
        return operator_with("operate_booking", scope=None)
    return ClientFactory()


@pytest.mark.parametrize(("action", "who", "allowed"), MATRIX, ids=[f"{a}-{w}" for a, w, _ in MATRIX])
def test_booking_permission_matrix(action, who, allowed):
    # given a booking where `action` is legal, and the actor
    state, call = ACTIONS[action]
    booking = booking_at(state)
    actor = _actor(who, booking)
    before = _snapshot(booking)

    if allowed:
        # when
        call(booking, actor)
        # then
        booking.refresh_from_db()
        assert booking.status != state
        assert event_list_for_object(obj=booking).first().actor == actor
    else:
        # when
        with pytest.raises(NotPermitted) as raised:
            call(booking, actor)
        # then refused with a message that names the booking, and nothing written
        assert f"#{booking.pk}" in str(raised.value)
        assert _snapshot(booking) == before


def test_booking_authorize_with_someone_elses_method_is_refused():
    # given
    booking = booking_at(S.PENDING_PAYMENT)
    before = _snapshot(booking)
    # when
    with pytest.raises(NotPermitted) as raised:
        booking_authorize(booking=booking, actor=booking.client, method=PaymentMethodFactory())
    # then
    assert str(raised.value) == "This payment method belongs to someone else."
    assert _snapshot(booking) == before


# --- Deadlines ---------------------------------------------------------------------------------


@pytest.mark.parametrize("state", [S.PENDING_PAYMENT, S.AUTHORIZED])
def test_booking_expire_before_the_deadline_is_refused(state):
    # given a booking still inside its waiting time
    booking = booking_at(state)
    assert booking.expires_at > timezone.now()
    before = _snapshot(booking)
    # when
    with pytest.raises(InvalidInput) as raised:
        booking_expire(booking=booking, actor=None)
    # then
    assert str(raised.value) == f"Booking #{booking.pk} has not reached its deadline yet."
    assert _snapshot(booking) == before


@pytest.mark.parametrize("state", [S.PENDING_PAYMENT, S.AUTHORIZED])
def test_booking_expire_past_the_deadline_expires_and_releases_the_money(state):
    # given
    booking = _past_deadline(booking_at(state))
    # when the timer fires (no actor)
    booking_expire(booking=booking, actor=None)
    # then
    booking.refresh_from_db()
    assert (booking.status, booking.expires_at) == (S.EXPIRED, None)
    payment = Payment.objects.filter(booking=booking).first()
    assert payment is None if state == S.PENDING_PAYMENT else payment.status == Payment.Status.VOIDED
    assert LedgerEntry.objects.count() == 0
    event = event_list_for_object(obj=booking).first()
    assert (event.verb, event.actor, event.from_state, event.to_state) == ("booking.expire", None, state, S.EXPIRED)
    # both parties hear about it, since nobody acted
    assert Notification.objects.filter(verb="booking.expire").count() == 2


def test_booking_authorize_after_the_payment_deadline_is_refused(sandbox_gateway):
    # given
    booking = _past_deadline(booking_at(S.PENDING_PAYMENT))
    method = PaymentMethodFactory(user=booking.client)
    before = _snapshot(booking)
    # when
    with pytest.raises(InvalidInput) as raised:
        booking_authorize(booking=booking, actor=booking.client, method=method)
    # then no money was touched
    assert str(raised.value) == f"Booking #{booking.pk} waited too long for payment and can no longer be paid."
    assert _snapshot(booking) == before
    assert sandbox_gateway.calls == []


def test_booking_authorize_sets_the_acceptance_deadline(settings):
    # given
    booking = booking_at(S.PENDING_PAYMENT)
    # when
    booking_authorize(booking=booking, actor=booking.client, method=PaymentMethodFactory(user=booking.client))
    # then
    booking.refresh_from_db()
    assert booking.expires_at - booking.authorized_at == timedelta(hours=settings.MARKETPLACE_ACCEPT_EXPIRY_HOURS)


# --- A suspended partner takes no new bookings ----------------------------------------------------


def test_booking_create_of_a_suspended_partners_listing_is_refused():
    # given a published listing whose partner is then suspended
    listing = listing_in(Listing.Status.PUBLISHED)
    Partner.objects.filter(pk=listing.partner_id).update(status=Partner.Status.SUSPENDED)
    starts_at = timezone.now() + timedelta(days=5)
    events_before = Event.objects.count()
    # when / then
    with pytest.raises(InvalidInput) as raised:
        booking_create(
            listing=listing, client=ClientFactory(), starts_at=starts_at, ends_at=starts_at + timedelta(hours=1)
        )
    assert str(raised.value) == (
        f"Partner #{listing.partner_id} is suspended: a new booking is refused until it is reinstated."
    )
    assert Booking.objects.count() == 0
    assert Event.objects.count() == events_before


def test_hiring_an_applicant_whose_partner_is_suspended_is_refused():
    # given an application by a worker whose partner (the account they are paid through) is suspended
    application = application_in(JobApplication.Status.SUBMITTED)
    partner = application.applicant.memberships.get().partner
    Partner.objects.filter(pk=partner.pk).update(status=Partner.Status.SUSPENDED)
    starts_at = timezone.now() + timedelta(days=3)
    # when / then
    with pytest.raises(InvalidInput, match=f"Partner #{partner.pk} is suspended"):
        application_hire(
            application=application,
            actor=application.listing.owner,
            starts_at=starts_at,
            ends_at=starts_at + timedelta(hours=4),
        )
    application.refresh_from_db()
    assert application.status == JobApplication.Status.SUBMITTED
    assert Booking.objects.count() == 0
