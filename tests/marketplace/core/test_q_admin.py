"""django-q2's tasks, failures, schedules and queue render in the unfold admin, with their features."""

import pytest
from django.contrib import admin
from django.urls import reverse
from django.utils import timezone
from django_q import admin as q_admin
from django_q.models import Failure, OrmQ, Schedule, Success
from django_q.signing import SignedPackage
from unfold.admin import ModelAdmin

from marketplace.core.q_admin import FailureAdmin

pytestmark = pytest.mark.django_db

# unfold's base template loads its stylesheet and Alpine.js; plain Django admin has neither.
UNFOLD_MARKER = "unfold/css/styles.css"


@pytest.fixture
def superuser(django_user_model):
    return django_user_model.objects.create_superuser(email="root@example.com", password="x")


def make_task(*, success: bool, name: str):
    now = timezone.now()
    model = Success if success else Failure
    return model.objects.create(
        id=name.ljust(32, "0")[:32],
        name=name,
        func="math.floor",
        args=(1,),
        kwargs={},
        started=now,
        stopped=now,
        success=success,
        result="boom" if not success else 1,
        attempt_count=1,
    )


@pytest.mark.parametrize("model", [Success, Failure, Schedule, OrmQ])
def test_q_admin_models_use_unfold_and_django_q_admins(model):
    model_admin = admin.site._registry[model]
    assert isinstance(model_admin, ModelAdmin)
    assert type(model_admin).__mro__[1].__module__ == q_admin.__name__


def test_q_admin_changelists_and_change_pages_render_in_unfold(client, superuser):
    # given a success, a failure, a schedule and a queued task
    ok = make_task(success=True, name="ok-task")
    failed = make_task(success=False, name="failed-task")
    schedule = Schedule.objects.create(name="probe", func="math.floor", schedule_type="I", minutes=5)
    package = {"id": "q1", "name": "queued-task", "func": "math.floor", "args": (1,), "kwargs": {}, "group": None}
    queued = OrmQ.objects.create(key="marketplace", payload=SignedPackage.dumps(package), lock=None)
    client.force_login(superuser)
    pages = {
        "success": ok.pk,
        "failure": failed.pk,
        "schedule": schedule.pk,
        "ormq": queued.pk,
    }
    for model_name, pk in pages.items():
        # when the superuser opens the changelist and the change page
        for url in (
            reverse(f"admin:django_q_{model_name}_changelist"),
            reverse(f"admin:django_q_{model_name}_change", args=[pk]),
        ):
            response = client.get(url)
            # then both render through unfold
            assert response.status_code == 200, url
            assert UNFOLD_MARKER in response.content.decode(), url


def test_q_admin_failure_keeps_resubmit_action(client, superuser, monkeypatch):
    # given a failed task
    failed = make_task(success=False, name="failed-again")
    submitted = []
    monkeypatch.setattr(q_admin, "async_task", lambda func, *args, **kwargs: submitted.append((func, args)))
    client.force_login(superuser)
    changelist = reverse("admin:django_q_failure_changelist")
    assert "resubmit_task" in client.get(changelist).content.decode()
    # when the operator resubmits it from the changelist
    response = client.post(changelist, {"action": "resubmit_task", "_selected_action": [failed.pk]})
    # then it is queued again and the failure row is gone
    assert response.status_code == 302
    assert submitted == [("math.floor", (1,))]
    assert not Failure.objects.filter(pk=failed.pk).exists()
    assert issubclass(FailureAdmin, q_admin.FailAdmin)
