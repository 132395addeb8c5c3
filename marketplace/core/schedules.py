"""The periodic django-q2 schedules of the platform, as data, and the one function that registers them.

`manage.py schedules` calls `schedules_sync()` on every deploy. Each schedule is found by its name;
names start with `PREFIX`, and a prefixed schedule that is no longer listed here is deleted. Schedules
without the prefix (added by hand in the admin) are never touched.
"""

from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from django_q.models import Schedule

PREFIX = "marketplace:"
# Any constant 64-bit number: serialises concurrent `schedules` runs (two replicas deploying at once).
_ADVISORY_LOCK_ID = 0x5C4ED01E


@dataclass(frozen=True)
class ScheduleSpec:
    """One periodic task: every `minutes` minutes, or every `getattr(settings, minutes_setting)` minutes."""

    name: str
    func: str
    minutes: int | None = None
    minutes_setting: str | None = None

    @property
    def full_name(self) -> str:
        return f"{PREFIX}{self.name}"

    def interval(self) -> int:
        """The interval in minutes, read from settings at sync time (not import time)."""
        minutes = getattr(settings, self.minutes_setting) if self.minutes_setting else self.minutes
        if not isinstance(minutes, int) or minutes < 1:
            raise ValueError(f"schedule {self.name}: interval must be a positive number of minutes, not {minutes!r}")
        return minutes


SCHEDULES: list[ScheduleSpec] = [
    ScheduleSpec("booking timers", "marketplace.bookings.tasks.booking_timers_run", minutes=1),
    ScheduleSpec("booking expiry", "marketplace.payments.tasks.booking_expiry_run", minutes=1),
    ScheduleSpec("review timers", "marketplace.reviews.tasks.review_timers_run", minutes=1),
    ScheduleSpec("gateway calls resume", "marketplace.payments.tasks.gateway_calls_resume", minutes=1),
    ScheduleSpec("dispute timers", "marketplace.disputes.tasks.dispute_timers_run", minutes=1),
    ScheduleSpec("listing timers", "marketplace.catalog.tasks.listing_timers_run", minutes=5),
    ScheduleSpec("notification outbox", "marketplace.notifications.tasks.outbox_flush", minutes=1),
    ScheduleSpec(
        "payout run", "marketplace.payouts.tasks.payout_run", minutes_setting="MARKETPLACE_PAYOUT_RUN_MINUTES"
    ),
    ScheduleSpec(
        "ledger reconciliation",
        "marketplace.payouts.tasks.ledger_reconcile_check",
        minutes_setting="MARKETPLACE_RECONCILE_MINUTES",
    ),
    ScheduleSpec("cms publish scheduled", "cms.tasks.publish_scheduled", minutes=1),
    ScheduleSpec("transfer files prune", "marketplace.transfers.tasks.transfer_files_prune", minutes=24 * 60),
]


@dataclass
class SyncResult:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)


def _desired(spec: ScheduleSpec) -> dict:
    # Every field that defines the schedule; `next_run` and `task` belong to the running cluster.
    return {
        "func": spec.func,
        "hook": None,
        "args": None,
        "kwargs": None,
        "schedule_type": Schedule.MINUTES,
        "minutes": spec.interval(),
        "repeats": -1,
        "cron": None,
        "cluster": None,
        "intended_date_kwarg": None,
    }


def schedules_sync(*, specs: list[ScheduleSpec] | None = None) -> SyncResult:
    """Make the prefixed `Schedule` rows match `specs` (default `SCHEDULES`). Running it twice changes nothing.

    A missing schedule is created to run now; a changed one is updated in place (same id) and, when
    its interval shrank, brought forward so the new interval holds; an unchanged one is not written at
    all (its `next_run` stays); a prefixed one no longer listed is deleted, as are duplicate rows of
    one name (the oldest is kept).
    """
    specs = SCHEDULES if specs is None else specs
    names = [spec.full_name for spec in specs]
    if len(set(names)) != len(names):
        raise ValueError(f"schedule names must be unique: {names}")
    result = SyncResult()
    now = timezone.now()
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_ADVISORY_LOCK_ID])
        existing: dict[str, Schedule] = {}
        for row in Schedule.objects.select_for_update().filter(name__startswith=PREFIX).order_by("pk"):
            if row.name in existing:
                row.delete()
                result.deleted.append(f"{row.name} (duplicate #{row.pk})")
            else:
                existing[row.name] = row
        for spec in specs:
            desired = _desired(spec)
            row = existing.pop(spec.full_name, None)
            if row is None:
                Schedule.objects.create(name=spec.full_name, next_run=now, **desired)
                result.created.append(spec.full_name)
                continue
            changed = [name for name, value in desired.items() if getattr(row, name) != value]
            if not changed:
                result.unchanged.append(spec.full_name)
                continue
            for name in changed:
                setattr(row, name, desired[name])
            soonest = now + timedelta(minutes=desired["minutes"])
            if row.next_run is None or row.next_run > soonest:
                row.next_run = soonest
                changed.append("next_run")
            row.save(update_fields=changed)
            result.updated.append(spec.full_name)
        for name, row in existing.items():
            row.delete()
            result.deleted.append(name)
    return result
