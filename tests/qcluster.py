"""Start a real django-q2 cluster (`manage.py qcluster`) against the test database.

Tests that need the real thing (the ORM broker, separate worker processes, `kill -9`) use this
instead of the inline `sync` mode the rest of the suite runs tasks in. Use it from tests marked
`@pytest.mark.django_db(transaction=True)` and `@pytest.mark.cluster`:

    with QCluster(database=connection.settings_dict, env={"Q_POLL": "0.2"}) as cluster:
        ...                      # enqueue work; the cluster's workers pick it up
        cluster.kill()           # SIGKILL to the whole process group, like a crashed host
        cluster.start()          # a new cluster on the same database

The cluster runs with the test settings, `Q_SYNC=false`, and DATABASE_URL pointing at the
pytest-django test database (the workers see what the test committed). Its output goes to a log
file whose tail is shown when it fails to start.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
READY_MARK = "running."


def database_url(settings_dict: dict) -> str:
    user = quote(settings_dict.get("USER") or "")
    password = quote(settings_dict.get("PASSWORD") or "")
    auth = f"{user}:{password}@" if password else (f"{user}@" if user else "")
    host = settings_dict.get("HOST") or "127.0.0.1"
    port = settings_dict.get("PORT") or "5432"
    if host.startswith("/"):
        return f"postgres://{auth}/{settings_dict['NAME']}?host={quote(host)}&port={port}"
    return f"postgres://{auth}{host}:{port}/{settings_dict['NAME']}"


class QCluster:
    def __init__(self, *, database: dict, env: dict[str, str] | None = None, workers: int = 2):
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "config.settings.test",
            "DATABASE_URL": database_url(database),
            "DATABASE_CONN_MAX_AGE": "0",
            "Q_SYNC": "false",
            "Q_WORKERS": str(workers),
            "Q_POLL": "0.2",
            "PYTHONPATH": os.pathsep.join([str(ROOT / "site"), str(ROOT)]),
            **(env or {}),
        }
        self.process: subprocess.Popen | None = None
        self.log_path = Path(tempfile.mkstemp(prefix="qcluster-", suffix=".log")[1])

    @property
    def poll(self) -> float:
        return float(self.env["Q_POLL"])

    def start(self, timeout: float = 30.0) -> QCluster:
        offset = self.log_path.stat().st_size
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, str(ROOT / "manage.py"), "qcluster"],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: kill() reaches every worker
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"qcluster exited with {self.process.returncode}:\n{self.log_tail()}")
            with self.log_path.open("rb") as fh:
                fh.seek(offset)
                if READY_MARK.encode() in fh.read():
                    return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"qcluster did not report running within {timeout}s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def kill(self) -> None:
        """SIGKILL the cluster and all its workers at once: no cleanup, no acknowledgements."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)
        self.process = None

    def stop(self, timeout: float = 15.0) -> None:
        if self.process is None or self.process.poll() is not None:
            self.process = None
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)
        self.process = None

    def __enter__(self) -> QCluster:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
        # Whatever the workers left connected must not block the test database's flush.
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )


def wait_for(predicate, *, timeout: float = 30.0, interval: float = 0.05, message: str = "condition"):
    """Poll `predicate` until it returns something truthy; return that, or fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {message}")
