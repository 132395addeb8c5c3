"""The permission matrix, continued: people and files. Read test_admin_permission_matrix.py first:
the same roles, outcomes and objects (its `world`, built again for this module), the same style.

- People ("user"): "own" is a member of the own partner, "other" a member of the other one; a
  scoped role sees only the people connected to its scope (`user_for_user`), leads, Finance and
  superusers see everyone.
    history       the change history page (as the change page: 404 out of scope)
    password      the password page (accounts.change_user: superusers only)
    popup         the user list opened as a raw-id field's popup (`?_popup=1`): the row listed or not
    autocomplete  the owner filter's user autocomplete, searched by the person's email: offered
                  ("ok") or not ("hidden"); every user field's autocomplete reads the same list
- Files ("transfer"): the download view of an import or export job's private file. "own" is the
  user's own export, "other" another staff member's; "ok" is the file as an attachment. Only its
  author (or a superuser) may have it, and only while they hold a transfer permission (import or
  export): anyone else gets 404, as for a job that does not exist.
"""

import pytest
from django.core.files.base import ContentFile
from django.db import transaction
from django.urls import reverse

from marketplace.transfers.models import TransferJob
from tests.factories.settlement import staff
from tests.marketplace import test_admin_permission_matrix as matrix
from tests.marketplace.changelist import autocomplete

pytestmark = pytest.mark.django_db

ROLES, row = matrix.ROLES, matrix.row
world = matrix.world  # the same objects, built once for this module

SCOPES = {"user": matrix.PARTNER_SCOPES, "transfer": matrix.PARTNER_SCOPES}

POLICY: dict[str, dict[str, dict[str, tuple[str, ...]]]] = {
    # Columns:           agent        lead     finance  support      editor     partner manager  superuser  non-staff
    "user": {
        "history":       row("ok 404",    "ok ok", "ok ok", "ok 404",    "403 403", "403 403", "ok ok", "login login"),
        "password":      row("403 403",   "403 403", "403 403", "403 403", "403 403", "403 403", "ok ok", "login login"),
        "popup":         row("ok hidden", "ok ok", "ok ok", "ok hidden", "403 403", "403 403", "ok ok", "login login"),
        "autocomplete":  row("ok hidden", "ok ok", "ok ok", "ok hidden", "403 403", "403 403", "ok ok", "login login"),
    },
    # scopes: own other (an export of the user's, another staff member's)
    "transfer": {
        # transfers.export_data (agents, leads, finance) or import_data (leads, partner managers)
        "download":      row("ok 404",    "ok 404", "ok 404", "404 404", "404 404", "ok 404",  "ok ok", "login login"),
    },
}  # fmt: skip


@pytest.fixture(scope="module")
def jobs(world, django_db_blocker):
    """A finished export with a file per role user ("own"), and one of another member of staff ("other")."""

    def export_of(actor) -> TransferJob:
        job = TransferJob(
            kind=TransferJob.Kind.EXPORT,
            resource="catalog.listing",
            status=TransferJob.Status.DONE,
            actor=actor,
            file_format="csv",
            file_name=f"listings-{actor.pk}.csv",
        )
        job.file.save("export.csv", ContentFile(f"id\n{actor.pk}\n".encode()), save=False)
        job.save()
        return job

    with django_db_blocker.unblock(), transaction.atomic():  # inside the world's open transaction
        made = {("own", role): export_of(user) for role, user in world["users"].items()}
        other = export_of(staff(matrix.GROUP_OF[matrix.AGENT]))
        made |= {("other", role): other for role in ROLES}
    return made


def drive_history(client, obj):
    response = client.get(reverse("admin:accounts_user_history", args=[obj.pk]))
    return "ok" if response.status_code == 200 else matrix.refused(response)


def drive_password(client, obj):
    url = reverse("admin:accounts_user_change", args=[obj.pk]).replace("/change/", "/password/")
    response = client.get(url)
    return "ok" if response.status_code == 200 else matrix.refused(response)


def drive_popup(client, obj):
    response = client.get(reverse("admin:accounts_user_changelist"), {"_popup": "1", "_to_field": "id"})
    if response.status_code != 200:
        return matrix.refused(response)
    return "ok" if obj.pk in {user.pk for user in response.context["cl"].result_list} else "hidden"


def drive_autocomplete(client, obj):
    response = autocomplete(client, "catalog.listing", "owner", term=obj.email)
    if response.status_code != 200:
        return matrix.refused(response)
    return "ok" if str(obj.pk) in {result["id"] for result in response.json()["results"]} else "hidden"


def drive_download(client, job):
    response = client.get(reverse("admin:transfers_job_download", args=[job.pk]))
    if response.status_code == 200:
        assert response["Content-Disposition"].startswith("attachment")
        assert b"".join(response.streaming_content) == f"id\n{job.actor_id}\n".encode()
        return "ok"
    assert not hasattr(response, "streaming_content")
    return matrix.refused(response)


DRIVERS = {
    "history": drive_history,
    "password": drive_password,
    "popup": drive_popup,
    "autocomplete": drive_autocomplete,
    "download": drive_download,
}


def cells():
    for model, actions in POLICY.items():
        for action, by_role in actions.items():
            for role in ROLES:
                for scope, expected in zip(SCOPES[model], by_role[role], strict=True):
                    yield pytest.param(model, action, role, scope, expected, id=f"{model}-{action}-{role}-{scope}")


def test_people_policy_table_covers_every_role_and_scope():
    for model, actions in POLICY.items():
        for action, by_role in actions.items():
            assert set(by_role) == set(ROLES), (model, action)
            assert action in DRIVERS, action
            for role, outcomes in by_role.items():
                assert len(outcomes) == len(SCOPES[model]), (model, action, role)
                assert set(outcomes) <= matrix.OUTCOMES, (model, action, role, outcomes)


@pytest.mark.parametrize(("model", "action", "role", "scope", "expected"), list(cells()))
def test_admin_permission_matrix_people(client, world, jobs, model, action, role, scope, expected):
    # given a user of the role and a person (or a file) in the scope
    obj = jobs[scope, role] if model == "transfer" else world["objects"]["user", "user", scope]
    client.force_login(world["users"][role])
    # when the user opens the page, the popup, the autocomplete or the download
    outcome = DRIVERS[action](client, obj)
    # then the answer is the policy's
    assert outcome == expected
