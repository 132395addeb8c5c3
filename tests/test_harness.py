"""The test harnesses themselves: forked processes and a real django-q2 cluster."""

import os

import pytest
from django.db import connection
from django_q.conf import Conf
from django_q.models import Task
from django_q.tasks import async_task

from tests.processes import RemoteError, error_type_name, run_in_processes
from tests.qcluster import QCluster, wait_for


def _backend_pid():
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return os.getpid(), cursor.fetchone()[0]


def _boom():
    raise ValueError("nope")


@pytest.mark.django_db(transaction=True)
def test_processes_run_in_separate_processes_and_sessions():
    outcomes = run_in_processes(_backend_pid, _backend_pid)
    assert outcomes.all_ok()
    (pid_a, backend_a), (pid_b, backend_b) = (o.value for o in outcomes)
    assert len({pid_a, pid_b, os.getpid()}) == 3
    assert backend_a != backend_b


@pytest.mark.django_db(transaction=True)
def test_processes_bring_errors_back():
    outcomes = run_in_processes(_boom, _backend_pid)
    assert error_type_name(outcomes[0].error) == "ValueError"
    assert not isinstance(outcomes[0].error, RemoteError)
    assert outcomes[1].ok


@pytest.mark.cluster
@pytest.mark.django_db(transaction=True)
def test_qcluster_runs_a_task_from_the_orm_broker(monkeypatch):
    monkeypatch.setattr(Conf, "SYNC", False)
    with QCluster(database=connection.settings_dict):
        task_id = async_task("math.floor", 2.5)
        task = wait_for(lambda: Task.objects.filter(id=task_id).first(), timeout=20, message="the task result")
    assert task.success and task.result == 2
