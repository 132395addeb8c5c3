"""`manage.py schedules` registers every periodic task by name; running it again changes nothing."""

from datetime import timedelta
from io import StringIO
from unittest import mock

import pytest
from django.core.management import call_command
from django.utils import timezone
from django.utils.module_loading import import_string
from django_q.models import Schedule

from marketplace.core.schedules import PREFIX, SCHEDULES, ScheduleSpec, schedules_sync

pytestmark = pytest.mark.django_db


def rows():
    return {
        s.name: (s.pk, s.func, s.schedule_type, s.minutes, s.repeats, s.next_run)
        for s in Schedule.objects.filter(name__startswith=PREFIX)
    }


def run_command() -> str:
    out = StringIO()
    call_command("schedules", stdout=out)
    return out.getvalue()


def test_schedules_command_registers_every_schedule():
    # when the command runs on an empty table
    out = run_command()
    # then there is one minutes-schedule per entry, repeating forever, due now
    registered = {s.name: s for s in Schedule.objects.all()}
    assert set(registered) == {spec.full_name for spec in SCHEDULES}
    by_func = {s.func: s.minutes for s in registered.values()}
    assert by_func == {
        "marketplace.bookings.tasks.booking_timers_run": 1,
        "marketplace.payments.tasks.booking_expiry_run": 1,
        "marketplace.reviews.tasks.review_timers_run": 1,
        "marketplace.payments.tasks.gateway_calls_resume": 1,
        "marketplace.disputes.tasks.dispute_timers_run": 1,
        "marketplace.catalog.tasks.listing_timers_run": 5,
        "marketplace.notifications.tasks.outbox_flush": 1,
        "marketplace.payouts.tasks.payout_run": 60,
        "marketplace.payouts.tasks.ledger_reconcile_check": 60,
        "cms.tasks.publish_scheduled": 1,
        "marketplace.transfers.tasks.transfer_files_prune": 24 * 60,
    }
    assert all(s.schedule_type == Schedule.MINUTES and s.repeats == -1 for s in registered.values())
    assert f"{len(SCHEDULES)} created" in out


def test_schedules_command_twice_changes_nothing():
    # given the schedules registered once, and the cluster having moved one next_run on
    run_command()
    later = timezone.now() + timedelta(minutes=37)
    Schedule.objects.filter(name=f"{PREFIX}payout run").update(next_run=later, task="abc")
    before = rows()
    # when the command runs again
    out = run_command()
    # then the same rows with the same ids remain, and the cluster's next_run is untouched
    assert rows() == before
    assert Schedule.objects.count() == len(SCHEDULES)
    assert Schedule.objects.get(name=f"{PREFIX}payout run").next_run == later
    assert f"0 created, 0 updated, 0 deleted, {len(SCHEDULES)} unchanged" in out


def test_schedules_changed_interval_updates_the_row_in_place(settings):
    # given the payout run registered every 60 minutes, next due in 50
    run_command()
    row = Schedule.objects.get(name=f"{PREFIX}payout run")
    Schedule.objects.filter(pk=row.pk).update(next_run=timezone.now() + timedelta(minutes=50))
    # when the interval setting changes to 15 and the command runs
    settings.MARKETPLACE_PAYOUT_RUN_MINUTES = 15
    result = schedules_sync()
    # then the same row now runs every 15 minutes, due within 15 minutes; nothing else changed
    row.refresh_from_db()
    assert row.minutes == 15
    assert row.next_run <= timezone.now() + timedelta(minutes=15)
    assert result.updated == [f"{PREFIX}payout run"]
    assert len(result.unchanged) == len(SCHEDULES) - 1
    assert Schedule.objects.count() == len(SCHEDULES)


def test_schedules_removed_prefixed_schedule_is_deleted_others_kept():
    # given our schedules, a retired one of ours, a duplicate of ours and one added by hand
    run_command()
    Schedule.objects.create(name=f"{PREFIX}retired", func="marketplace.old.tasks.gone", schedule_type="I", minutes=1)
    keep = Schedule.objects.get(name=f"{PREFIX}booking timers")
    Schedule.objects.create(name=keep.name, func=keep.func, schedule_type="I", minutes=1)
    manual = Schedule.objects.create(name="one-off by an operator", func="math.floor", args="1")
    # when the command runs
    result = schedules_sync()
    # then the retired one and the duplicate are gone, the oldest row and the manual one stay
    assert Schedule.objects.filter(name__startswith=PREFIX).count() == len(SCHEDULES)
    assert Schedule.objects.filter(pk__in=[keep.pk, manual.pk]).count() == 2
    assert f"{PREFIX}retired" in result.deleted
    assert len(result.deleted) == 2


def test_schedules_changed_function_updates_row():
    # given a schedule list whose function path changes between two deploys
    spec = ScheduleSpec("probe", "math.floor", minutes=3)
    schedules_sync(specs=[spec])
    pk = Schedule.objects.get(name=spec.full_name).pk
    # when the definition changes
    schedules_sync(specs=[ScheduleSpec("probe", "math.ceil", minutes=3)])
    # then the same row carries the new function
    row = Schedule.objects.get(name=spec.full_name)
    assert (row.pk, row.func) == (pk, "math.ceil")


def test_schedules_bad_interval_is_refused(settings):
    settings.MARKETPLACE_RECONCILE_MINUTES = 0
    with pytest.raises(ValueError, match="positive"):
        schedules_sync()
    assert not Schedule.objects.exists()


@pytest.mark.parametrize("spec", SCHEDULES, ids=lambda spec: spec.func)
def test_schedules_task_paths_importable(spec):
    # every scheduled function exists at its dotted path (a typo would only fail inside the cluster)
    assert callable(import_string(spec.func))


def test_cms_publish_scheduled_calls_wagtail_command():
    from cms.tasks import publish_scheduled

    with mock.patch("cms.tasks.call_command") as call:
        publish_scheduled()
    assert call.call_args.args == ("publish_scheduled",)


def test_cms_publish_scheduled_runs_against_the_database():
    from cms.tasks import publish_scheduled

    # Wagtail's command runs for real: nothing is due, and it says so without error.
    assert isinstance(publish_scheduled(), str)


def test_schedules_run_now_runs_every_scheduled_task_once():
    # given a booking whose payment deadline has passed
    from marketplace.bookings.models import Booking
    from tests.factories.flows import booking_in

    booking = booking_in("pending_payment")
    Booking.objects.filter(pk=booking.pk).update(expires_at=timezone.now() - timedelta(minutes=1))
    out = StringIO()
    # when the command registers the schedules and runs each task here and now
    call_command("schedules", "--run-now", stdout=out)
    # then each task ran once, and the booking expiry timer did its work
    ran = [line for line in out.getvalue().splitlines() if line.startswith("ran ")]
    assert [line.split(":")[0] for line in ran] == [f"ran {spec.name}" for spec in SCHEDULES]
    assert "ran booking expiry: {'expired': 1," in out.getvalue()
    assert Booking.objects.get(pk=booking.pk).status == Booking.Status.EXPIRED
