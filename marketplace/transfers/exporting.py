"""Exports: the user's scoped, filtered rows as CSV or XLSX, each one written to the audit log.

The rows come from the admin's changelist queryset, which reads through the `<model>_for_user`
selector, so an export never holds a row its author could not open. Text cells that a spreadsheet
would run as a formula (starting with `=`, `+`, `-`, `@`, a tab or a carriage return) get a leading
apostrophe; plain numbers such as -12.50 stay numbers. Control characters are removed from every
text cell, so one bad row can never break an XLSX export.
"""

import re

from import_export.resources import ModelResource

from marketplace.audit.services import event_record
from marketplace.transfers.cells import CONTROL_CHARACTERS  # what openpyxl refuses in a cell, and DEL

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
CHUNK = 2_000


def neutralise(value):
    """A cell made safe for a spreadsheet: control characters (which XML, so XLSX, cannot hold) are
    removed, and formula-like text is prefixed with an apostrophe."""
    if isinstance(value, str):
        value = CONTROL_CHARACTERS.sub("", value)
        if value.startswith(FORMULA_START) and not _NUMBER.match(value):
            return "'" + value
    return value


class ScopedExportResource(ModelResource):
    """The base of every export: related columns joined up front, every cell neutralised."""

    select_related: tuple[str, ...] = ()

    def filter_export(self, queryset, **kwargs):
        if self.select_related:
            queryset = queryset.select_related(*self.select_related)
        return queryset

    def get_chunk_size(self):
        return CHUNK

    def export_field(self, field, instance, **kwargs):
        return neutralise(super().export_field(field, instance, **kwargs))

    @classmethod
    def get_display_name(cls):
        return cls.__name__.removesuffix("ExportResource") or cls.__name__


def export_file(resource, queryset, *, user, file_format, filters: str = "", progress=None):
    """Render `queryset` through `resource` in `file_format` and write an `export` audit event.

    `progress(done, total)` is called every CHUNK rows when given (the task's progress bar).
    """
    if progress is None:
        dataset = resource.export(queryset=queryset, force_native_type=file_format.is_binary())
    else:
        dataset = _export_with_progress(resource, queryset, file_format, progress)
    data = file_format.export_data(dataset)
    export_record(user=user, model=resource._meta.model, rows=len(dataset), file_format=file_format, filters=filters)
    return data


def export_record(*, user, model, rows: int, file_format, filters: str = "") -> None:
    """The audit event of an export: who took how many rows of what, in which format, with which filters.

    It hangs on the exporter's own timeline (People -> the user), where a lead reviews what left.
    """
    event_record(
        verb="export",
        actor=user,
        target=user,
        data={
            "model": model._meta.label_lower,
            "rows": rows,
            "format": file_format.get_extension(),
            "filters": filters[:500],
        },
    )


def _export_with_progress(resource, queryset, file_format, progress):
    import tablib

    kwargs = {"force_native_type": file_format.is_binary()}
    queryset = resource.filter_export(queryset)
    total = queryset.count()
    dataset = tablib.Dataset(headers=resource.get_export_headers())
    for done, obj in enumerate(resource.iter_queryset(queryset), start=1):
        dataset.append(resource.export_resource(obj, **kwargs))
        if done % CHUNK == 0:
            progress(done, total)
    progress(len(dataset), total)
    return dataset
