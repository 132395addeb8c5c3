"""The daily prune deletes old job files and unconfirmed uploads, and keeps the job rows."""

from datetime import timedelta

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import storages
from django.utils import timezone

from marketplace.transfers import tasks
from marketplace.transfers.models import TransferJob
from marketplace.transfers.services import UPLOADS_FOLDER, transfer_files_prune
from tests.factories import StaffFactory

pytestmark = pytest.mark.django_db


def _job(days_old: int) -> TransferJob:
    job = TransferJob.objects.create(kind="export", resource="catalog.listing", actor=StaffFactory(), status="done")
    job.file.save(f"export-{job.pk}.csv", ContentFile(b"id\n1\n"), save=True)
    TransferJob.objects.filter(pk=job.pk).update(created_at=timezone.now() - timedelta(days=days_old))
    return TransferJob.objects.get(pk=job.pk)


def test_prune_removes_old_job_files_and_stale_uploads_only(settings, tmp_path):
    # an uploads folder of its own: other tests on this worker leave uploads in the shared one
    settings.STORAGES = {
        **settings.STORAGES,
        "import_export": {**settings.STORAGES["import_export"], "OPTIONS": {"location": str(tmp_path)}},
    }
    uploads = storages["import_export"]
    assert uploads.path("x") == str(tmp_path / "x")
    settings.MARKETPLACE_TRANSFER_FILES_DAYS = 7
    old, recent = _job(days_old=8), _job(days_old=1)
    upload = uploads.save(f"{UPLOADS_FOLDER}/abc123", ContentFile(b"title\nx\n"))
    # an upload is stale after a day: the prune runs as if it were two days later
    later = timezone.now() + timedelta(days=2)
    result = transfer_files_prune(now=later)
    assert result["uploads"] == 1 and not uploads.exists(upload)
    old.refresh_from_db()
    recent.refresh_from_db()
    # at `later`, `old` is 10 days old and `recent` 3: only the first loses its file
    assert result["job_files"] == 1
    assert not old.file and TransferJob.objects.filter(pk=old.pk).exists()
    assert recent.file and recent.file.storage.exists(recent.file.name)
    # the scheduled task runs the same service, now: nothing more is due
    assert tasks.transfer_files_prune() == {"job_files": 0, "uploads": 0}
