"""/api/health/ through HTTP: one word per check, 503 only when the database or cache is down."""

import json

import pytest
from django.db import connection
from django.test import override_settings
from django_q.conf import Conf
from django_q.tasks import async_task

from tests.qcluster import QCluster, wait_for

URL = "/api/health/"
UNREACHABLE_REDIS = {
    "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": "redis://127.0.0.1:1"},
}


def _body(response) -> dict:
    return json.loads(response.content)


@pytest.mark.django_db
def test_health_without_cluster_is_degraded_but_200(client, django_assert_num_queries):
    # given: database and cache up, no task cluster running in tests
    # when
    with django_assert_num_queries(2):  # SELECT 1, the newest finished task
        response = client.get(URL)
    # then
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert _body(response) == {
        "status": "degraded",
        "checks": {"database": "ok", "cache": "ok", "task_cluster": "stale"},
    }
    assert "Set-Cookie" not in response.headers
    assert not response.cookies
    assert "no-store" in response["Cache-Control"]


@pytest.mark.django_db
def test_health_head_and_other_methods(client):
    assert client.head(URL).status_code == 200
    assert client.post(URL).status_code == 405


@pytest.mark.django_db
def test_health_cache_down_is_503_without_leaks(client):
    # given: the default cache points at a closed port
    with override_settings(CACHES=UNREACHABLE_REDIS):
        # when
        response = client.get(URL)
    # then
    assert response.status_code == 503
    body = _body(response)
    assert body == {"status": "down", "checks": {"database": "ok", "cache": "down", "task_cluster": "stale"}}
    text = response.content.decode()
    for leak in ("Traceback", "Error", "redis", "127.0.0.1", "localhost", "postgres", "version"):
        assert leak.lower() not in text.lower()
    assert "Set-Cookie" not in response.headers


@pytest.mark.cluster
@pytest.mark.django_db(transaction=True)
def test_health_with_running_cluster_is_ok(client, monkeypatch):
    # given: a real django-q2 cluster (ORM broker) that has finished a task
    monkeypatch.setattr(Conf, "SYNC", False)
    with QCluster(database=connection.settings_dict, env={"Q_POLL": "0.2"}):
        async_task("math.floor", 1.5)
        from django_q.models import Task

        wait_for(lambda: Task.objects.filter(func="math.floor").exists(), timeout=30, message="the task to finish")
        # when
        response = client.get(URL)
    # then
    assert response.status_code == 200
    assert _body(response) == {"status": "ok", "checks": {"database": "ok", "cache": "ok", "task_cluster": "ok"}}


@pytest.mark.django_db
@override_settings(MARKETPLACE_HEALTH_TASK_HEARTBEAT_SECONDS=60)
def test_health_old_task_is_stale(client):
    # given: the newest finished task is older than the heartbeat window
    from datetime import timedelta

    from django.utils import timezone
    from django_q.models import Task

    long_ago = timezone.now() - timedelta(seconds=61)
    Task.objects.create(id="a" * 32, name="old", func="math.floor", started=long_ago, stopped=long_ago, success=True)
    # when
    response = client.get(URL)
    # then
    assert _body(response)["checks"]["task_cluster"] == "stale"
    assert response.status_code == 200
