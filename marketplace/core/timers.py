"""`sweep`: the loop every timer of the marketplace runs its due rows through.

django-q2 delivers at least once: a sweep may run twice in a row, or twice at the same time in two
processes. So a sweep only *selects* due rows (a cheap, ordered, bounded query) and hands each one
to a step that, in its own transaction, locks the row, checks again that it is still due and calls
the transition service. A twin that lost the race finds the row moved and skips it: every effect
(transition, audit event, notification, email) happens once.
"""

import logging
from collections.abc import Callable
from contextlib import nullcontext

from django.db import models, transaction

from marketplace.core.exceptions import ApplicationError, InvalidInput, TransitionNotAllowed

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
    atomic: bool = True,
) -> dict[str, int]:
    """Call `step(pk)` for each row of `queryset` (the due rows), each call in its own transaction.

    Rows are read in primary-key order by keyset batches, so a row that is skipped or fails is not
    read again in this run. `step` returns True when it did its work (counted under `done`) and
    False when the row, locked and re-read, was no longer due ("skipped"). A row a concurrent
    transaction moved raises TransitionNotAllowed or InvalidInput: "skipped" too. Any other refusal
    (a gateway error) is logged and counted as "failed"; the next run tries the row again.

    `atomic=False` calls `step` outside any transaction: a step that asks the payment gateway
    opens its own transactions around the call (see `marketplace.payments.services.calls`), and
    must lock and re-check the row itself.
    """
    batch_size = batch_size or BATCH_SIZE
    last_pk = 0
    for _ in range(max_batches or MAX_BATCHES):
        pks = list(queryset.filter(pk__gt=last_pk).order_by("pk").values_list("pk", flat=True)[:batch_size])
        for pk in pks:
            try:
                with transaction.atomic() if atomic else nullcontext():
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
