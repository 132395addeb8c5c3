"""Listing moderation fired twice at once from two database connections (STYLE.md, Tests): the
second call is seen waiting on the listing's row lock (pg_stat_activity) while the first still
holds it, so the transactions really overlapped; the first wins and the second is refused by the
state the first committed. Two different decisions on one listing end as their serial order."""

from decimal import Decimal

import pytest

from marketplace.audit.models import Event
from marketplace.catalog import services as catalog
from marketplace.catalog.models import Listing
from marketplace.catalog.services import TRANSITIONS
from marketplace.core.exceptions import TransitionNotAllowed
from marketplace.notifications.models import Notification
from tests.concurrency import run_overlapping
from tests.factories.states import LISTING_OWNER_STEPS, LISTING_SERVICES, listing_in, listing_moderator

pytestmark = pytest.mark.django_db(transaction=True)

S = Listing.Status

# transition -> the state it is fired from (any one of its sources)
RACES = {
    "submit": S.DRAFT,
    "approve": S.PENDING_REVIEW,
    "request_changes": S.PENDING_REVIEW,
    "reject": S.PENDING_REVIEW,
    "pause": S.PUBLISHED,
    "resume": S.PAUSED,
    "suspend": S.PUBLISHED,
    "reinstate": S.SUSPENDED,
    "expire": S.PUBLISHED,
    "archive": S.PUBLISHED,
}


def _events(listing: Listing, verb: str) -> int:
    return Event.objects.filter(verb=verb, target_id=str(listing.pk)).count()


def _two_actors(listing: Listing, transition: str) -> tuple:
    """The owner twice (a double click) for the owner's steps, the timer twice for expiry, else two
    moderators granted the listing's partner."""
    if transition in LISTING_OWNER_STEPS:
        return listing.owner, listing.owner
    if transition == "expire":
        return None, None
    return listing_moderator(scope=listing.partner), listing_moderator(scope=listing.partner)


def test_listing_concurrency_covers_every_transition():
    assert set(RACES) == set(TRANSITIONS)


@pytest.mark.parametrize("transition", list(RACES))
def test_listing_transition_twice_at_once_one_wins(transition):
    # given a listing in a state the transition starts from, and two people (or timers) to fire it
    listing = listing_in(RACES[transition])
    first, second = _two_actors(listing, transition)
    target = TRANSITIONS[transition][1]
    events_before = _events(listing, f"listing.{transition}")

    # when the second fires it while the first still holds the listing
    overlap = run_overlapping(
        lambda: LISTING_SERVICES[transition](listing, first),
        lambda: LISTING_SERVICES[transition](listing, second),
    )

    # then the second was seen waiting on the listing's row lock before the first committed
    assert overlap.wait.waiting_for == ("Lock", "SELECT", "catalog_listing")
    # and the first wins; the second is told the listing already moved on
    winner, loser = overlap.one_winner()
    assert (winner.index, loser.index) == (0, 1)
    assert isinstance(loser.error, TransitionNotAllowed), loser.error
    assert loser.error.message == f"Listing #{listing.pk} is '{target}': cannot {transition}."
    listing.refresh_from_db()
    assert listing.status == target
    # and it was recorded, and the owner told, once, naming the first actor
    assert _events(listing, f"listing.{transition}") == events_before + 1
    event = Event.objects.filter(verb=f"listing.{transition}", target_id=str(listing.pk)).latest("pk")
    assert event.actor_id == (first.pk if first else None)
    assert Notification.objects.filter(user=listing.owner, verb=f"listing.{transition}").count() == 1


def test_listing_approve_then_reject_overlapping_publishes():
    # given a listing waiting for review, and two moderators deciding on it
    listing = listing_in(S.PENDING_REVIEW)
    approver, rejecter = listing_moderator(scope=listing.partner), listing_moderator(scope=listing.partner)

    # when one rejects it while the other's approval still holds it
    overlap = run_overlapping(
        lambda: catalog.listing_approve(listing=listing, actor=approver),
        lambda: catalog.listing_reject(listing=listing, actor=rejecter, reason="Prohibited service."),
    )

    # then the rejection waited on the listing's row lock, then found it published
    assert overlap.wait.waiting_for == ("Lock", "SELECT", "catalog_listing")
    winner, loser = overlap.one_winner()
    assert (winner.index, loser.index) == (0, 1)
    assert loser.error.message == f"Listing #{listing.pk} is 'published': cannot reject."
    listing.refresh_from_db()
    assert (listing.status, listing.moderation_reason) == (S.PUBLISHED, "")
    assert listing.published_at is not None
    assert (_events(listing, "listing.approve"), _events(listing, "listing.reject")) == (1, 0)


def test_listing_reject_then_approve_overlapping_rejects():
    # given a listing waiting for review, and two moderators deciding on it
    listing = listing_in(S.PENDING_REVIEW)
    rejecter, approver = listing_moderator(scope=listing.partner), listing_moderator(scope=listing.partner)

    # when one approves it while the other's rejection still holds it
    overlap = run_overlapping(
        lambda: catalog.listing_reject(listing=listing, actor=rejecter, reason="Prohibited service."),
        lambda: catalog.listing_approve(listing=listing, actor=approver),
    )

    # then the approval waited on the listing's row lock, then found it rejected: never published
    assert overlap.wait.waiting_for == ("Lock", "SELECT", "catalog_listing")
    winner, loser = overlap.one_winner()
    assert (winner.index, loser.index) == (0, 1)
    assert loser.error.message == f"Listing #{listing.pk} is 'rejected': cannot approve."
    listing.refresh_from_db()
    assert (listing.status, listing.moderation_reason, listing.published_at) == (
        S.REJECTED,
        "Prohibited service.",
        None,
    )
    assert (_events(listing, "listing.reject"), _events(listing, "listing.approve")) == (1, 0)


def test_listing_approve_revision_twice_at_once_applies_it_once():
    # given a live listing whose owner proposed a new price, and two moderators
    listing = listing_in(S.PUBLISHED, price=Decimal("100.00"))
    catalog.listing_update(listing=listing, actor=listing.owner, data={"price": Decimal("120.00")})
    first, second = listing_moderator(scope=listing.partner), listing_moderator(scope=listing.partner)

    # when the second approves the revision while the first's approval still holds the listing
    overlap = run_overlapping(
        lambda: catalog.listing_approve_revision(listing=listing, actor=first),
        lambda: catalog.listing_approve_revision(listing=listing, actor=second),
    )

    # then the second waited on the listing's row lock, then found no revision left to approve
    assert overlap.wait.waiting_for == ("Lock", "SELECT", "catalog_listing")
    winner, loser = overlap.one_winner()
    assert (winner.index, loser.index) == (0, 1)
    assert loser.error.message == (
        f"Listing #{listing.pk} is 'published': cannot approve a revision. There is no pending revision."
    )
    listing.refresh_from_db()
    assert (listing.status, listing.price, listing.pending_changes) == (S.PUBLISHED, Decimal("120.00"), None)
    assert _events(listing, "listing.revision_approved") == 1


def test_listing_approve_revision_then_reject_revision_overlapping_applies_it():
    # given a live listing whose owner proposed a new title, and two moderators
    listing = listing_in(S.PUBLISHED, title="Garden tidy-up")
    catalog.listing_update(listing=listing, actor=listing.owner, data={"title": "Garden and hedge tidy-up"})
    approver, rejecter = listing_moderator(scope=listing.partner), listing_moderator(scope=listing.partner)

    # when one rejects the revision while the other's approval of it still holds the listing
    overlap = run_overlapping(
        lambda: catalog.listing_approve_revision(listing=listing, actor=approver),
        lambda: catalog.listing_reject_revision(listing=listing, actor=rejecter, reason="Misleading."),
    )

    # then the rejection waited, then found nothing pending: the approved title is live
    assert overlap.wait.waiting_for == ("Lock", "SELECT", "catalog_listing")
    winner, loser = overlap.one_winner()
    assert (winner.index, loser.index) == (0, 1)
    assert loser.error.message == (
        f"Listing #{listing.pk} is 'published': cannot reject a revision. There is no pending revision."
    )
    listing.refresh_from_db()
    assert (listing.title, listing.pending_changes) == ("Garden and hedge tidy-up", None)
    assert (_events(listing, "listing.revision_approved"), _events(listing, "listing.revision_rejected")) == (1, 0)
