"""Listing timers, and `sweep`, the loop every timer of the marketplace runs its due rows through.

django-q2 delivers at least once: a sweep may run twice in a row, or twice at the same time in two
processes. So a sweep only *selects* due rows (a cheap, ordered, bounded query) and hands each one
to a step that, in its own transaction, locks the row, checks again that it is still due and calls
the transition service. A twin that lost the race finds the row moved and skips it: every effect
(transition, audit event, notification, email) happens once.

`sweep` lives here, in the lowest app that has timers, so bookings and disputes can import it
without an import reaching down-to-up.
"""

import logging
from collections.abc import Callable

from django.db import models, transaction
from django.utils import timezone

from marketplace.catalog.models import Listing
from marketplace.catalog.services import TRANSITIONS, listing_expire
from marketplace.core.exceptions import ApplicationError, InvalidInput, TransitionNotAllowed
from marketplace.core.transitions import lock

logger = logging.getLogger(__name__)

BATCH_SIZE = 500
# A run handles at most this many batches; the next scheduled run takes the rest.
MAX_BATCHES = 20
# Refusals that mean "someone else moved this row meanwhile" (a concurrent twin, a person).
SKIP_ERRORS = (TransitionNotAllowed, InvalidInput)


def sweep(
    queryset: models.QuerySet,
    step: Callable[[int], bool],
    *,
    counts: dict[str, int],
    done: str,
    batch_size: int | None = None,
    max_batches: int | None = None,
) -> dict[str, int]:
    """Call `step(pk)` for each row of `queryset` (the due rows), each call in its own transaction.

    Rows are read in primary-key order by keyset batches, so a row that is skipped or fails is not
    read again in this run. `step` returns True when it did its work (counted under `done`) and
    False when the row, locked and re-read, was no longer due ("skipped"). A row a concurrent
    transaction moved raises TransitionNotAllowed or InvalidInput: "skipped" too. Any other refusal
    (a gateway error) is logged and counted as "failed"; the next run tries the row again.
    """
    batch_size = batch_size or BATCH_SIZE
    last_pk = 0
    for _ in range(max_batches or MAX_BATCHES):
        pks = list(queryset.filter(pk__gt=last_pk).order_by("pk").values_list("pk", flat=True)[:batch_size])
        for pk in pks:
            try:
                with transaction.atomic():
                    did = step(pk)
            except SKIP_ERRORS:
                counts["skipped"] += 1
            except ApplicationError as exc:
                logger.warning("%s #%s: %s", queryset.model._meta.label, pk, exc)
                counts["failed"] += 1
            else:
                counts[done if did else "skipped"] += 1
        if len(pks) < batch_size:
            break
        last_pk = pks[-1]
    return counts


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
