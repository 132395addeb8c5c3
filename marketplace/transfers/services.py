"""Imports and exports too large for a request: a TransferJob row, a django-q2 task, a progress bar.

An import job checks the file in one task (`import_job_validate`), waits for its author to confirm
(`import_job_confirm`), then checks it again and writes it in a second task (`import_job_run`), all
rows or none. The job's final status is written in the same transaction as the rows, so a task
delivered twice finds the job done and does nothing. An export job stores the changelist's filter
parameters (JSON); its task rebuilds the rows through the model's admin and scope selector for the
author as they are at run time, stores the file and offers it for download.
"""

from django.conf import settings
from django.core.files.base import ContentFile
from django.db import transaction
from django.utils import timezone
from django.utils.module_loading import import_string

from marketplace.audit.services import event_record
from marketplace.core.exceptions import InvalidInput
from marketplace.transfers.changelist import export_queryset
from marketplace.transfers.exporting import export_file
from marketplace.transfers.formats import ImportFileError, SpreadsheetCSV, SpreadsheetXLSX
from marketplace.transfers.importing import ERRORS_SHOWN, ImportRefused
from marketplace.transfers.models import TransferJob

J = TransferJob.Status
FORMATS = {"csv": SpreadsheetCSV, "xlsx": SpreadsheetXLSX}


def import_inline_max_bytes() -> int:
    return settings.MARKETPLACE_IMPORT_INLINE_MAX_BYTES


def import_max_bytes() -> int:
    return settings.MARKETPLACE_IMPORT_MAX_BYTES


def export_inline_max_rows() -> int:
    return settings.MARKETPLACE_EXPORT_INLINE_MAX_ROWS


def format_key(file_format) -> str:
    return file_format.get_extension()


def _progress(job_id: int):
    def report(done: int, total: int) -> None:
        TransferJob.objects.filter(pk=job_id).update(processed=done, total=total)

    return report


def _enqueue(task: str, job_id: int) -> None:
    from django_q.tasks import async_task

    transaction.on_commit(lambda: async_task(task, job_id, task_name=f"transfer-{job_id}-{task.rsplit('.', 1)[-1]}"))


def _errors_json(errors) -> list[dict]:
    return [{"row": e.row, "column": e.column, "message": e.message} for e in errors[:ERRORS_SHOWN]]


# --- imports ---------------------------------------------------------------------------------------


def import_job_create(*, resource_path: str, model_label: str, actor, content: bytes, file_name: str, file_format):
    """Store an uploaded file and queue its check. The author follows the job's page."""
    with transaction.atomic():
        job = TransferJob.objects.create(
            kind=TransferJob.Kind.IMPORT,
            resource=model_label,
            actor=actor,
            file_name=file_name[:255],
            file_format=format_key(file_format),
            resource_path=resource_path,
        )
        # stored in the private storage under a random name (TransferJob.file's upload_to)
        job.file.save(f"import.{format_key(file_format)}", ContentFile(content), save=True)
        _enqueue("marketplace.transfers.tasks.import_job_validate", job.pk)
    return job


def _load(job: TransferJob):
    resource = import_string(job.resource_path)()
    with job.file.open("rb") as handle:
        content = handle.read()
    dataset = FORMATS[job.file_format]().create_dataset(content)
    return resource, dataset


def import_job_validate(*, job_id: int) -> str:
    """Check every row of the job's file. Ends `ready` (nothing wrong) or `invalid` (row errors)."""
    claimed = TransferJob.objects.filter(pk=job_id, status__in=[J.QUEUED, J.VALIDATING]).update(
        status=J.VALIDATING, started_at=timezone.now(), processed=0
    )
    if not claimed:
        return "skipped"
    job = TransferJob.objects.get(pk=job_id)
    try:
        resource, dataset = _load(job)
        plan = resource.plan(dataset, user=job.actor, progress=_progress(job_id))
    except ImportFileError as exc:
        return _finish(job_id, J.INVALID, message=str(exc))
    except Exception as exc:  # an unexpected failure: the job says so instead of spinning forever
        _finish(job_id, J.FAILED, message=f"The check failed: {exc}")
        raise
    if plan.errors:
        return _finish(
            job_id,
            J.INVALID,
            total=plan.total,
            processed=plan.total,
            errors=_errors_json(plan.errors),
            error_count=plan.error_rows,
            message=f"{plan.error_rows:,} of {plan.total:,} rows have errors. Nothing was imported.",
        )
    TransferJob.objects.filter(pk=job_id).update(
        status=J.READY,
        total=plan.total,
        processed=plan.total,
        message=f"All {plan.total:,} rows are valid. Confirm to import them.",
    )
    return J.READY


def import_job_confirm(*, job: TransferJob, actor) -> bool:
    """The author confirms a checked import. A second click (or a second tab) changes nothing."""
    if job.actor_id != actor.pk:
        raise InvalidInput("Only the person who uploaded the file can confirm its import.")
    with transaction.atomic():
        moved = TransferJob.objects.filter(pk=job.pk, status=J.READY).update(status=J.IMPORTING, processed=0)
        if moved:
            _enqueue("marketplace.transfers.tasks.import_job_run", job.pk)
    if not moved and job.status not in (J.IMPORTING, J.DONE):
        raise InvalidInput(f"This import is {job.get_status_display().lower()}; it cannot be confirmed.")
    return bool(moved)


def import_job_run(*, job_id: int) -> str:
    """Check the file again (the data may have changed since) and write it, all rows or none."""
    job = TransferJob.objects.filter(pk=job_id, status=J.IMPORTING).first()
    if job is None:
        return "skipped"
    try:
        resource, dataset = _load(job)
        plan = resource.plan(dataset, user=job.actor)
        if plan.errors:
            return _finish(
                job_id,
                J.INVALID,
                errors=_errors_json(plan.errors),
                error_count=plan.error_rows,
                message=f"{plan.error_rows:,} rows have errors now. Nothing was imported.",
            )

        def done(count: int) -> None:
            TransferJob.objects.filter(pk=job_id).update(
                status=J.DONE, processed=count, total=count, finished_at=timezone.now(), message=f"{count:,} imported."
            )

        resource.commit(plan, user=job.actor, file_name=job.file_name, inside=done)
    except ImportRefused as exc:
        return _finish(
            job_id, J.INVALID, errors=_errors_json(exc.errors), error_count=len(exc.errors), message=str(exc)
        )
    except Exception as exc:
        _finish(job_id, J.FAILED, message=f"The import failed, nothing was written: {exc}")
        raise
    return J.DONE


def _finish(job_id: int, status: str, **fields) -> str:
    TransferJob.objects.filter(pk=job_id).update(status=status, finished_at=timezone.now(), **fields)
    return status


# --- exports ---------------------------------------------------------------------------------------


def export_job_create(
    *, resource_path: str, model_label: str, actor, params: dict, file_format, filters: str = ""
) -> TransferJob:
    """Queue the export of `model_label`'s changelist rows for `actor` under `params`
    (`changelist.export_params`: the query string and any selected keys)."""
    with transaction.atomic():
        job = TransferJob.objects.create(
            kind=TransferJob.Kind.EXPORT,
            resource=model_label,
            actor=actor,
            file_format=format_key(file_format),
            params=params,
            filters=filters[:1000],
            resource_path=resource_path,
        )
        _enqueue("marketplace.transfers.tasks.export_job_run", job.pk)
    return job


def export_job_run(*, job_id: int) -> str:
    claimed = TransferJob.objects.filter(pk=job_id, status__in=[J.QUEUED, J.EXPORTING]).update(
        status=J.EXPORTING, started_at=timezone.now(), processed=0
    )
    if not claimed:
        return "skipped"
    job = TransferJob.objects.select_related("actor").get(pk=job_id)
    try:
        resource = import_string(job.resource_path)()
        model = resource._meta.model
        queryset = export_queryset(model_label=job.resource, params=job.params, user=job.actor)
        file_format = FORMATS[job.file_format]()
        data = export_file(
            resource, queryset, user=job.actor, file_format=file_format, filters=job.filters, progress=_progress(job_id)
        )
        if isinstance(data, str):
            data = data.encode("utf-8")
        stamp = timezone.now().strftime("%Y-%m-%d")
        name = f"{model.__name__}-{stamp}-{job.pk}.{job.file_format}"
        job.file.save(name, ContentFile(data), save=False)
        TransferJob.objects.filter(pk=job_id).update(
            file=job.file.name, file_name=name, status=J.DONE, finished_at=timezone.now(), message="Ready to download."
        )
    except InvalidInput as exc:
        return _finish(job_id, J.FAILED, message=f"Nothing was exported: {exc}")
    except Exception as exc:
        _finish(job_id, J.FAILED, message=f"The export failed: {exc}")
        raise
    return J.DONE


# --- downloads -------------------------------------------------------------------------------------


def transfer_file_open(*, job: TransferJob, actor):
    """Open a job's file for `actor` (whose scope the caller has checked) and audit the download.

    Raises InvalidInput when the job has no file (an export still running, a file pruned).
    The event hangs on the downloader's timeline, beside their exports.
    """
    if not job.file or (job.kind == TransferJob.Kind.EXPORT and job.status != J.DONE):
        raise InvalidInput("This import or export has no file (yet, or any more).")
    try:
        handle = job.file.open("rb")
    except FileNotFoundError as exc:
        raise InvalidInput("This file is no longer kept.") from exc
    event_record(
        verb="transfer.downloaded",
        actor=actor,
        target=actor,
        data={"job": job.pk, "kind": job.kind, "model": job.resource, "file_name": job.file_name},
    )
    return handle


# --- housekeeping ------------------------------------------------------------------------------------

UPLOADS_FOLDER = "django-import-export"  # where the admin keeps an upload until it is confirmed


def transfer_files_prune(*, now=None) -> dict[str, int]:
    """Delete the files of finished jobs older than MARKETPLACE_TRANSFER_FILES_DAYS and uploads never
    confirmed within a day. The job rows stay (they are the record); their file field is cleared."""
    from datetime import timedelta

    from django.core.files.storage import storages

    uploads_storage = storages["import_export"]  # where django-import-export's MediaStorage keeps them
    now = now or timezone.now()
    cutoff = now - timedelta(days=settings.MARKETPLACE_TRANSFER_FILES_DAYS)
    jobs = 0
    for job in TransferJob.objects.filter(created_at__lt=cutoff).exclude(file="").only("pk", "file"):
        job.file.delete(save=False)
        TransferJob.objects.filter(pk=job.pk).update(file="")
        jobs += 1
    uploads = 0
    stale = now - timedelta(days=1)
    try:
        _, names = uploads_storage.listdir(UPLOADS_FOLDER)
    except FileNotFoundError:
        names = []
    for name in names:
        path = f"{UPLOADS_FOLDER}/{name}"
        if uploads_storage.get_modified_time(path) < stale:
            uploads_storage.delete(path)
            uploads += 1
    return {"job_files": jobs, "uploads": uploads}
