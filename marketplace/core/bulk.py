"""Writing many rows fast (the demo generator, bulk imports): COPY on PostgreSQL (psycopg 3), batched INSERTs on SQLite.

Rows are plain tuples in the order of a model's concrete columns, with their primary keys already
set: ids are reserved from the table's own sequence first, so related rows can point at them
without reading anything back. Nothing at the database level is switched off: every CHECK, UNIQUE
and foreign-key constraint is enforced on the rows as they arrive.
"""

import queue
import re
import threading
import time
from datetime import datetime
from decimal import Decimal

import psycopg
from django.db import DEFAULT_DB_ALIAS, connection, connections

# Batches the COPY thread may lag behind the generator (bounds the memory held in the queue).
QUEUE_DEPTH = 8


class BulkWriteError(Exception):
    """The database refused a batch (a constraint, a type); the load's transaction rolls back."""


class BulkWriter:
    """The common part: which columns a model's rows carry, how long each table took to write,
    and how many statements were sent."""

    vendor = ""

    def __init__(self):
        self.statements = 0
        self.rows = 0
        self.seconds: dict[str, float] = {}  # time spent writing, per table
        self.lock = threading.Lock()  # the counters are updated from the COPY thread too

    @staticmethod
    def columns(model) -> list[str]:
        return [f.column for f in model._meta.concrete_fields]

    @staticmethod
    def check_row(model, row: tuple) -> None:
        """A row must carry every concrete column (a model change would otherwise go unnoticed)."""
        expected = len(model._meta.concrete_fields)
        if len(row) != expected:
            raise ValueError(f"{model._meta.label}: a generated row has {len(row)} values, the table {expected}.")

    def prepare(self, models) -> None:
        """Called once inside the load's transaction, before the first write to `models`."""

    def reserve_ids(self, model, count: int) -> list[int]:
        raise NotImplementedError

    def write(self, model, rows: list[tuple]) -> None:
        raise NotImplementedError

    def flush(self) -> None:
        """Return once every row handed to write() is in the database."""

    def finish(self, models, *, analyze: bool = True) -> None:
        """Called once inside the load's transaction, after flush()."""

    def close(self) -> None:
        """Release what the writer holds; called whatever happened (before the transaction ends)."""

    def _count(self, model, rows: list[tuple], started: float) -> float:
        elapsed = time.perf_counter() - started
        table = model._meta.db_table
        with self.lock:
            self.seconds[table] = self.seconds.get(table, 0.0) + elapsed
            self.rows += len(rows)
            self.statements += 1
        return elapsed


class CopyWriter(BulkWriter):
    """PostgreSQL: ids from the tables' identity sequences, rows through binary COPY ... FROM STDIN.

    Binary, because formatting rows as text costs the Python side about three times as much (and
    the server parses less). Values must then be of the column's type: int, str, bool, Decimal,
    aware datetime, None (a JSON column would need psycopg's Jsonb wrapper; the generator writes none).

    The COPYs run in a thread on the load's own connection (its transaction), so the generator
    builds the next batch while the server inserts, indexes and checks the previous one. Ids are
    reserved on a second, autocommit connection meanwhile (sequences are not transactional: the
    ids are the load's whether it commits or not). The main thread does not touch the database
    connection between prepare() and finish().
    """

    vendor = "postgresql"

    def prepare(self, models) -> None:
        # The main thread's connection itself: `django.db.connection` is a proxy that would
        # resolve to another connection in the COPY thread.
        self.db = connections[DEFAULT_DB_ALIAS]
        # Django declares foreign keys DEFERRABLE INITIALLY DEFERRED: left deferred, millions of
        # checks would queue up in memory until the commit. The foreign keys of the tables written
        # are checked at the end of each COPY instead, and put back to deferred in finish().
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT conname FROM pg_constraint WHERE contype = 'f' AND condeferrable AND condeferred "
                "AND conrelid = ANY(%s::regclass[]) ORDER BY conname",
                [[m._meta.db_table for m in models]],
            )
            self.deferred_fks = [row[0] for row in cursor.fetchall()]
            if self.deferred_fks:
                cursor.execute(f"SET CONSTRAINTS {self._fk_names()} IMMEDIATE")
        self.raw = connection.connection
        self.ids = connection.get_new_connection(connection.get_connection_params())
        self.ids.autocommit = True
        self.queue: queue.Queue = queue.Queue(maxsize=QUEUE_DEPTH)
        self.error: BaseException | None = None
        self.types: dict = {}
        self.thread = threading.Thread(target=self._drain, name="load_demo_data-copy", daemon=True)
        self.thread.start()

    def reserve_ids(self, model, count: int) -> list[int]:
        if count == 0:
            return []
        sql = "SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)"
        started = time.perf_counter()
        with self.ids.cursor() as cursor:
            cursor.execute(sql, [model._meta.db_table, model._meta.pk.column, count])
            ids = [row[0] for row in cursor.fetchall()]
        self._log(f"{sql} -- {model._meta.db_table}, {count}", started)
        return ids

    def write(self, model, rows: list[tuple]) -> None:
        self._raise_error()
        if rows:
            self.check_row(model, rows[0])
            self.queue.put((model, rows))  # waits while the thread is QUEUE_DEPTH batches behind

    def flush(self) -> None:
        self._stop()
        self._raise_error()

    def finish(self, models, *, analyze: bool = True) -> None:
        with connection.cursor() as cursor:
            if self.deferred_fks:
                cursor.execute(f"SET CONSTRAINTS {self._fk_names()} DEFERRED")
            if not analyze:
                return
            # Fresh planner statistics for the tables that just grew (inside the transaction, so
            # the queries that follow it, like the reconciliation, are planned for the real sizes).
            tables = ", ".join(connection.ops.quote_name(m._meta.db_table) for m in models)
            cursor.execute(f"ANALYZE {tables}")

    def close(self) -> None:
        if getattr(self, "thread", None) is not None:
            self._stop()
        if getattr(self, "ids", None) is not None:
            self.ids.close()
            self.ids = None

    # --- the COPY thread -----------------------------------------------------------------

    def _drain(self) -> None:
        while (item := self.queue.get()) is not None:
            if self.error is None:  # after a failure, only empty the queue
                try:
                    self._copy(*item)
                except BaseException as exc:  # handed to the main thread, raised there
                    self.error = exc

    def _copy(self, model, rows: list[tuple]) -> None:
        qn = self.db.ops.quote_name
        columns = ", ".join(qn(c) for c in self.columns(model))
        sql = f"COPY {qn(model._meta.db_table)} ({columns}) FROM STDIN (FORMAT BINARY)"
        started = time.perf_counter()
        with self.raw.cursor() as cursor, cursor.copy(sql) as copy:
            copy.set_types(self._types(model))
            write_row = copy.write_row
            for row in rows:
                write_row(row)
        self._count(model, rows, started)
        self._log(f"{sql} -- {len(rows)} rows", started, count=False)

    def _types(self, model) -> list[int]:
        """The PostgreSQL type of each column, which binary COPY needs (e.g. "numeric(14, 2)" -> numeric)."""
        if model not in self.types:
            names = [re.sub(r"\(.*\)", "", f.db_type(self.db)).strip() for f in model._meta.concrete_fields]
            self.types[model] = [psycopg.adapters.types.get(name).oid for name in names]
        return self.types[model]

    def _stop(self) -> None:
        if self.thread is not None:
            self.queue.put(None)
            self.thread.join()
            self.thread = None

    def _raise_error(self) -> None:
        if self.error is not None:
            message = " ".join(str(self.error).split())  # the server's CONTEXT line included
            raise BulkWriteError(f"The database refused a batch: {message}.") from self.error

    def _log(self, sql: str, started: float, *, count: bool = True) -> None:
        # Neither COPY nor the second connection goes through the load connection's execute():
        # log them like queries, so that connection.queries and CaptureQueriesContext count them.
        if count:
            with self.lock:
                self.statements += 1
        if self.db.queries_logged:
            self.db.queries_log.append({"sql": sql, "time": f"{time.perf_counter() - started:.3f}"})

    def _fk_names(self) -> str:
        return ", ".join(connection.ops.quote_name(name) for name in self.deferred_fks)


class InsertWriter(BulkWriter):
    """SQLite (and any other backend): one multi-row INSERT (executemany) per batch.

    Not bulk_create(): it would overwrite the generated created_at/updated_at history with "now"
    (auto_now_add), and the rows are tuples already. Values are adapted the way Django adapts them.
    """

    vendor = "sqlite"

    def reserve_ids(self, model, count: int) -> list[int]:
        # Safe inside the load's transaction: SQLite takes the write lock at BEGIN (IMMEDIATE mode)
        # and holds it to the commit, so no one else inserts in between.
        qn = connection.ops.quote_name
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT MAX({qn(model._meta.pk.column)}) FROM {qn(model._meta.db_table)}")
            start = (cursor.fetchone()[0] or 0) + 1
        return list(range(start, start + count))

    def write(self, model, rows: list[tuple]) -> None:
        if not rows:
            return
        self.check_row(model, rows[0])
        qn = connection.ops.quote_name
        columns = self.columns(model)
        sql = (
            f"INSERT INTO {qn(model._meta.db_table)} ({', '.join(qn(c) for c in columns)}) "
            f"VALUES ({', '.join(['%s'] * len(columns))})"
        )
        adapt_dt = connection.ops.adapt_datetimefield_value

        def adapt(value):
            if isinstance(value, datetime):
                return adapt_dt(value)
            if isinstance(value, Decimal):
                return str(value)
            return value

        started = time.perf_counter()
        with connection.cursor() as cursor:
            cursor.executemany(sql, [tuple(adapt(v) for v in row) for row in rows])
        self._count(model, rows, started)


def bulk_writer() -> BulkWriter:
    return CopyWriter() if connection.vendor == "postgresql" else InsertWriter()


def table_sizes(models) -> dict[str, int]:
    """Bytes on disk per table, indexes included (PostgreSQL only; empty elsewhere)."""
    if connection.vendor != "postgresql":
        return {}
    tables = [m._meta.db_table for m in models]
    with connection.cursor() as cursor:
        cursor.execute("SELECT t, pg_total_relation_size(t::regclass) FROM unnest(%s::text[]) AS t", [tables])
        return dict(cursor.fetchall())
