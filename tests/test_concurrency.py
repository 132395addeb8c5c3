"""The helper in tests/concurrency.py: separate connections, a shared start, captured errors."""

import threading

import pytest
from django.db import connection

from tests.concurrency import run_concurrently, run_twice


def _backend_pid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


@pytest.mark.django_db(transaction=True)
def test_run_concurrently_gives_each_call_its_own_connection():
    # given / when
    outcomes = run_twice(_backend_pid)
    # then two database sessions, neither of them the test's own
    pids = {o.value for o in outcomes}
    assert len(pids) == 2 and _backend_pid() not in pids


def test_run_concurrently_releases_the_calls_together():
    # given calls that each wait for the other to have started
    both_started = threading.Barrier(2, timeout=5)
    # when / then neither times out, so both were running at the same time
    outcomes = run_concurrently(both_started.wait, both_started.wait)
    assert all(o.ok for o in outcomes)


def test_run_concurrently_captures_errors_in_call_order():
    # given / when
    outcomes = run_concurrently(lambda: "won", lambda: 1 / 0, lambda: "also won")
    # then
    assert [o.ok for o in outcomes] == [True, False, True]
    assert isinstance(outcomes.errors[0], ZeroDivisionError)
    assert [o.value for o in outcomes.successes] == ["won", "also won"]


def test_one_winner_fails_when_both_calls_win():
    # given
    outcomes = run_twice(lambda: "ok")
    # when / then
    with pytest.raises(AssertionError, match="expected exactly one winner of 2 concurrent calls, got 2"):
        outcomes.one_winner()


def test_one_winner_returns_the_winner_and_the_loser():
    # given / when
    winner, loser = run_concurrently(lambda: 1 / 0, lambda: "ok").one_winner()
    # then
    assert (winner.index, winner.value) == (1, "ok")
    assert (loser.index, type(loser.error)) == (0, ZeroDivisionError)
