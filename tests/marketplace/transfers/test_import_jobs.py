"""Large imports run as django-q2 jobs: checked in a task, confirmed by their author, written in a task.

The inline tests run the tasks synchronously on commit; the last one starts a real qcluster.
"""

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.urls import reverse
from django_q.conf import Conf

from marketplace.catalog.models import Listing
from marketplace.transfers.models import TransferJob
from tests.factories import CategoryFactory, MembershipFactory, PartnerFactory
from tests.qcluster import QCluster, wait_for

HEADER = "title,partner,owner,category,price\n"


def make_catalogue():
    partner = PartnerFactory(slug="acme")
    MembershipFactory(partner=partner, user__email="owner@acme.test")
    CategoryFactory(slug="cleaning")


def csv_rows(count: int, bad_row: int | None = None) -> bytes:
    lines = [HEADER]
    for i in range(count):
        price = "oops" if i + 2 == bad_row else f"{10 + i}.00"
        lines.append(f"Listing {i},acme,owner@acme.test,cleaning,{price}\n")
    return "".join(lines).encode()


def post_file(client, content: bytes):
    return client.post(
        reverse("admin:catalog_listing_import"),
        {"format": "0", "resource": "0", "import_file": SimpleUploadedFile("big.csv", content)},
    )


@pytest.fixture
def small_threshold(settings):
    settings.MARKETPLACE_IMPORT_INLINE_MAX_BYTES = 100


@pytest.mark.django_db
def test_large_import_is_checked_in_a_task_then_confirmed_once(
    client, make_staff, small_threshold, django_capture_on_commit_callbacks
):
    make_catalogue()
    lead = make_staff("Operations lead")
    client.force_login(lead)
    with django_capture_on_commit_callbacks(execute=True):
        response = post_file(client, csv_rows(30))
    assert response.status_code == 302
    job = TransferJob.objects.get()
    assert response["Location"] == reverse("admin:transfers_transferjob_change", args=[job.pk])
    # checked, waiting for the person: nothing written yet
    assert (job.status, job.total, job.processed) == ("ready", 30, 30)
    assert Listing.objects.count() == 0
    page = client.get(response["Location"]).content.decode()
    assert "Confirm import of 30 rows" in page
    confirm_url = reverse("admin:transfers_job_confirm", args=[job.pk])
    with django_capture_on_commit_callbacks(execute=True):
        client.post(confirm_url)
    job.refresh_from_db()
    assert job.status == "done" and job.processed == 30
    assert Listing.objects.count() == 30
    # a second click (another tab) imports nothing more
    with django_capture_on_commit_callbacks(execute=True):
        again = client.post(confirm_url, follow=True)
    assert "already confirmed" in again.content.decode()
    assert Listing.objects.count() == 30


@pytest.mark.django_db
def test_large_import_with_a_bad_row_lists_it_and_writes_nothing(
    client, make_staff, small_threshold, django_capture_on_commit_callbacks
):
    make_catalogue()
    client.force_login(make_staff("Operations lead"))
    with django_capture_on_commit_callbacks(execute=True):
        response = post_file(client, csv_rows(30, bad_row=17))
    job = TransferJob.objects.get()
    assert job.status == "invalid"
    assert job.errors == [{"row": 17, "column": "price", "message": "'oops' is not a number."}]
    page = client.get(response["Location"]).content.decode()
    assert "1 of 30 rows have errors. Nothing was imported." in page
    assert Listing.objects.count() == 0
    # it cannot be confirmed
    client.post(reverse("admin:transfers_job_confirm", args=[job.pk]))
    assert Listing.objects.count() == 0


@pytest.mark.django_db
def test_another_user_cannot_confirm_or_see_a_job(
    client, make_staff, small_threshold, django_capture_on_commit_callbacks
):
    make_catalogue()
    client.force_login(make_staff("Operations lead"))
    with django_capture_on_commit_callbacks(execute=True):
        post_file(client, csv_rows(5))
    job = TransferJob.objects.get()
    client.force_login(make_staff("Operations lead"))
    assert client.post(reverse("admin:transfers_job_confirm", args=[job.pk])).status_code == 404
    assert client.get(reverse("admin:transfers_transferjob_change", args=[job.pk])).status_code == 404
    job.refresh_from_db()
    assert job.status == "ready" and Listing.objects.count() == 0


@pytest.mark.cluster
@pytest.mark.django_db(transaction=True)
def test_large_import_end_to_end_on_a_real_cluster(client, make_staff, monkeypatch):
    monkeypatch.setattr(Conf, "SYNC", False)  # the web process only queues; the cluster works
    monkeypatch.setattr(settings, "MARKETPLACE_IMPORT_INLINE_MAX_BYTES", 100)
    make_catalogue()
    client.force_login(make_staff("Operations lead"))
    env = {"Q_POLL": "0.5", "DJANGO_MEDIA_ROOT": str(settings.MEDIA_ROOT), "DJANGO_PRIVATE_ROOT": settings.PRIVATE_ROOT}
    with QCluster(database=connection.settings_dict, env=env, workers=2):
        post_file(client, csv_rows(2_000))
        job = TransferJob.objects.get()
        ready = wait_for(
            lambda: TransferJob.objects.filter(pk=job.pk, status__in=["ready", "invalid", "failed"]).first(),
            timeout=60,
            message="the cluster to check the file",
        )
        assert (ready.status, ready.total, ready.processed) == ("ready", 2_000, 2_000), ready.message
        assert Listing.objects.count() == 0
        client.post(reverse("admin:transfers_job_confirm", args=[job.pk]))
        done = wait_for(
            lambda: TransferJob.objects.filter(pk=job.pk, status__in=["done", "invalid", "failed"]).first(),
            timeout=60,
            message="the cluster to write the rows",
        )
    assert done.status == "done", done.message
    assert Listing.objects.filter(partner__slug="acme").count() == 2_000
