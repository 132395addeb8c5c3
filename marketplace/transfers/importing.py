"""Bulk imports: every row is checked before anything is written, then one transaction writes them all.

An import resource declares its columns (how each cell is parsed), the references it resolves
(a partner by slug, an owner by email: one query per column for the whole file, within the
importer's scope) and its natural key (how a duplicate is recognised, in the file and in the
table). `plan()` parses and checks the whole file and returns the row errors with the spreadsheet's
row numbers; `write()` takes a lock, checks the duplicates again and writes the rows through COPY
(`marketplace.core.bulk`). A file with one bad row writes nothing.

The resource is a django-import-export `Resource`, so the admin's import pages (upload, dry-run
preview with row errors, confirm) drive it unchanged: `import_data()` returns their `Result`.
"""

import itertools
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db import DatabaseError, connection, transaction
from django.db.models import QuerySet
from django.db.models.functions import Lower
from django.utils import timezone
from import_export.resources import Resource
from import_export.results import Error, Result, RowResult

from marketplace.audit.services import event_record
from marketplace.core.bulk import BulkWriteError, InsertWriter, bulk_writer
from marketplace.core.locks import _key
from marketplace.transfers.cells import CONTROL_CHARACTERS, CellError, control_character
from marketplace.transfers.formats import ImportFileError, row_numbers

MISSING = object()
ERRORS_SHOWN = 200  # rows with errors listed on the page; all of them are counted
PREVIEW_ROWS = 50  # valid rows shown in the dry-run preview
PROGRESS_EVERY = 5_000
WRITE_BATCH = 10_000
ANALYZE_AFTER = 10_000  # fresh planner statistics after a large import


# --- Declarations -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Ref:
    """A cell that names another object by a natural key, looked up within the importer's scope."""

    queryset: Callable[[Any], QuerySet]  # the user -> the objects they may reference
    key: str  # the field the cell is matched against
    noun: str
    casefold: bool = False


@dataclass(frozen=True)
class Column:
    name: str
    parse: Callable[[Any], Any]
    required: bool = True  # the header must have this column
    default: Any = MISSING  # the value of an empty cell (MISSING: the cell must not be empty)
    ref: Ref | None = None
    help: str = ""
    # Parse each distinct value once: for columns whose values repeat (references, choices).
    # A reference column is always cached.
    cache: bool = False


@dataclass
class RowError:
    row: int
    column: str  # "" when the error is about the row as a whole
    message: str


@dataclass
class Plan:
    """A checked file: the parsed valid rows, or the reasons it cannot be imported."""

    headers: list[str]
    rows: list[dict] = field(default_factory=list)
    numbers: list[int] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    raw: dict[int, dict] = field(default_factory=dict)  # the cells of the first rows with errors
    total: int = 0

    @property
    def error_rows(self) -> int:
        return len({e.row for e in self.errors})

    @property
    def valid(self) -> bool:
        return not self.errors


class ImportRefused(Exception):
    """The rows cannot be written (found at write time: a duplicate created meanwhile, a constraint)."""

    def __init__(self, message: str, errors: list[RowError] | None = None):
        super().__init__(message)
        self.errors = errors or []


def _header_key(name) -> str:
    return re.sub(r"[\s\-]+", "_", str(name or "").strip().lower())


class BulkImportResource(Resource):
    """The base of every import: declare `model`, `columns`, and override the hooks below."""

    model = None
    columns: list[Column] = []
    noun = "row"

    # --- hooks -----------------------------------------------------------------------------------

    def natural_key(self, values: dict):
        """What makes two rows the same object (None: never a duplicate)."""
        return None

    def existing(self, keys: list) -> dict:
        """The natural keys among `keys` that the table already has, mapped to their ids."""
        return {}

    def existing_in_scope(self, ids: set, *, user) -> set:
        """Which of these existing objects' ids the importer may see (the model's `<model>_for_user`).

        A duplicate in scope is named in the row's error; one out of scope is not (its id would say
        that another partner has it): it reads as a missing object does, "not found or not yours".
        """
        return ids

    def clean_row(self, values: dict, *, user) -> list[tuple[str, str]]:
        """Checks across cells of one row: (column, message) pairs."""
        return []

    def check_all(self, items: list[tuple[int, dict]], *, user) -> list[RowError]:
        """Checks that need every row at once (one query for the file): (row number, values) pairs."""
        return []

    def write(self, rows: list[dict], *, user, now) -> int:
        """Write the valid rows (inside the import's transaction and lock). Returns the count."""
        raise NotImplementedError

    # --- django-import-export's side ---------------------------------------------------------------

    @classmethod
    def get_display_name(cls):
        return cls.__name__.removesuffix("ImportResource") or cls.__name__

    def get_user_visible_fields(self):
        from import_export.fields import Field

        return [Field(column_name=c.name) for c in self.columns]

    def import_data(self, dataset, dry_run=False, raise_errors=False, use_transactions=None, **kwargs):
        """Check the whole file; unless `dry_run`, write it all or nothing. Returns the admin's Result."""
        user = kwargs.get("user")
        try:
            plan = self.plan(dataset, user=user)
        except ImportFileError as exc:
            return self._file_error_result(exc)
        if plan.valid and not dry_run:
            try:
                self.commit(plan, user=user, file_name=kwargs.get("file_name") or "")
            except ImportRefused as exc:
                if not exc.errors:
                    return self._file_error_result(exc)
                plan.errors.extend(exc.errors)
        return self.result(plan)

    # --- the engine ----------------------------------------------------------------------------------

    def plan(self, dataset, *, user, progress: Callable[[int, int], None] | None = None) -> Plan:
        """Parse and check every row of `dataset`. Raises ImportFileError when the header is wrong."""
        index = self._header_index(dataset.headers or [])
        numbers = row_numbers(dataset)
        headers = [c.name for c in self.columns if c.name in index]
        plan = Plan(headers=headers, total=len(dataset))
        present = [(c, index[c.name], {} if (c.cache or c.ref) else None) for c in self.columns if c.name in index]
        absent = [c for c in self.columns if c.name not in index]
        parsed: list[tuple[int, dict, list]] = []
        bad: set[int] = set()

        def fail(number, column, message, cells):
            plan.errors.append(RowError(number, column, message))
            bad.add(number)
            if number not in plan.raw and len(plan.raw) < ERRORS_SHOWN:
                plan.raw[number] = cells

        for position, (number, row) in enumerate(zip(numbers, dataset._data, strict=True), start=1):
            values = {}
            for column, i, cache in present:
                cell = row[i]
                if cell is None or (isinstance(cell, str) and not cell.strip()):
                    if column.default is MISSING:
                        fail(number, column.name, "This cell is required.", row)
                    values[column.name] = None if column.default is MISSING else column.default
                    continue
                if code := control_character(cell):
                    fail(number, column.name, f"Contains a control character ({code}): remove it.", row)
                    values[column.name] = None
                    continue
                if cache is not None and cell in cache:
                    parsed_value = cache[cell]
                else:
                    try:
                        parsed_value = column.parse(cell)
                    except (CellError, ValueError, TypeError) as exc:
                        parsed_value = CellError(str(exc) or "Not a valid value.")
                    if cache is not None:
                        cache[cell] = parsed_value
                if isinstance(parsed_value, CellError):
                    fail(number, column.name, str(parsed_value), row)
                    values[column.name] = None
                else:
                    values[column.name] = parsed_value
            for column in absent:
                values[column.name] = column.default
            parsed.append((number, values, row))
            if progress and position % PROGRESS_EVERY == 0:
                progress(position, plan.total)

        self._resolve_refs(parsed, bad, fail, user)
        for number, values, row in parsed:
            if number not in bad:
                for column, message in self.clean_row(values, user=user):
                    fail(number, column, message, row)
        rows_by_number = {number: row for number, _, row in parsed}
        items = [(number, values) for number, values, _ in parsed if number not in bad]
        for error in self.check_all(items, user=user) if items else []:
            fail(error.row, error.column, error.message, rows_by_number[error.row])
        self._find_duplicates(parsed, bad, fail, user)
        plan.errors.sort(key=lambda e: e.row)
        for number, values, _row in parsed:
            if number not in bad:
                plan.rows.append(values)
                plan.numbers.append(number)
        if progress:
            progress(plan.total, plan.total)
        return plan

    def commit(self, plan: Plan, *, user, file_name: str = "", inside: Callable[[int], None] | None = None) -> int:
        """Write a valid plan in one transaction, or nothing. Writes one `import` audit event.

        `inside(count)` runs in the same transaction after the rows (a job records that it is done).
        """
        label = self.model._meta.label_lower
        try:
            with transaction.atomic():
                self._lock(label)
                duplicates = self._existing_duplicates(plan, user)
                if duplicates:
                    raise ImportRefused("Rows now duplicate existing ones; nothing was imported.", duplicates)
                count = self.write(plan.rows, user=user, now=timezone.now())
                event_record(
                    verb="import",
                    actor=user,
                    target=user,  # the importer's timeline; each object's own event is on its timeline
                    data={"model": label, "rows": count, "file": file_name[:200]},
                )
                if inside is not None:
                    inside(count)
        except (BulkWriteError, DatabaseError) as exc:
            message = " ".join(str(exc).split())
            raise ImportRefused(f"The database refused the import, so nothing was written: {message}") from exc
        return count

    def result(self, plan: Plan) -> Result:
        """The admin's Result: row errors (capped), totals, and a preview of the first valid rows."""
        result = Result()
        result.diff_headers = list(plan.headers)
        result.add_dataset_headers(list(plan.headers))
        result.total_rows = plan.total
        by_row: dict[int, dict[str, list[str]]] = {}
        for error in plan.errors:
            by_row.setdefault(error.row, {}).setdefault(error.column or NON_FIELD_ERRORS, []).append(error.message)
        for number, messages in itertools.islice(by_row.items(), ERRORS_SHOWN):
            cells = plan.raw.get(number) or []
            shown = {}
            for name in plan.headers:
                idx = self._shown_index.get(name)
                shown[name] = "" if idx is None or idx >= len(cells) or cells[idx] is None else cells[idx]
            result.append_invalid_row(number, shown, ValidationError(messages))
        result.totals[RowResult.IMPORT_TYPE_INVALID] = len(by_row)
        if plan.errors:
            return result
        result.totals[RowResult.IMPORT_TYPE_NEW] = len(plan.rows)
        for values in plan.rows[:PREVIEW_ROWS]:
            row_result = RowResult()
            row_result.import_type = RowResult.IMPORT_TYPE_NEW
            row_result.diff = ["" if values.get(h) is None else values.get(h) for h in plan.headers]
            result.append_row_result(row_result)
        return result

    # --- internals -----------------------------------------------------------------------------------

    def _header_index(self, headers) -> dict[str, int]:
        known = {c.name: c for c in self.columns}
        index: dict[str, int] = {}
        unknown = []
        for i, header in enumerate(headers):
            key = _header_key(header)
            if not key:
                continue
            if key in index:
                raise ImportFileError(f"The column '{key}' appears twice in the header.")
            if key not in known:
                unknown.append(CONTROL_CHARACTERS.sub("?", str(header)))
                continue
            index[key] = i
        expected = ", ".join(c.name for c in self.columns)
        if unknown:
            raise ImportFileError(f"Unknown column(s): {', '.join(unknown)}. The columns are: {expected}.")
        missing = [c.name for c in self.columns if c.required and c.name not in index]
        if missing:
            raise ImportFileError(f"Missing column(s): {', '.join(missing)}. The columns are: {expected}.")
        self._shown_index = index
        return index

    def _resolve_refs(self, parsed, bad, fail, user) -> None:
        for column in self.columns:
            if column.ref is None:
                continue
            ref = column.ref
            keys = {v[column.name] for n, v, _ in parsed if v.get(column.name) is not None}
            found: dict = {}
            if keys:
                qs = ref.queryset(user)
                if ref.casefold:
                    rows = qs.annotate(_k=Lower(ref.key)).filter(_k__in=keys).values_list("_k", "pk")
                else:
                    rows = qs.filter(**{f"{ref.key}__in": keys}).values_list(ref.key, "pk")
                found = dict(rows)
            for number, values, row in parsed:
                key = values.get(column.name)
                if key is None:
                    continue
                if key in found:
                    values[column.name] = found[key]
                else:
                    fail(number, column.name, f"No {ref.noun} '{key}' (or not one you may use).", row)
                    values[column.name] = None

    def _taken(self, existing: dict, user, *, since: str = "") -> dict:
        """The row error of each existing natural key: the object named when in the user's scope."""
        seen = self.existing_in_scope(set(existing.values()), user=user) if existing else set()
        return {
            key: f"Already exists: {self.noun} #{pk}{since}."
            if pk in seen
            else f"Already exists: a {self.noun} not found or not yours{since}."
            for key, pk in existing.items()
        }

    def _find_duplicates(self, parsed, bad, fail, user) -> None:
        first: dict = {}
        for number, values, row in parsed:
            if number in bad:
                continue
            key = self.natural_key(values)
            if key is None:
                continue
            if key in first:
                fail(number, "", f"Duplicate of row {first[key]} in this file.", row)
            else:
                first[key] = number
        existing = self.existing(list(first)) if first else {}
        rows_by_number = {number: row for number, _, row in parsed}
        for key, message in self._taken(existing, user).items():
            fail(first[key], "", message, rows_by_number[first[key]])

    def _existing_duplicates(self, plan: Plan, user) -> list[RowError]:
        keys = {}
        for number, values in zip(plan.numbers, plan.rows, strict=True):
            key = self.natural_key(values)
            if key is not None:
                keys[key] = number
        if not keys:
            return []
        taken = self._taken(self.existing(list(keys)), user, since=" (created since the check)")
        return [RowError(keys[key], "", message) for key, message in taken.items()]

    @staticmethod
    def _lock(label: str) -> None:
        """One import of a model at a time, so two copies of a file cannot both pass the duplicate check."""
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_key(f"import:{label}")])

    def _file_error_result(self, exc) -> Result:
        result = Result()
        result.append_base_error(Error(str(exc)))
        return result


def insert_rows(model, rows: list[dict], *, analyze: bool | None = None) -> list[int]:
    """Insert `rows` (values by attname; the others take their field's default) and return their ids.

    Through binary COPY on PostgreSQL, batched INSERTs elsewhere, with every constraint enforced
    as the rows arrive. Call it inside the import's transaction.
    """
    if not rows:
        return []
    fields = model._meta.concrete_fields
    ids = reserve_ids(model, len(rows))
    defaults = {}
    for f in fields:
        if f.primary_key:
            continue
        if f.has_default():
            defaults[f.attname] = f.get_default()
        elif f.null:
            defaults[f.attname] = None
    pk_name = model._meta.pk.attname
    jsonb = None
    if connection.vendor == "postgresql":
        from psycopg.types.json import Jsonb

        jsonb = Jsonb
    json_fields = {f.attname for f in fields if f.get_internal_type() == "JSONField"}
    tuples = []
    for pk, values in zip(ids, rows, strict=True):
        row = []
        for f in fields:
            name = f.attname
            value = pk if name == pk_name else values[name] if name in values else defaults[name]
            if name in json_fields and value is not None:
                value = jsonb(value) if jsonb else json.dumps(value)
            row.append(value)
        tuples.append(tuple(row))
    writer = bulk_writer()
    try:
        writer.prepare([model])
        for start in range(0, len(tuples), WRITE_BATCH):
            writer.write(model, tuples[start : start + WRITE_BATCH])
        writer.flush()
        writer.finish([model], analyze=len(tuples) >= ANALYZE_AFTER if analyze is None else analyze)
    finally:
        writer.close()
    return ids


def record_imported(model, ids: list[int], *, actor, now, verb: str, to_state: str = "") -> None:
    """One audit event per imported object, so each object's timeline says where it came from."""
    from django.contrib.contenttypes.models import ContentType

    from marketplace.audit.models import Event

    content_type = ContentType.objects.get_for_model(model).pk
    actor_id = getattr(actor, "pk", None)
    insert_rows(
        Event,
        [
            {
                "actor_id": actor_id,
                "verb": verb,
                "target_type_id": content_type,
                "target_id": str(pk),
                "to_state": to_state,
                "data": {},
                "created_at": now,
            }
            for pk in ids
        ],
        analyze=False,  # the audit table is large and only ever read by target; autovacuum suffices
    )


def reserve_ids(model, count: int) -> list[int]:
    """Ids for `count` new rows of `model`, taken from its sequence (call inside the write's transaction)."""
    if count == 0:
        return []
    if connection.vendor != "postgresql":
        return InsertWriter().reserve_ids(model, count)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)",
            [model._meta.db_table, model._meta.pk.column, count],
        )
        return [row[0] for row in cursor.fetchall()]
