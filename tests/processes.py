"""Fire calls at the same moment from separate OS processes, each with its own database session.

Issue 3 asks that every task run "twice concurrently from two processes" has its effect once.
`run_in_processes` forks one child per call (the fork start method, so closures need no pickling),
holds them at a barrier and releases them together. Use it from tests marked
`@pytest.mark.django_db(transaction=True)`: the children only see committed rows.

    from tests.processes import run_in_processes

    outcomes = run_in_processes(lambda: booking_timers_run(), lambda: booking_timers_run())
    assert outcomes.all_ok()

Each outcome carries what the child returned (pickled back; unpicklable values come back as their
repr) or the exception it raised (re-raised objects when they pickle, else a `RemoteError` that
keeps the type name and message). The parent closes its own connections before forking, so no
child ever talks over the parent's socket; the parent reconnects on its next query.
"""

from __future__ import annotations

import multiprocessing
import pickle
import queue as queue_module
import traceback
from collections.abc import Callable
from typing import Any

from django.db import connections

from tests.concurrency import Outcome, Outcomes

DEFAULT_TIMEOUT = 120.0


class RemoteError(Exception):
    """An exception raised in a child process that could not be pickled back as itself."""

    def __init__(self, type_name: str, message: str, tb: str = ""):
        super().__init__(f"{type_name}: {message}")
        self.type_name = type_name
        self.message = message
        self.traceback = tb


def error_type_name(error: BaseException | None) -> str | None:
    """The class name of an outcome's error, whether it came back as itself or as a RemoteError."""
    if error is None:
        return None
    return error.type_name if isinstance(error, RemoteError) else type(error).__name__


class ProcessOutcomes(Outcomes):
    def all_ok(self) -> bool:
        assert not self.failures, "child processes raised: " + "; ".join(
            f"#{o.index}: {o.error!r}\n{getattr(o.error, 'traceback', '')}" for o in self.failures
        )
        return True


def _portable(value: Any) -> Any:
    try:
        pickle.dumps(value)
        return value
    except Exception:  # noqa: BLE001 - anything unpicklable comes back as text
        return repr(value)


def _child(index: int, call: Callable[[], Any], barrier, results) -> None:
    try:
        barrier.wait()
        try:
            value = call()
            results.put((index, True, _portable(value)))
        except BaseException as exc:  # noqa: BLE001 - the parent asserts on it
            tb = traceback.format_exc()
            try:
                pickle.loads(pickle.dumps(exc))
                error: BaseException = exc
            except Exception:  # noqa: BLE001
                error = RemoteError(type(exc).__name__, str(exc), tb)
            results.put((index, False, error))
    finally:
        connections.close_all()


def run_in_processes(*calls: Callable[[], Any], timeout: float = DEFAULT_TIMEOUT) -> ProcessOutcomes:
    """Run each call in its own forked process, all released at one barrier; collect the outcomes."""
    if len(calls) < 2:
        raise ValueError("run_in_processes() needs at least two calls.")
    ctx = multiprocessing.get_context("fork")
    connections.close_all()
    barrier = ctx.Barrier(len(calls), timeout=timeout)
    results = ctx.Queue()
    processes = [
        ctx.Process(target=_child, args=(i, call, barrier, results), daemon=True) for i, call in enumerate(calls)
    ]
    for process in processes:
        process.start()
    outcomes = ProcessOutcomes(Outcome(index=i) for i in range(len(calls)))
    received = 0
    try:
        while received < len(calls):
            try:
                index, ok, payload = results.get(timeout=timeout)
            except queue_module.Empty:
                raise AssertionError(f"child processes still running after {timeout}s (deadlock?)") from None
            if ok:
                outcomes[index].value = payload
            else:
                outcomes[index].error = payload
            received += 1
    finally:
        for process in processes:
            process.join(5)
            if process.is_alive():
                process.kill()
    crashed = [p.exitcode for p in processes if p.exitcode not in (0, None)]
    assert not crashed, f"a child process died with exit code {crashed}"
    return outcomes


def run_twice_in_processes(call: Callable[[], Any], *, timeout: float = DEFAULT_TIMEOUT) -> ProcessOutcomes:
    """The same call fired twice at once from two processes."""
    return run_in_processes(call, call, timeout=timeout)
