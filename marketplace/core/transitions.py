"""The one shape every state transition has (see STYLE.md).

with transaction.atomic():
    booking = lock(Booking, booking.pk)          # SELECT ... FOR UPDATE, pk order
    target = guard(booking, TRANSITIONS, "accept")   # TRANSITIONS["accept"] = ({sources}, target)
    booking.status = target
    booking.save(update_fields=[...])
    event_record(...)                             # audit
    transaction.on_commit(...)                    # side effects
"""

from collections.abc import Iterable, Mapping

from django.db import models, transaction

from marketplace.core.exceptions import TransitionNotAllowed


def lock(model: type[models.Model], pk, *, related: Iterable[str] = ()) -> models.Model:
    """Re-read one row under `SELECT ... FOR UPDATE`; the caller must be inside a transaction."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("lock() must be called inside transaction.atomic()")
    qs = (
        model._default_manager.select_for_update(of=("self",))
        if related
        else model._default_manager.select_for_update()
    )
    if related:
        qs = qs.select_related(*related)
    return qs.get(pk=pk)


def lock_many(model: type[models.Model], pks: Iterable) -> list[models.Model]:
    """Lock several rows in primary-key order, so two transactions never deadlock on them."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("lock_many() must be called inside transaction.atomic()")
    return list(model._default_manager.select_for_update().filter(pk__in=list(pks)).order_by("pk"))


Table = Mapping[str, tuple[Iterable[str], str]]


def guard(obj, table: Table, transition: str, *, detail: str = "") -> str:
    """Return the target state of `transition`, or raise TransitionNotAllowed from `obj.status`.

    `table` maps a transition name to (the states it may start from, the state it leads to).
    """
    sources, target = table[transition]
    if obj.status not in sources:
        raise TransitionNotAllowed(obj, transition, detail=detail)
    return target
