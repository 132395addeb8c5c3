"""A named lock across processes, for periodic work that must not run twice at the same moment."""

import hashlib
import time
from contextlib import contextmanager

from django.db import connection


def _key(name: str) -> int:
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big", signed=True)


# How often a waiting `single_flight` asks again (seconds).
_POLL = 0.02


@contextmanager
def single_flight(name: str, *, wait: float = 0.0):
    """Yield True while this process holds the lock `name`, or False if another one still holds it
    after `wait` seconds (at once by default).

    A PostgreSQL session-level advisory lock: released on exit, or by the server when a crashed
    process's connection goes away, so a `kill -9` never leaves it held. (It needs a session, so
    not a transaction-pooling proxy.) It holds no row and opens no transaction, so it may be held
    while the process waits for someone else (the payment gateway). A session that holds it may
    take it again (nested blocks). On SQLite, the development database, writers are serialised
    anyway and the lock is always granted.
    """
    if connection.vendor != "postgresql":
        yield True
        return
    key = _key(name)
    deadline = time.monotonic() + wait
    with connection.cursor() as cursor:
        while True:
            cursor.execute("SELECT pg_try_advisory_lock(%s)", [key])
            acquired = cursor.fetchone()[0]
            if acquired or time.monotonic() >= deadline:
                break
            time.sleep(_POLL)
    try:
        yield acquired
    finally:
        if acquired:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [key])
