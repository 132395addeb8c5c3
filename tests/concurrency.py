"""Fire calls from separate database connections and collect what happened; prove they overlapped.

STYLE.md asks that every transition be tested by firing it twice at once from two connections,
with exactly one winner. Use these from tests marked `@pytest.mark.django_db(transaction=True)`
(plain `django_db` wraps the test in one transaction that other connections cannot see). Pass
objects into the calls, not querysets evaluated in the main thread's transaction: the rows must be
committed before the threads start (with `transaction=True` every service call commits), and load
related objects (actors) in the test, not lazily inside the threads.

`run_overlapping(first, second)`: the race, made deterministic and proven
--------------------------------------------------------------------------
A race fired at "the same moment" only shows that one call won; it cannot show that the two
transactions were ever open together (the second may simply have started after the first
committed, and a service that forgot its `select_for_update` would pass as well). So:

    from tests.concurrency import run_overlapping

    overlap = run_overlapping(
        lambda: listing_approve(listing=listing, actor=first),
        lambda: listing_approve(listing=listing, actor=second),
    )
    winner, loser = overlap.one_winner()              # exactly one returned, one raised
    assert (winner.index, loser.index) == (0, 1)      # the first always goes first
    assert overlap.wait.waiting_for == ("Lock", "SELECT", "catalog_listing")  # seen in pg_stat_activity

1. Thread A (its own connection) runs `first()` inside an outer `transaction.atomic()`. The
   service opens its own `transaction.atomic()`, which is now only a savepoint, so the row locks
   it takes (`SELECT ... FOR UPDATE`) are held until the outer block ends. After `first()` has
   returned, thread A blocks on an event, before its commit, still holding every lock.
2. Thread B (its own connection) reads its `pg_backend_pid()`, then calls `second()`.
3. A watcher (a third connection, in autocommit so each read is fresh) polls `pg_stat_activity`
   for B's pid until B shows `wait_event_type = 'Lock'` and `pg_blocking_pids()` names A's
   session, twice in a row (the view reads the wait live but the query from an earlier copy).
   That row is kept as evidence (`overlap.wait`: pid, wait_event_type, wait_event, query, the
   blocking pids, and from pg_locks the table of the row B queued for).
4. Only then is A released to commit; B's lock is granted, B sees A's committed row, and both
   outcomes are collected.

If B finishes without ever waiting on a lock held by A (the service does not lock the row, or
locks another one), or is not seen waiting within `wait_timeout`, `run_overlapping` fails the
test with what B did instead. If `first()` raises, the test fails too: a first call that does not
succeed holds nothing (its savepoint is rolled back, releasing its locks), so no overlap can be
shown. B cannot finish its wait before it is seen: A holds its locks until the watcher releases it.

What the outer block changes, and what it does not: the first call's commit (and so its
`transaction.on_commit` side effects, which run in thread A after the outer commit) happens when
A is released, not when the service returns. A service that commits in two steps (record an
attempt, commit, call the gateway, record the outcome) runs as one transaction in A; B then sees
only its final state. For such a service (or one that refuses to run inside a transaction) pass
`hold="first_lock"`: A then runs `first()` as it is, with no outer block, and pauses right after
its first locking statement (`SELECT ... FOR UPDATE`/`FOR SHARE`, seen through
`connection.execute_wrapper`) inside the service's own transaction; once released it carries on
and commits by itself. B must then need that first lock. The order is fixed either way (the
first call always takes the lock first); to test both serial orders of two different
transitions, run the race twice with the calls swapped.

`run_concurrently(*calls)`: calls released together
---------------------------------------------------
Each call runs in its own thread, so Django gives it its own connection; the threads wait on a
`threading.Barrier` and are released together, and the database, not the test, decides the
order. Use it for calls that do not contend for one row lock (tasks and timers sweeping many
rows, more than two callers); prefer `run_overlapping` for a transition fired twice.

    outcomes = run_concurrently(
        lambda: booking_accept(booking=booking, actor=provider),
        lambda: booking_accept(booking=booking, actor=provider),
    )
    winner, loser = outcomes.one_winner()        # asserts exactly one returned, one raised

Every thread closes its connections when it ends (an open one would keep the test database from
being flushed or dropped).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from django.db import connection, connections, transaction

DEFAULT_TIMEOUT = 30.0  # seconds; a deadlock or a lost wakeup fails the test instead of hanging it
WAIT_TIMEOUT = 10.0  # seconds for the second call to be seen waiting on the first call's lock
POLL_INTERVAL = 0.005  # seconds between two reads of pg_stat_activity


@dataclass
class Outcome:
    """What one concurrent call did: returned `value`, or raised `error`."""

    index: int
    value: Any = None
    error: BaseException | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


class Outcomes(list):
    """The outcomes of `run_concurrently`, in the order the calls were given."""

    @property
    def successes(self) -> list[Outcome]:
        return [o for o in self if o.ok]

    @property
    def failures(self) -> list[Outcome]:
        return [o for o in self if not o.ok]

    @property
    def errors(self) -> list[BaseException]:
        return [o.error for o in self.failures]

    def one_winner(self) -> tuple[Outcome, Outcome]:
        """Assert exactly one call returned and every other raised; return (winner, first loser)."""
        wins, losses = self.successes, self.failures
        assert len(wins) == 1 and len(losses) == len(self) - 1, (
            f"expected exactly one winner of {len(self)} concurrent calls, got {len(wins)}: "
            + "; ".join(f"#{o.index}: {'ok ' + repr(o.value) if o.ok else repr(o.error)}" for o in self)
        )
        return wins[0], losses[0]


def run_concurrently(*calls: Callable[[], Any], timeout: float = DEFAULT_TIMEOUT) -> Outcomes:
    """Run each call in its own thread and database connection, all released at the same moment.

    Returns one `Outcome` per call (same order). Exceptions raised by a call are captured, never
    re-raised here, so the test asserts on them. Raises AssertionError if a thread is still
    running after `timeout` seconds (a deadlock), and re-raises a failure to meet at the barrier.
    """
    if len(calls) < 2:
        raise ValueError("run_concurrently() needs at least two calls.")
    barrier = threading.Barrier(len(calls), timeout=timeout)
    outcomes = Outcomes(Outcome(index=i) for i in range(len(calls)))
    barrier_errors: list[BaseException] = []

    def worker(i: int, call: Callable[[], Any]) -> None:
        try:
            try:
                barrier.wait()
            except threading.BrokenBarrierError as exc:
                barrier_errors.append(exc)
                return
            try:
                outcomes[i].value = call()
            except BaseException as exc:  # noqa: BLE001 - the test asserts on whatever was raised
                outcomes[i].error = exc
        finally:
            # This thread's connections; closing them lets the test database be flushed afterwards.
            connections.close_all()

    threads = [
        threading.Thread(target=worker, args=(i, call), name=f"concurrent-{i}", daemon=True)
        for i, call in enumerate(calls)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    stuck = [t.name for t in threads if t.is_alive()]
    assert not stuck, f"concurrent calls still running after {timeout}s (deadlock?): {', '.join(stuck)}"
    if barrier_errors:
        raise barrier_errors[0]
    return outcomes


def run_twice(call: Callable[[], Any], *, timeout: float = DEFAULT_TIMEOUT) -> Outcomes:
    """The same call fired twice at once: `run_concurrently(call, call)`."""
    return run_concurrently(call, call, timeout=timeout)


# --- run_overlapping ------------------------------------------------------------------------------

# The session's activity, who blocks it, and the tables of the rows it has queued for: a session
# waiting for a row lock holds the row's tuple lock while it waits for the holder's transaction.
_ACTIVITY_SQL = """
    SELECT a.pid, a.wait_event_type, a.wait_event, a.state, a.query, pg_blocking_pids(a.pid),
           ARRAY(
               SELECT DISTINCT l.relation::regclass::text FROM pg_locks l
               WHERE l.pid = a.pid AND l.locktype = 'tuple' AND l.granted
           )
    FROM pg_stat_activity a
    WHERE a.pid = %s
"""
_LOCKING_RE = re.compile(r"\bFOR\s+(?:NO\s+KEY\s+UPDATE|UPDATE|KEY\s+SHARE|SHARE)\b", re.IGNORECASE)
_TABLE_RE = re.compile(r'\b(?:FROM|UPDATE|INTO)\s+"([^"]+)"', re.IGNORECASE)


@dataclass(frozen=True)
class LockWait:
    """The `pg_stat_activity` row of the second call's session, seen waiting on the first's lock."""

    pid: int
    wait_event_type: str
    wait_event: str
    query: str
    blocked_by: tuple[int, ...]
    holder_pid: int
    row_lock_tables: tuple[str, ...] = ()

    @property
    def table(self) -> str | None:
        """The table of the row the session waits to lock (from pg_locks), else the first table its
        statement names (`FROM`, `UPDATE`, `INSERT INTO`): pg_stat_activity keeps only the first
        `track_activity_query_size` bytes (1 kB) of the query, so a long `SELECT ... FOR UPDATE`
        often loses its tail."""
        if len(self.row_lock_tables) == 1:
            return self.row_lock_tables[0]
        match = _TABLE_RE.search(self.query)
        return match.group(1) if match else None

    @property
    def statement(self) -> str | None:
        """The waiting statement's first keyword: SELECT (a locking read), UPDATE, INSERT, ..."""
        words = self.query.split(None, 1)
        return words[0].upper() if words else None

    @property
    def waiting_for(self) -> tuple[str, str | None, str | None]:
        """(wait_event_type, statement, table): `("Lock", "SELECT", "bookings_booking")` for a
        `SELECT ... FOR UPDATE` of a booking row waiting on the first call's lock. A service that
        reads without locking and then writes waits at its UPDATE instead (a lost update)."""
        return self.wait_event_type, self.statement, self.table


class Overlap(Outcomes):
    """The two outcomes of `run_overlapping` (first, second), and `wait`: the proof they overlapped."""

    wait: LockWait


def _backend_pid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def _describe(outcome: Outcome) -> str:
    return f"returned {outcome.value!r}" if outcome.ok else f"raised {outcome.error!r}"


def _watch_for_lock_wait(*, pid: int, holder_pid: int, second_done: Callable[[], bool], timeout: float):
    """Poll pg_stat_activity (from this thread's own connection, in autocommit) until `pid` waits on
    a lock held by `holder_pid`. Returns (LockWait or None, the last row seen).

    A wait is taken from the second sighting in a row: pg_stat_activity reads the wait event live
    but the query and state from a copy taken when the read began, so the first sighting may pair
    the lock wait with the statement before it (`BEGIN`). The session is still blocked at the
    second read (the first call holds its locks until released), so that row is consistent.
    """
    deadline = time.monotonic() + timeout
    last, sightings = None, 0
    try:
        with connection.cursor() as cursor:
            while True:
                cursor.execute(_ACTIVITY_SQL, [pid])
                last = cursor.fetchone()
                waiting = (
                    last is not None and last[1] == "Lock" and last[3] == "active" and holder_pid in (last[5] or ())
                )
                sightings = sightings + 1 if waiting else 0
                if sightings == 2:
                    _, wait_event_type, wait_event, _, query, blocked_by, row_lock_tables = last
                    wait = LockWait(
                        pid=pid,
                        wait_event_type=wait_event_type,
                        wait_event=wait_event,
                        query=query,
                        blocked_by=tuple(blocked_by),
                        holder_pid=holder_pid,
                        row_lock_tables=tuple(row_lock_tables),
                    )
                    return wait, last
                if not waiting and (second_done() or time.monotonic() > deadline):
                    return None, last
                if not waiting:
                    time.sleep(POLL_INTERVAL)
    finally:
        connections.close_all()


def run_overlapping(
    first: Callable[[], Any],
    second: Callable[[], Any],
    *,
    hold: str = "transaction",
    timeout: float = DEFAULT_TIMEOUT,
    wait_timeout: float = WAIT_TIMEOUT,
) -> Overlap:
    """Run `first` holding its locks until `second` is seen waiting on one of them, then let both finish.

    `hold="transaction"` (the default) runs `first` inside an outer `transaction.atomic()` and holds
    every lock it took until released; `hold="first_lock"` pauses `first` inside its own transaction
    right after its first locking statement, and lets it carry on (and commit) by itself.

    Returns an `Overlap`: the two outcomes (first, second) and `wait`, the pg_stat_activity row of
    the second call's session while it waited. Fails the test (AssertionError) if `first` raises
    before it holds its locks (or, with "first_lock", never locks), if `second` is never seen
    waiting on a lock held by `first`'s session within `wait_timeout`, or if a thread is still
    running after `timeout` (a deadlock). See the module docstring.
    """
    if hold not in ("transaction", "first_lock"):
        raise ValueError(f"hold must be 'transaction' or 'first_lock', not {hold!r}")
    if connection.vendor != "postgresql":
        raise RuntimeError("run_overlapping() reads pg_stat_activity: it needs PostgreSQL.")
    overlap = Overlap([Outcome(index=0), Outcome(index=1)])
    holding, release, second_started = threading.Event(), threading.Event(), threading.Event()
    pids: dict[str, int] = {}
    problems: list[str] = []

    locked: list[str] = []  # the first call's first locking statement ("first_lock")

    def hold_until_released() -> None:
        holding.set()
        if not release.wait(timeout):
            raise TimeoutError(f"the first call was not released within {timeout}s")

    def pause_after_first_lock(execute, sql, params, many, context):
        result = execute(sql, params, many, context)
        if not locked and _LOCKING_RE.search(sql):
            locked.append(sql)
            hold_until_released()
        return result

    def hold_first() -> None:
        try:
            pids["first"] = _backend_pid()
            if hold == "transaction":
                with transaction.atomic():
                    value = first()
                    hold_until_released()
            else:
                with connection.execute_wrapper(pause_after_first_lock):
                    value = first()
            overlap[0].value = value
        except BaseException as exc:  # noqa: BLE001 - the test asserts on whatever was raised
            overlap[0].error = exc
        finally:
            holding.set()
            connections.close_all()

    def run_second() -> None:
        try:
            pids["second"] = _backend_pid()
            second_started.set()
            overlap[1].value = second()
        except BaseException as exc:  # noqa: BLE001
            overlap[1].error = exc
        finally:
            second_started.set()
            connections.close_all()

    def watch() -> None:
        wait, last = _watch_for_lock_wait(
            pid=pids["second"],
            holder_pid=pids["first"],
            second_done=lambda: not second_thread.is_alive(),
            timeout=wait_timeout,
        )
        if wait is None:
            problems.append(
                f"never seen waiting on a lock held by the first call (last pg_stat_activity row: {last!r})"
            )
        else:
            overlap.wait = wait

    first_thread = threading.Thread(target=hold_first, name="overlap-first", daemon=True)
    second_thread = threading.Thread(target=run_second, name="overlap-second", daemon=True)
    watcher = threading.Thread(target=watch, name="overlap-watcher", daemon=True)
    first_thread.start()
    try:
        if not holding.wait(timeout):
            problems.append(f"the first call did not return within {timeout}s")
        elif not overlap[0].ok:
            problems.append(f"the first call raised, so it held no lock: {overlap[0].error!r}")
        elif hold == "first_lock" and not locked:
            problems.append("the first call finished without a locking statement (SELECT ... FOR UPDATE)")
        else:
            second_thread.start()
            if not second_started.wait(timeout) or "second" not in pids:
                problems.append(f"the second call's session did not start: {overlap[1].error!r}")
            else:
                watcher.start()
                watcher.join(wait_timeout + timeout)
    finally:
        release.set()  # whatever happened, let the first call commit (or roll back) and end
        threads = [first_thread, *(t for t in (second_thread, watcher) if t.ident is not None)]
        for thread in threads:
            thread.join(timeout)
    stuck = [t.name for t in threads if t.is_alive()]
    assert not stuck, f"overlapping calls still running after {timeout}s (deadlock?): {', '.join(stuck)}"
    assert not problems, (
        "the second call was not shown waiting on the first call's lock before the first committed: "
        + "; ".join(problems)
        + f". First call: {_describe(overlap[0])}; second call: {_describe(overlap[1])}."
    )
    return overlap


__all__: Sequence[str] = [
    "LockWait",
    "Outcome",
    "Outcomes",
    "Overlap",
    "run_concurrently",
    "run_overlapping",
    "run_twice",
]
