"""The helpers in tests/concurrency.py: separate connections, a shared start, captured errors, and
the proof that two transactions overlapped (the second seen waiting on the first's row lock)."""

import threading

import pytest
from django.db import connection, transaction

from marketplace.partners.models import Partner
from tests.concurrency import run_concurrently, run_overlapping, run_twice
from tests.factories import PartnerFactory


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


# --- run_overlapping ------------------------------------------------------------------------------


def _lock_partner(pk: int) -> str:
    with transaction.atomic():
        return Partner.objects.select_for_update().get(pk=pk).name


def _rename_partner(pk: int, name: str) -> int:
    with transaction.atomic():
        partner = Partner.objects.select_for_update().get(pk=pk)
        partner.name = name
        partner.save(update_fields=["name"])
        return _backend_pid()


@pytest.mark.django_db(transaction=True)
def test_run_overlapping_sees_the_second_call_wait_on_the_first_calls_row_lock():
    # given a committed row
    partner = PartnerFactory(name="Before")

    # when the first call renames it under a row lock and the second locks it too
    overlap = run_overlapping(
        lambda: _rename_partner(partner.pk, "After"),
        lambda: _lock_partner(partner.pk),
    )

    # then the second session was seen waiting on the first one's transaction, on that row's table
    wait = overlap.wait
    assert wait.waiting_for == ("Lock", "SELECT", "partners_partner")
    assert (wait.wait_event, wait.row_lock_tables) == ("transactionid", ("partners_partner",))
    assert "FOR UPDATE" in wait.query
    assert wait.blocked_by == (wait.holder_pid,) and wait.pid != wait.holder_pid
    # and the first call's session was the holder; the second read the row only after the first committed
    first, second = overlap
    assert (first.value, second.value) == (wait.holder_pid, "After")


@pytest.mark.django_db(transaction=True)
def test_run_overlapping_shows_a_write_without_a_locking_read_waiting_at_its_update():
    # given a row, and a second call that reads it without a lock and then writes it (a lost update)
    partner = PartnerFactory(name="Before")

    def read_then_write():
        with transaction.atomic():
            row = Partner.objects.get(pk=partner.pk)
            Partner.objects.filter(pk=row.pk).update(name=row.name + " and after")

    # when
    overlap = run_overlapping(lambda: _rename_partner(partner.pk, "After"), read_then_write)

    # then it waited, but at its UPDATE, having read the row before the first committed
    assert overlap.wait.waiting_for == ("Lock", "UPDATE", "partners_partner")
    assert Partner.objects.get(pk=partner.pk).name == "Before and after"


@pytest.mark.django_db(transaction=True)
def test_run_overlapping_fails_when_the_second_call_takes_no_lock():
    # given a row, and a second call that only reads it (no SELECT ... FOR UPDATE)
    partner = PartnerFactory(name="Before")

    # when / then the second call never waits (it reads the last committed name), so no overlap is shown
    with pytest.raises(AssertionError, match="was not shown waiting on the first call's lock") as failure:
        run_overlapping(
            lambda: _rename_partner(partner.pk, "After"),
            lambda: Partner.objects.get(pk=partner.pk).name,
        )
    assert "second call: returned 'Before'" in str(failure.value)


@pytest.mark.django_db(transaction=True)
def test_run_overlapping_fails_when_the_second_call_locks_another_row():
    # given two rows
    locked, other = PartnerFactory(), PartnerFactory()

    # when / then the second call takes its own row's lock at once and finishes without waiting
    with pytest.raises(AssertionError, match="never seen waiting on a lock held by the first call") as failure:
        run_overlapping(lambda: _lock_partner(locked.pk), lambda: _lock_partner(other.pk))
    assert f"second call: returned {other.name!r}" in str(failure.value)


@pytest.mark.django_db(transaction=True)
def test_run_overlapping_fails_when_the_first_call_raises():
    # given a first call that fails (so its savepoint, and every lock it took, is rolled back)
    partner = PartnerFactory()

    # when / then
    with pytest.raises(AssertionError, match=r"the first call raised, so it held no lock: ZeroDivisionError"):
        run_overlapping(lambda: 1 / 0, lambda: _lock_partner(partner.pk))
    # and the row is untouched
    assert Partner.objects.get(pk=partner.pk).name == partner.name


@pytest.mark.django_db(transaction=True)
def test_run_overlapping_first_lock_pauses_the_first_call_inside_its_own_transaction():
    # given a row, and a first call that commits its locked write, then works on in a second transaction
    partner = PartnerFactory(name="Before")

    def rename_then_record():
        with transaction.atomic():
            row = Partner.objects.select_for_update().get(pk=partner.pk)
            row.name = "After"
            row.save(update_fields=["name"])
        with transaction.atomic():  # like recording a gateway's answer after the call
            Partner.objects.filter(pk=partner.pk).update(slug=f"{partner.slug}-recorded")
        return transaction.get_connection().in_atomic_block

    # when the second call locks the row while the first is paused after its SELECT ... FOR UPDATE
    overlap = run_overlapping(rename_then_record, lambda: _lock_partner(partner.pk), hold="first_lock")

    # then the second waited on that lock; the first ran with no outer block and committed by itself
    assert overlap.wait.waiting_for == ("Lock", "SELECT", "partners_partner")
    first, second = overlap
    assert (first.value, second.value) == (False, "After")
    assert Partner.objects.get(pk=partner.pk).slug == f"{partner.slug}-recorded"


@pytest.mark.django_db(transaction=True)
def test_run_overlapping_first_lock_fails_when_the_first_call_never_locks():
    # given a first call that only reads
    partner = PartnerFactory()

    # when / then
    with pytest.raises(AssertionError, match=r"the first call finished without a locking statement"):
        run_overlapping(
            lambda: Partner.objects.get(pk=partner.pk).name, lambda: _lock_partner(partner.pk), hold="first_lock"
        )
