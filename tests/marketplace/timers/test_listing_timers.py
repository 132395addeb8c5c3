"""The listing timer: live listings past their end date expire; and the redelivery rule of issue 3
for `listing_timers_run`."""

from datetime import timedelta

import pytest
from django.utils import timezone

from marketplace.audit.models import Event
from marketplace.catalog import tasks, timers
from marketplace.catalog.models import Listing
from marketplace.core import timers as core_timers
from marketplace.notifications.models import EmailOutbox, Notification
from tests.factories.states import listing_in
from tests.processes import run_in_processes

S = Listing.Status
ZERO_COUNTS = {"expired": 0, "skipped": 0, "failed": 0}


def _ended(status: str, **delta) -> Listing:
    listing = listing_in(status)
    Listing.objects.filter(pk=listing.pk).update(ends_at=timezone.now() - timedelta(**(delta or {"minutes": 1})))
    listing.refresh_from_db()
    return listing


def _expire_events(listing: Listing) -> list[Event]:
    return list(Event.objects.filter(verb="listing.expire", target_id=str(listing.pk)))


def _expire_notified() -> list[tuple[int, str]]:
    return sorted(Notification.objects.filter(verb="listing.expire").values_list("user_id", "target_id"))


def _expire_emails() -> list[str]:
    return sorted(
        EmailOutbox.objects.filter(template="notifications/email/listing.expire").values_list("to", flat=True)
    )


@pytest.mark.django_db
def test_listing_timers_expire_published_and_paused_listings_past_their_end():
    # given a published and a paused listing past their end date
    published = _ended(S.PUBLISHED)
    paused = _ended(S.PAUSED, days=2)
    # and ones that must stay: a live one ending tomorrow, one with no end, a draft and a
    # suspended one past their end date
    tomorrow = listing_in(S.PUBLISHED)
    Listing.objects.filter(pk=tomorrow.pk).update(ends_at=timezone.now() + timedelta(days=1))
    no_end = listing_in(S.PUBLISHED)
    draft = _ended(S.DRAFT)
    suspended = _ended(S.SUSPENDED)

    # when the timer runs
    counts = tasks.listing_timers_run()

    # then the two expire, by the system, and their owners are told once
    assert counts == {**ZERO_COUNTS, "expired": 2}
    for listing, from_state in ((published, S.PUBLISHED), (paused, S.PAUSED)):
        listing.refresh_from_db()
        assert listing.status == S.EXPIRED
        [event] = _expire_events(listing)
        assert (event.actor_id, event.from_state, event.to_state) == (None, from_state, S.EXPIRED)
    assert _expire_notified() == sorted([(published.owner_id, str(published.pk)), (paused.owner_id, str(paused.pk))])
    assert _expire_emails() == sorted([published.owner.email, paused.owner.email])
    # and the others did not move
    for listing in (tomorrow, no_end, draft, suspended):
        status = listing.status
        listing.refresh_from_db()
        assert listing.status == status
        assert _expire_events(listing) == []


@pytest.mark.django_db
def test_listing_timers_skip_a_listing_whose_end_moved_after_it_was_selected(monkeypatch):
    # given a listing the sweep selected as due, whose owner has meanwhile moved its end date on
    # (simulated by a selection that includes it)
    listing = listing_in(S.PUBLISHED)
    Listing.objects.filter(pk=listing.pk).update(ends_at=timezone.now() + timedelta(days=3))
    monkeypatch.setattr(timers, "_listings_due", lambda now: Listing.objects.filter(pk=listing.pk))

    # when the timer runs
    counts = tasks.listing_timers_run()

    # then the locked re-check sees the new date: skipped, nothing written
    assert counts == {**ZERO_COUNTS, "skipped": 1}
    listing.refresh_from_db()
    assert listing.status == S.PUBLISHED
    assert _expire_events(listing) == []
    assert _expire_notified() == []


@pytest.mark.django_db
def test_listing_timers_run_in_batches_until_none_are_left(monkeypatch):
    # given five ended listings and batches of two
    listings = [_ended(S.PUBLISHED) for _ in range(5)]
    monkeypatch.setattr(core_timers, "BATCH_SIZE", 2)

    # when the timer runs
    counts = tasks.listing_timers_run()

    # then all five expire in one run
    assert counts == {**ZERO_COUNTS, "expired": 5}
    assert set(Listing.objects.filter(pk__in=[x.pk for x in listings]).values_list("status", flat=True)) == {S.EXPIRED}


@pytest.mark.django_db
def test_listing_timers_stop_after_the_batch_limit(monkeypatch):
    # given five ended listings, batches of two and at most two batches a run
    for _ in range(5):
        _ended(S.PUBLISHED)
    monkeypatch.setattr(core_timers, "BATCH_SIZE", 2)
    monkeypatch.setattr(core_timers, "MAX_BATCHES", 2)

    # when the timer runs twice
    first = tasks.listing_timers_run()
    second = tasks.listing_timers_run()

    # then the first run takes four, the next the last one
    assert first == {**ZERO_COUNTS, "expired": 4}
    assert second == {**ZERO_COUNTS, "expired": 1}


@pytest.mark.django_db
def test_listing_timers_run_twice_in_a_row_expires_once():
    # given two ended listings
    listings = [_ended(S.PUBLISHED), _ended(S.PAUSED)]

    # when the task runs, and is delivered again
    first = tasks.listing_timers_run()
    rows = (Event.objects.count(), Notification.objects.count(), EmailOutbox.objects.count())
    second = tasks.listing_timers_run()

    # then the second run does nothing
    assert first == {**ZERO_COUNTS, "expired": 2}
    assert second == ZERO_COUNTS
    assert (Event.objects.count(), Notification.objects.count(), EmailOutbox.objects.count()) == rows
    for listing in listings:
        assert len(_expire_events(listing)) == 1


@pytest.mark.django_db(transaction=True)
def test_listing_timers_run_twice_at_once_in_two_processes_expires_once():
    # given three ended listings
    listings = [_ended(S.PUBLISHED), _ended(S.PUBLISHED), _ended(S.PAUSED)]

    # when two workers run the task at the same moment
    outcomes = run_in_processes(tasks.listing_timers_run, tasks.listing_timers_run)

    # then neither failed and each listing expired once: one event, one notification, one email
    assert outcomes.all_ok()
    assert sum(o.value["expired"] for o in outcomes) == 3
    assert sum(o.value["failed"] for o in outcomes) == 0
    for listing in listings:
        listing.refresh_from_db()
        assert listing.status == S.EXPIRED
        assert len(_expire_events(listing)) == 1
    assert _expire_notified() == sorted((x.owner_id, str(x.pk)) for x in listings)
    assert _expire_emails() == sorted(x.owner.email for x in listings)
