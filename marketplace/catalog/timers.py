"""Listing timers: live listings past their end date expire (through `marketplace.core.timers.sweep`)."""

from django.utils import timezone

from marketplace.catalog.models import Listing
from marketplace.catalog.services import TRANSITIONS, listing_expire
from marketplace.core.timers import sweep
from marketplace.core.transitions import lock

EXPIRABLE = sorted(TRANSITIONS["expire"][0])  # published, paused


def _listings_due(now):
    return Listing.objects.filter(status__in=EXPIRABLE, ends_at__lte=now)


def listing_timers_run() -> dict[str, int]:
    """Expire the live listings (published or paused) whose `ends_at` has passed.

    Returns {"expired": n, "skipped": n, "failed": n}.
    """
    now = timezone.now()

    def expire(pk: int) -> bool:
        listing = lock(Listing, pk)
        # Re-read under the lock: the owner may have moved `ends_at` on since the row was selected,
        # and `listing_expire` itself does not look at it.
        if listing.status not in EXPIRABLE or listing.ends_at is None or listing.ends_at > timezone.now():
            return False
        listing_expire(listing=listing, actor=None)
        return True

    return sweep(_listings_due(now), expire, counts={"expired": 0, "skipped": 0, "failed": 0}, done="expired")
