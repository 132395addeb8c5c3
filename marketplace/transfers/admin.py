"""Import and export in the operations admin (django-import-export through unfold's contrib).

`ScopedImportMixin` and `ScopedExportMixin` go in front of a model admin's bases. Exports read the
admin's own (scoped, filtered) changelist queryset and write an audit event; imports are checked
in full before anything is written. A file larger than MARKETPLACE_IMPORT_INLINE_MAX_BYTES, or an
export of more than MARKETPLACE_EXPORT_INLINE_MAX_ROWS rows, becomes a TransferJob that a django-q2
task runs while the page shows its progress.
"""

from django.contrib import admin, messages
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.views.main import ERROR_FLAG
from django.core.exceptions import PermissionDenied
from django.http import FileResponse, Http404, HttpResponseRedirect
from django.shortcuts import redirect
from django.urls import path, reverse
from import_export.admin import ExportMixin, ImportMixin
from import_export.formats.base_formats import XLSX
from unfold.admin import ModelAdmin
from unfold.contrib.import_export.forms import ExportForm, ImportForm
from unfold.decorators import display

from marketplace.core.exceptions import ApplicationError
from marketplace.transfers import services
from marketplace.transfers.changelist import export_params
from marketplace.transfers.exporting import export_record
from marketplace.transfers.formats import EXPORT_FORMATS, IMPORT_FORMATS, ImportFileError
from marketplace.transfers.importing import ERRORS_SHOWN
from marketplace.transfers.models import TransferJob

IMPORT_PERMISSION = "transfers.import_data"
EXPORT_PERMISSION = "transfers.export_data"


def _dotted(cls) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def job_url(job: TransferJob) -> str:
    return reverse("admin:transfers_transferjob_change", args=[job.pk])


class ScopedImportMixin(ImportMixin):
    """Import through `import_resource_class` (a BulkImportResource): all rows or none."""

    import_resource_class = None
    import_form_class = ImportForm
    import_formats = IMPORT_FORMATS
    import_error_display = ("message",)
    skip_admin_log = True  # the import writes its own audit events

    def has_import_permission(self, request):
        opts = self.opts
        user = request.user
        return user.has_perm(IMPORT_PERMISSION) and user.has_perm(f"{opts.app_label}.add_{opts.model_name}")

    def get_import_resource_classes(self, request):
        return [self.import_resource_class]

    def add_data_read_fail_error_to_form(self, form, e):
        if isinstance(e, ImportFileError):
            form.add_error("import_file", str(e))
        else:
            super().add_data_read_fail_error_to_form(form, e)

    def create_import_form(self, request):
        form = super().create_import_form(request)
        limit = services.import_max_bytes()
        upload = request.FILES.get("import_file")
        if upload is not None and upload.size > limit:
            # checked before anything reads the file; the form shows it like any other error
            form.full_clean()
            form.add_error("import_file", f"The file is larger than {_size(limit)}: split it into parts.")
        return form

    def import_action(self, request, **kwargs):
        if request.method == "POST" and self.has_import_permission(request):
            form = self.create_import_form(request)
            if form.is_valid() and form.cleaned_data["import_file"].size > services.import_inline_max_bytes():
                upload = form.cleaned_data["import_file"]
                file_format = self.get_import_formats()[int(form.cleaned_data["format"])]()
                job = services.import_job_create(
                    resource_path=_dotted(self.import_resource_class),
                    model_label=self.opts.label_lower,
                    actor=request.user,
                    content=b"".join(upload.chunks()),
                    file_name=upload.name,
                    file_format=file_format,
                )
                messages.info(request, "A large file: it is being checked in the background. Nothing is written yet.")
                return HttpResponseRedirect(job_url(job))
        response = super().import_action(request, **kwargs)
        result = (getattr(response, "context_data", None) or {}).get("result")
        if result is not None and result.has_validation_errors():
            count = result.totals.get("invalid", 0)
            shown = f" The first {ERRORS_SHOWN} are listed." if count > ERRORS_SHOWN else ""
            messages.error(
                request,
                f"{count:,} row(s) have errors, so nothing will be imported. Row numbers are the "
                f"spreadsheet's (the header is row 1).{shown}",
            )
        return response

    def process_import(self, request, **kwargs):
        """The confirmation. A second click finds the uploaded file gone and is told so: nothing more
        is written (two clicks at the same moment meet the import's lock and duplicate check)."""
        try:
            return super().process_import(request, **kwargs)
        except FileNotFoundError:
            messages.info(request, "This file was already imported, or its upload expired: nothing more was written.")
            return HttpResponseRedirect(reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_changelist"))

    def process_result(self, result, request):
        if result.has_errors() or result.has_validation_errors():
            reasons = [str(e.error) for e in result.base_errors][:1] or [
                f"{result.totals.get('invalid', 0):,} row(s) have errors"
            ]
            messages.error(request, f"Nothing was imported: {reasons[0]}")
            return HttpResponseRedirect(reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_import"))
        return super().process_result(result, request)


class ScopedExportMixin(ExportMixin):
    """Export the changelist's rows (the user's scope, the filters in the URL) through `export_resource_class`."""

    export_resource_class = None
    export_form_class = ExportForm
    export_formats = EXPORT_FORMATS

    def has_export_permission(self, request):
        return request.user.has_perm(EXPORT_PERMISSION) and self.has_view_permission(request)

    def get_export_resource_classes(self, request):
        return [self.export_resource_class]

    def export_action(self, request):
        """The export page and file. Filters the changelist cannot apply (`?nosuchfield=1`,
        `?created_at__gte=notadate`, `?partner__id__exact=abc`) answer as the changelist does: back
        to it with `?e=1` and a message, instead of a 500."""
        try:
            return super().export_action(request)
        except IncorrectLookupParameters:
            messages.error(request, "The filters in the address cannot be applied, so nothing was exported.")
            changelist = reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_changelist")
            return HttpResponseRedirect(f"{changelist}?{ERROR_FLAG}=1")

    def get_export_data(self, file_format, request, queryset, **kwargs):
        if not self.has_export_permission(request):
            raise PermissionDenied
        kwargs["force_native_type"] = isinstance(file_format, XLSX)
        dataset = self.get_data_for_export(request, queryset, **kwargs)
        data = file_format.export_data(dataset)
        if isinstance(data, str):
            data = data.encode("utf-8")
        export_record(
            user=request.user, model=self.model, rows=len(dataset), file_format=file_format, filters=_filters(request)
        )
        return data

    def _do_file_export(self, file_format, request, queryset, export_form=None):
        limit = services.export_inline_max_rows()
        if queryset[: limit + 1].count() > limit:
            items = None
            if export_form is not None and "export_items" in export_form.changed_data:
                items = export_form.cleaned_data["export_items"]
            job = services.export_job_create(
                resource_path=_dotted(self.export_resource_class),
                model_label=self.opts.label_lower,
                actor=request.user,
                params=export_params(query=request.GET, items=items),
                file_format=file_format,
                filters=_filters(request),
            )
            messages.info(request, f"More than {limit:,} rows: the file is being written in the background.")
            return HttpResponseRedirect(job_url(job))
        return super()._do_file_export(file_format, request, queryset, export_form=export_form)


def _size(count: int) -> str:
    return f"{count / (1024 * 1024):g} MB" if count >= 1024 * 1024 else f"{count / 1024:g} KB"


def _filters(request) -> str:
    return request.GET.urlencode()


class ScopedImportExportMixin(ScopedImportMixin, ScopedExportMixin):
    import_export_change_list_template = "admin/import_export/change_list_import_export.html"


STATUS_COLOURS = {
    TransferJob.Status.QUEUED: "info",
    TransferJob.Status.VALIDATING: "info",
    TransferJob.Status.READY: "warning",
    TransferJob.Status.IMPORTING: "info",
    TransferJob.Status.EXPORTING: "info",
    TransferJob.Status.INVALID: "danger",
    TransferJob.Status.FAILED: "danger",
    TransferJob.Status.DONE: "success",
}


@admin.register(TransferJob)
class TransferJobAdmin(ModelAdmin):
    """Each person's imports and exports: progress, row errors, confirm, download."""

    list_display = ["__str__", "display_status", "display_progress", "file_name", "created_at", "finished_at"]
    list_filter = ["kind", "status"]
    readonly_fields = ["kind", "resource", "status", "display_progress", "file_name", "created_at", "finished_at"]
    fields = readonly_fields
    change_form_outer_after_template = "admin/transfers/job_detail.html"

    def _allowed(self, request) -> bool:
        user = request.user
        return (
            user.is_active and user.is_staff and (user.has_perm(IMPORT_PERMISSION) or user.has_perm(EXPORT_PERMISSION))
        )

    def has_module_permission(self, request):
        return self._allowed(request)

    def has_view_permission(self, request, obj=None):
        return self._allowed(request)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def get_queryset(self, request):
        qs = super().get_queryset(request).select_related("actor")
        return qs if request.user.is_superuser else qs.filter(actor=request.user)

    @display(description="Status", label=STATUS_COLOURS)
    def display_status(self, obj):
        return obj.status, obj.get_status_display()

    @display(description="Progress")
    def display_progress(self, obj):
        if obj.total is None:
            return "—"
        return f"{obj.processed:,} / {obj.total:,} ({obj.percent}%)"

    def get_urls(self):
        return [
            path("<int:job_id>/confirm/", self.admin_site.admin_view(self.confirm_view), name="transfers_job_confirm"),
            path(
                "<int:job_id>/download/", self.admin_site.admin_view(self.download_view), name="transfers_job_download"
            ),
            *super().get_urls(),
        ]

    def _job(self, request, job_id) -> TransferJob:
        if not self._allowed(request):
            raise PermissionDenied
        job = self.get_queryset(request).filter(pk=job_id).first()
        if job is None:
            raise Http404("No such import or export of yours.")
        return job

    def change_view(self, request, object_id, form_url="", extra_context=None):
        job = self._job(request, object_id)
        extra_context = {**(extra_context or {}), "job": job, "job_errors": job.errors[:ERRORS_SHOWN]}
        return super().change_view(request, object_id, form_url, extra_context)

    def confirm_view(self, request, job_id):
        if request.method != "POST":
            return HttpResponseRedirect(job_url(self._job(request, job_id)))
        job = self._job(request, job_id)
        try:
            started = services.import_job_confirm(job=job, actor=request.user)
        except ApplicationError as exc:
            messages.error(request, str(exc))
        else:
            if started:
                messages.success(request, "Import confirmed: the rows are being written.")
            else:
                messages.info(request, "This import was already confirmed.")
        return redirect(job_url(job))

    def download_view(self, request, job_id):
        """The only way to a job's file: its author (or a superuser) gets it as an attachment, audited;
        anyone else (staff without the transfer permissions too) gets 404, as for a job that does not exist."""
        if not self._allowed(request):
            raise Http404("No such import or export of yours.")
        job = self._job(request, job_id)
        try:
            handle = services.transfer_file_open(job=job, actor=request.user)
        except ApplicationError as exc:
            raise Http404(str(exc)) from exc
        extension = job.file_format or job.file.name.rsplit(".", 1)[-1]
        name = job.file_name or f"{job.kind}-{job.pk}.{extension}"
        response = FileResponse(handle, as_attachment=True, filename=name)
        response["Cache-Control"] = "private, no-store"
        response["X-Content-Type-Options"] = "nosniff"
        return response
