"""Export jobs keep the changelist's parameters as JSON, never a query, and the task rebuilds the
rows through the admin and the scope selector for the author as they are when it runs."""

import ast
import csv
import io
from pathlib import Path

import pytest
from django.contrib.auth.models import Group
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.urls import reverse

from marketplace.catalog.models import Listing
from marketplace.partners.services import partner_scope_grant, partner_scope_revoke
from marketplace.transfers import services
from marketplace.transfers.models import TransferJob
from tests.factories import ListingFactory, PartnerFactory

pytestmark = pytest.mark.django_db

MARKETPLACE = Path(__file__).resolve().parents[3] / "marketplace"
DRAFT, PUBLISHED = Listing.Status.DRAFT, Listing.Status.PUBLISHED


@pytest.fixture
def agent(make_staff, settings):
    settings.MARKETPLACE_EXPORT_INLINE_MAX_ROWS = 1  # every export below becomes a job
    agent = make_staff("Operations agent")
    own, second = PartnerFactory(slug="own"), PartnerFactory(slug="second")
    partner_scope_grant(partner=own, grantee=agent)
    partner_scope_grant(partner=second, grantee=agent)
    return agent, own, second


def queue_export(client, user, query: str) -> TransferJob:
    """The export as the admin queues it (the task does not run yet)."""
    client.force_login(user)
    response = client.post(f"{reverse('admin:catalog_listing_export')}?{query}", {"format": "0", "resource": "0"})
    assert response.status_code == 302, response.content[:500]
    return TransferJob.objects.get(kind="export")


def exported_titles(job: TransferJob) -> list[str]:
    job.refresh_from_db()
    assert job.status == "done", job.message
    with job.file.open("rb") as handle:
        body = handle.read().decode("utf-8").removeprefix("\ufeff")
    return sorted(row["title"] for row in csv.DictReader(io.StringIO(body)))


def test_export_job_row_holds_json_params_and_no_query(client, agent):
    user, own, _ = agent
    ListingFactory(partner=own, title="Own 1", status=DRAFT)
    ListingFactory(partner=own, title="Own 2", status=DRAFT)
    job = queue_export(client, user, "status__exact=draft&q=Own")
    assert job.params == {"query": {"status__exact": ["draft"], "q": ["Own"]}}
    with connection.cursor() as cursor:
        columns = [c.name for c in connection.introspection.get_table_description(cursor, "transfers_transferjob")]
    assert "params" in columns and "query" not in columns


def test_no_module_of_the_marketplace_uses_pickle():
    users = []
    for path in MARKETPLACE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            if any(name.split(".")[0] in ("pickle", "cPickle", "dill", "shelve") for name in names):
                users.append(str(path.relative_to(MARKETPLACE)))
    assert users == []


def test_export_job_rebuilds_the_scope_filters_and_search(client, agent):
    user, own, second = agent
    ListingFactory(partner=own, title="Own draft A", status=DRAFT)
    ListingFactory(partner=second, title="Own draft B", status=DRAFT)
    ListingFactory(partner=own, title="Own published", status=PUBLISHED)
    ListingFactory(partner=own, title="Other draft", status=DRAFT)  # search ^title=Own excludes it
    ListingFactory(partner=PartnerFactory(slug="foreign"), title="Own draft, foreign", status=DRAFT)
    job = queue_export(client, user, "status__exact=draft&q=Own")
    assert services.export_job_run(job_id=job.pk) == "done"
    assert exported_titles(job) == ["Own draft A", "Own draft B"]


def test_export_job_whose_author_lost_a_partner_gets_only_what_they_see_now(client, agent):
    user, own, second = agent
    ListingFactory(partner=own, title="Own")
    ListingFactory(partner=second, title="Second")
    job = queue_export(client, user, "")
    partner_scope_revoke(partner=second, grantee=user)  # between the click and the run
    services.export_job_run(job_id=job.pk)
    assert exported_titles(job) == ["Own"]


def test_export_job_whose_author_lost_the_export_permission_fails_without_a_file(client, agent):
    user, own, _ = agent
    ListingFactory(partner=own, title="Own")
    ListingFactory(partner=own, title="Own too")
    job = queue_export(client, user, "")
    user.groups.remove(Group.objects.get(name="Operations agent"))
    assert services.export_job_run(job_id=job.pk) == "failed"
    job.refresh_from_db()
    assert (job.status, bool(job.file)) == ("failed", False)
    assert job.message == "Nothing was exported: Its author may no longer export these rows."


@pytest.mark.django_db(transaction=True)
def test_migration_fails_exports_still_pending_with_a_pickled_query(make_staff):
    # given the table as it was, with a queued pickled export and a finished one
    executor = MigrationExecutor(connection)
    executor.migrate([("transfers", "0003_private_files")])
    old = MigrationExecutor(connection).loader.project_state([("transfers", "0003_private_files")]).apps
    OldJob = old.get_model("transfers", "TransferJob")
    actor_id = make_staff("Operations agent").pk
    common = {"kind": "export", "resource": "catalog.listing", "resource_path": "x", "actor_id": actor_id}
    queued = OldJob.objects.create(status="queued", query=b"\x80\x04pickled", **common)
    done = OldJob.objects.create(status="done", query=b"\x80\x04pickled", message="Ready to download.", **common)
    # when the migration runs
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())
    # then the pending one is failed with a way forward, the finished one untouched
    queued_now, done_now = TransferJob.objects.get(pk=queued.pk), TransferJob.objects.get(pk=done.pk)
    assert queued_now.status == "failed" and queued_now.finished_at is not None
    assert queued_now.message.startswith("Stopped by an upgrade")
    assert (done_now.status, done_now.message, done_now.params) == ("done", "Ready to download.", {})
