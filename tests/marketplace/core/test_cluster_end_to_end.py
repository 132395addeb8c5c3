"""End to end: a real qcluster (ORM broker, PostgreSQL) runs the registered schedules.

The schedules come from `manage.py schedules`. django-q2's own scheduler function queues what is
due (the cluster's sentinel calls the same function every 30 seconds; the test calls it once so it
need not wait for that tick), and the cluster's workers pick the tasks up within the broker's poll
interval: a booking past its payment deadline expires, and a dispute past its ops SLA is escalated
to the lead queue with its notifications.
"""

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone
from django_q.brokers import get_broker
from django_q.conf import Conf
from django_q.models import Schedule, Task
from django_q.scheduler import scheduler

from marketplace.audit.models import Event
from marketplace.bookings.models import Booking
from marketplace.disputes.models import Dispute
from marketplace.notifications.models import Notification
from tests.factories.flows import booking_in
from tests.factories.settlement import dispute_in
from tests.qcluster import QCluster, wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.django_db(transaction=True)]

POLL = 0.5  # seconds: the cluster's broker poll interval in this test
SLACK = 1.0  # seconds allowed on top of the poll interval for the sweep itself and process start


def test_qcluster_picks_up_scheduled_booking_expiry_and_dispute_escalation(monkeypatch):
    monkeypatch.setattr(Conf, "SYNC", False)  # the test process only queues; the cluster works
    past = timezone.now() - timedelta(minutes=1)
    booking = booking_in("pending_payment")
    Booking.objects.filter(pk=booking.pk).update(expires_at=past)
    dispute = dispute_in(Dispute.Status.OPENED)
    Dispute.objects.filter(pk=dispute.pk).update(sla_due_at=past)
    call_command("schedules")
    assert Schedule.objects.filter(func="marketplace.payments.tasks.booking_expiry_run").count() == 1
    Schedule.objects.update(next_run=past)  # every schedule is due

    with QCluster(database=connection.settings_dict, env={"Q_POLL": str(POLL)}, workers=2):
        queued_at = timezone.now()
        scheduler(broker=get_broker())
        wait_for(
            lambda: (
                Booking.objects.get(pk=booking.pk).status == Booking.Status.EXPIRED
                and Dispute.objects.get(pk=dispute.pk).status == Dispute.Status.ESCALATED
            ),
            timeout=30,
            message="the booking to expire and the dispute to escalate",
        )
        tasks = {
            func: wait_for(lambda f=func: Task.objects.filter(func=f).first(), timeout=10, message=f"{func} result")
            for func in (
                "marketplace.payments.tasks.booking_expiry_run",
                "marketplace.disputes.tasks.dispute_timers_run",
            )
        }

    for func, task in tasks.items():
        assert task.success, task.result
        pickup = (task.started - queued_at).total_seconds()
        assert pickup <= POLL + SLACK, f"{func} started {pickup:.2f}s after it was queued (poll {POLL}s)"
        print(
            f"{func}: started {pickup:.2f}s after it was queued, ran {(task.stopped - task.started).total_seconds():.2f}s"
        )
    assert tasks["marketplace.payments.tasks.booking_expiry_run"].result["expired"] == 1
    assert tasks["marketplace.disputes.tasks.dispute_timers_run"].result["escalated"] == 1
    assert Event.objects.filter(verb="booking.expire", target_id=str(booking.pk)).count() == 1
    assert Event.objects.filter(verb="dispute.escalate", target_id=str(dispute.pk)).count() == 1
    dispute.refresh_from_db()
    assert dispute.assignee_id is None  # the lead queue
    assert Notification.objects.filter(verb__startswith="dispute.escalat", target_id=str(dispute.pk)).exists()
