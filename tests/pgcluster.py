#!/usr/bin/env python3
"""Run a command against a throwaway PostgreSQL cluster (standard library only).

    python tests/pgcluster.py -- pytest -n 2
    python tests/pgcluster.py -- sh -c 'psql "$DATABASE_URL" -c "select version()"'
    python tests/pgcluster.py --keep-running      # start, print DATABASE_URL, stop on Ctrl-C

If DATABASE_URL is already set, the command is exec'd unchanged (use --fresh to start a
cluster anyway). Otherwise a cluster is initialised in a new directory under /tmp, listening
on 127.0.0.1 on a free port (and a unix socket in that directory), with trust authentication
and durability switched off for speed; a database is created, DATABASE_URL (plus PGHOST,
PGPORT, PGUSER, PGDATABASE) is set for the command, and the cluster is stopped and its
directory removed afterwards, whatever happens (errors, Ctrl-C, SIGTERM). The exit code is
the command's.

initdb and pg_ctl refuse to run as root: as root they run as the `postgres` system user
(or $PGCLUSTER_USER) through runuser, or Python's own user switch where runuser is missing.

Environment knobs: PG_BINDIR (where initdb/pg_ctl live), PGCLUSTER_USER, PGCLUSTER_DB,
PGCLUSTER_TMPDIR (parent of the cluster directory, default /tmp), PGCLUSTER_KEEP_DIR=1
(leave the directory, with its server log, after the run).
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

PROG = "pgcluster"
DEFAULT_DB = "marketplace"
START_TIMEOUT = 60  # seconds
SERVER_SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "200",
    "shared_buffers": "256MB",
    "wal_level": "minimal",
    "max_wal_senders": "0",
    "max_wal_size": "2GB",
    "checkpoint_timeout": "30min",
    "jit": "off",
    "log_min_messages": "warning",
    "log_min_error_statement": "error",
    "log_line_prefix": "'%m [%p] %d '",
}


class Interrupted(Exception):
    """A signal arrived while the cluster was being set up."""


def log(msg: str) -> None:
    print(f"[{PROG}] {msg}", file=sys.stderr, flush=True)


def die(msg: str, code: int = 2) -> None:
    log(f"error: {msg}")
    sys.exit(code)


# --- Locating PostgreSQL ---------------------------------------------------------------


def _version_key(path: str) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", path)) or (0,)


def find_bindir() -> str:
    explicit = os.environ.get("PG_BINDIR")
    if explicit:
        if not os.access(os.path.join(explicit, "initdb"), os.X_OK):
            die(f"PG_BINDIR={explicit} has no executable initdb")
        return explicit
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version_key, reverse=True)
    candidates += sorted(glob.glob("/usr/pgsql-*/bin"), key=_version_key, reverse=True)
    candidates += ["/usr/local/pgsql/bin", "/opt/homebrew/bin", "/usr/local/bin"]
    for cand in candidates:
        if os.access(os.path.join(cand, "initdb"), os.X_OK) and os.access(os.path.join(cand, "pg_ctl"), os.X_OK):
            return cand
    initdb = shutil.which("initdb")
    if initdb:
        return os.path.dirname(initdb)
    die(
        "PostgreSQL server binaries (initdb, pg_ctl) not found. Install them (Debian: apt-get install postgresql) "
        "or set PG_BINDIR, or set DATABASE_URL to use an existing server."
    )
    raise AssertionError("unreachable")


# --- Running commands as the cluster owner -------------------------------------------


class Owner:
    """Who owns and runs the cluster: the current user, or `postgres` when we are root."""

    def __init__(self) -> None:
        self.as_root = os.geteuid() == 0
        if self.as_root:
            name = os.environ.get("PGCLUSTER_USER", "postgres")
            try:
                self.pw = pwd.getpwnam(name)
            except KeyError:
                die(
                    f"running as root, but there is no '{name}' system user to run PostgreSQL as "
                    "(initdb refuses root). Create it (useradd --system postgres), install the "
                    "postgresql package, or set PGCLUSTER_USER."
                )
            if self.pw.pw_uid == 0:
                die(f"PGCLUSTER_USER={name} is root; PostgreSQL refuses to run as root")
            self.runuser = shutil.which("runuser")
        else:
            self.pw = pwd.getpwuid(os.geteuid())
            self.runuser = None
        self.name = self.pw.pw_name

    def chown(self, path: str) -> None:
        if self.as_root:
            os.chown(path, self.pw.pw_uid, self.pw.pw_gid)

    def run(self, argv: list[str], *, cwd: str, env: dict[str, str], check: bool = True, **kw):
        """Run argv as the cluster owner; return the CompletedProcess."""
        env = dict(env, HOME=self.pw.pw_dir if self.as_root else env.get("HOME", self.pw.pw_dir))
        if self.as_root:
            env["USER"] = env["LOGNAME"] = self.name
        extra: dict = {}
        if self.as_root and self.runuser:
            argv = [self.runuser, "-u", self.name, "--", *argv]
        elif self.as_root:
            # Python's own switch (setgid, setgroups, setuid in the child), no PAM needed.
            extra = {"user": self.pw.pw_uid, "group": self.pw.pw_gid, "extra_groups": []}
        # Own session: a Ctrl-C at the terminal must not kill pg_ctl halfway through a stop, and
        # on an interrupt the whole group dies (killing runuser alone would leave initdb running).
        with subprocess.Popen(argv, cwd=cwd, env=env, start_new_session=True, **extra, **kw) as proc:
            try:
                out, _ = proc.communicate()
            except BaseException:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                raise
        if check and proc.returncode != 0:
            raise subprocess.CalledProcessError(proc.returncode, argv)
        return subprocess.CompletedProcess(argv, proc.returncode, out)


# --- The cluster ----------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tail(path: str, lines: int = 40) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return "".join(fh.readlines()[-lines:])
    except OSError as exc:
        return f"(cannot read {path}: {exc})\n"


class Cluster:
    def __init__(self, dbname: str) -> None:
        self.dbname = dbname
        self.bindir = find_bindir()
        self.owner = Owner()
        self.root = self.datadir = self.logfile = ""
        self.port = 0
        self.started = False
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        self.env.update(LC_ALL="C.UTF-8", LANG="C.UTF-8", TZ="UTC")

    def bin(self, name: str) -> str:
        return os.path.join(self.bindir, name)

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{self.dbname}"

    def _as_owner(self, argv: list[str], **kw):
        return self.owner.run(argv, cwd=self.root, env=self.env, **kw)

    def init(self) -> None:
        proc = self._as_owner(
            [
                self.bin("initdb"),
                "--pgdata",
                self.datadir,
                "--username",
                "postgres",
                "--auth-local",
                "trust",
                "--auth-host",
                "trust",
                "--encoding",
                "UTF8",
                "--no-locale",
                "--no-sync",
            ],
            check=False,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        if proc.returncode != 0:
            sys.stderr.write(proc.stdout)
            raise RuntimeError(f"initdb failed (exit {proc.returncode})")

    def configure(self, port: int) -> None:
        self.port = port
        settings = dict(SERVER_SETTINGS, port=str(port), unix_socket_directories=f"'{self.root}'")
        # postgresql.auto.conf is read last, so re-writing it for a retry on another port is clean.
        # Written by us (root or the owner); the server only needs to read it.
        path = os.path.join(self.datadir, "postgresql.auto.conf")
        with open(path, "w", encoding="utf-8") as fh:
            fh.write("# written by tests/pgcluster.py: throwaway test cluster, no durability\n")
            for key, value in settings.items():
                fh.write(f"{key} = {value}\n")
        self.owner.chown(path)

    def start(self) -> None:
        self.started = True  # from here on, stop() must try (pg_ctl may have launched the postmaster)
        proc = self._as_owner(
            [
                self.bin("pg_ctl"),
                "--pgdata",
                self.datadir,
                "--log",
                self.logfile,
                "--wait",
                "--timeout",
                str(START_TIMEOUT),
                "start",
            ],
            check=False,
            stdout=subprocess.DEVNULL,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"pg_ctl start failed (exit {proc.returncode})")
        self.wait_ready()

    def wait_ready(self) -> None:
        isready = self.bin("pg_isready")
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if os.access(isready, os.X_OK):
                ok = (
                    subprocess.run(
                        [isready, "-q", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", "postgres"],
                        env=self.env,
                    ).returncode
                    == 0
                )
            else:  # no pg_isready: a TCP connect is the best we can do
                try:
                    socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                    ok = True
                except OSError:
                    ok = False
            if ok:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"server not ready on 127.0.0.1:{self.port} after {START_TIMEOUT}s")
            time.sleep(0.2)

    def createdb(self) -> None:
        proc = subprocess.run(
            [self.bin("createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", self.dbname],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        if proc.returncode != 0:
            sys.stderr.write(proc.stdout)
            raise RuntimeError(f"createdb {self.dbname} failed (exit {proc.returncode})")

    def make_dir(self) -> None:
        parent = os.environ.get("PGCLUSTER_TMPDIR", "/tmp")
        self.root = tempfile.mkdtemp(prefix="pgcluster-", dir=parent)
        # mkdtemp makes it 0700 and ours; the cluster owner must create the data dir,
        # the socket and the log in it, so it owns the directory.
        self.owner.chown(self.root)
        self.datadir = os.path.join(self.root, "data")
        self.logfile = os.path.join(self.root, "postgres.log")

    def up(self) -> None:
        self.make_dir()
        self.init()
        # A port picked as free can be taken before the server binds it: retry on a new one.
        for attempt in range(1, 4):
            self.configure(free_port())
            try:
                self.start()
                break
            except RuntimeError:
                self.stop(quiet=True)
                if attempt == 3 or "could not bind" not in tail(self.logfile, 20).lower():
                    raise
                log(f"port {self.port} was taken, retrying")
        self.createdb()

    def postmaster_pid(self) -> int | None:
        try:
            with open(os.path.join(self.datadir, "postmaster.pid"), encoding="ascii") as fh:
                return int(fh.readline().strip())
        except (OSError, ValueError):
            return None

    def stop(self, quiet: bool = False) -> None:
        if not self.started:
            return
        self.started = False
        if self.postmaster_pid() is None:
            return
        proc = self._as_owner(
            [self.bin("pg_ctl"), "--pgdata", self.datadir, "--mode", "fast", "--wait", "--timeout", "30", "stop"],
            check=False,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL if quiet else None,
        )
        if proc.returncode == 0:
            return
        pid = self.postmaster_pid()
        if pid:
            log(f"pg_ctl stop failed; sending SIGQUIT to postmaster {pid}")
            try:
                os.kill(pid, signal.SIGQUIT)
                for _ in range(100):
                    os.kill(pid, 0)
                    time.sleep(0.1)
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def remove(self) -> None:
        if not self.root:
            return
        if os.environ.get("PGCLUSTER_KEEP_DIR") == "1":
            log(f"kept cluster directory {self.root} (server log: {self.logfile})")
            return
        shutil.rmtree(self.root, ignore_errors=True)

    def child_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            DATABASE_URL=self.url,
            PGHOST="127.0.0.1",
            PGPORT=str(self.port),
            PGUSER="postgres",
            PGDATABASE=self.dbname,
            PGCLUSTER_DIR=self.root,
        )
        return env


# --- Signals --------------------------------------------------------------------------

HANDLED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def raise_interrupted(signum, _frame):
    raise Interrupted(signum)


def signal_came_through_terminal() -> bool:
    """True when our process group is the terminal's foreground group: a Ctrl-C there
    already reached the child, so forwarding it would deliver it twice."""
    try:
        return os.isatty(0) and os.tcgetpgrp(0) == os.getpgrp()
    except OSError:
        return False


def run_child(argv: list[str], env: dict[str, str]) -> int:
    try:
        child = subprocess.Popen(argv, env=env)
    except FileNotFoundError:
        log(f"command not found: {argv[0]}")
        return 127
    except PermissionError:
        log(f"command not executable: {argv[0]}")
        return 126

    def forward(signum, _frame):
        if child.poll() is not None:
            return
        if signum == signal.SIGINT and signal_came_through_terminal():
            return
        child.send_signal(signum)

    for sig in HANDLED:
        signal.signal(sig, forward)
    while True:
        try:
            code = child.wait()
            break
        except InterruptedError:  # pragma: no cover - wait() retries on EINTR itself
            continue
    return 128 - code if code < 0 else code


def wait_forever(cluster: Cluster) -> int:
    print(f"DATABASE_URL={cluster.url}", flush=True)
    print(f"export DATABASE_URL={shlex.quote(cluster.url)}", flush=True)
    log(f"cluster running in {cluster.root} (server log: {cluster.logfile}); Ctrl-C or SIGTERM stops it")
    stop = []
    for sig in HANDLED:
        signal.signal(sig, lambda s, f: stop.append(s))
    while not stop:
        signal.pause()
    return 0


# --- Entry point ----------------------------------------------------------------------


def parse(argv: list[str]):
    opts = {"keep_running": False, "fresh": False, "db": os.environ.get("PGCLUSTER_DB", DEFAULT_DB)}
    command: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            command = argv[i + 1 :]
            break
        if arg in ("-h", "--help"):
            print(__doc__)
            sys.exit(0)
        if arg == "--keep-running":
            opts["keep_running"] = True
        elif arg == "--fresh":
            opts["fresh"] = True
        elif arg == "--db" and i + 1 < len(argv):
            i += 1
            opts["db"] = argv[i]
        elif arg.startswith("--db="):
            opts["db"] = arg.split("=", 1)[1]
        elif arg.startswith("-"):
            die(f"unknown option {arg} (put the command after --)")
        else:
            command = argv[i:]
            break
        i += 1
    if not command and not opts["keep_running"]:
        die("usage: python tests/pgcluster.py [--fresh] [--db NAME] -- COMMAND [ARGS...] | --keep-running")
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", opts["db"]):
        die(f"invalid database name {opts['db']!r}")
    return opts, command


def main(argv: list[str]) -> int:
    opts, command = parse(argv)

    if os.environ.get("DATABASE_URL") and not opts["fresh"]:
        if opts["keep_running"]:
            print(f"DATABASE_URL={os.environ['DATABASE_URL']}  (already set; no cluster started)")
            return 0
        log("DATABASE_URL is set: using that database, no throwaway cluster")
        try:
            os.execvp(command[0], command)
        except FileNotFoundError:
            log(f"command not found: {command[0]}")
            return 127

    for sig in HANDLED:
        signal.signal(sig, raise_interrupted)

    cluster = None
    code = 1
    failed_setup = False
    try:
        cluster = Cluster(opts["db"])
        t0 = time.monotonic()
        try:
            cluster.up()
        except (RuntimeError, subprocess.CalledProcessError) as exc:
            failed_setup = True
            log(f"could not start PostgreSQL: {exc}")
            log("last lines of the server log:")
            sys.stderr.write(tail(cluster.logfile))
            return 1
        log(
            f"PostgreSQL ({os.path.basename(os.path.dirname(cluster.bindir))}) ready in "
            f"{time.monotonic() - t0:.1f}s at {cluster.url}, run as {cluster.owner.name}"
        )
        if opts["keep_running"]:
            code = wait_forever(cluster)
        else:
            code = run_child(command, cluster.child_env())
        return code
    except Interrupted as exc:
        signum = exc.args[0]
        log(f"interrupted by {signal.Signals(signum).name} during setup")
        code = 128 + signum
        return code
    finally:
        # Nothing may interrupt the clean-up.
        for sig in HANDLED:
            signal.signal(sig, signal.SIG_IGN)
        if cluster is not None:
            try:
                cluster.stop()
            except Exception as exc:  # clean-up must go on
                log(f"stopping the cluster failed: {exc}")
            if failed_setup or (code not in (0, 128 + signal.SIGINT) and not opts["keep_running"]):
                saved = save_log(cluster)
                if saved:
                    log(f"PostgreSQL server log saved to {saved}")
            cluster.remove()


def save_log(cluster: Cluster) -> str | None:
    if not cluster.logfile or not os.path.exists(cluster.logfile):
        return None
    fd, path = tempfile.mkstemp(prefix="pgcluster-", suffix=".log", dir=os.environ.get("PGCLUSTER_TMPDIR", "/tmp"))
    os.close(fd)
    try:
        shutil.copyfile(cluster.logfile, path)
    except OSError:
        return None
    return path


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
