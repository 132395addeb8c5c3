"""Fire calls at the same moment from separate database connections and collect what happened.

STYLE.md asks that every transition be tested by firing it twice at once from two connections,
with exactly one winner. Use this from tests marked `@pytest.mark.django_db(transaction=True)`
(plain `django_db` wraps the test in one transaction that other connections cannot see):

    from tests.concurrency import run_concurrently

    outcomes = run_concurrently(
        lambda: booking_accept(booking=booking, actor=provider),
        lambda: booking_accept(booking=booking, actor=provider),
    )
    winner, loser = outcomes.one_winner()        # asserts exactly one returned, one raised
    assert isinstance(loser.error, TransitionNotAllowed)

Each call runs in its own thread, so Django gives it its own connection; the threads wait on a
`threading.Barrier` and are released together, so both reach `SELECT ... FOR UPDATE` at about the
same time and the database, not the test, decides the order. Each thread closes its connection
when it ends (an open one would keep the test database from being flushed or dropped).

Pass objects into the calls, not querysets evaluated in the main thread's transaction: the rows
must be committed before the threads start (with `transaction=True` every service call commits).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from django.db import connections

DEFAULT_TIMEOUT = 30.0  # seconds; a deadlock or a lost wakeup fails the test instead of hanging it


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


__all__: Sequence[str] = ["Outcome", "Outcomes", "run_concurrently", "run_twice"]
