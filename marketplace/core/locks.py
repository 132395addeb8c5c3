"""A named lock across processes, for periodic work that must not run twice at the same moment."""

import hashlib
from contextlib import contextmanager

from django.db import connection


def _key(name: str) -> int:
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big", signed=True)


@contextmanager
def single_flight(name: str):
    """Yield True while this process holds the lock `name`, or False at once if another one does.

    A PostgreSQL session-level advisory lock: released on exit, or by the server when a crashed
    process's connection goes away, so a `kill -9` never leaves it held. (It needs a session, so
    not a transaction-pooling proxy.) On SQLite, the development database, writers are serialised
    anyway and the lock is always granted.
    """
    if connection.vendor != "postgresql":
        yield True
        return
    key = _key(name)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [key])
        acquired = cursor.fetchone()[0]
    try:
        yield acquired
    finally:
        if acquired:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [key])
