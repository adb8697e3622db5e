"""A real, throwaway PostgreSQL cluster for tests.

``throwaway_cluster()`` runs initdb into a fresh temporary directory, starts a
server on a free loopback port and yields a URL for an already created
database; on exit the server is killed and every file is removed.

Run ``python -m tests.support.postgres`` to check that this machine can do it.
"""

from __future__ import annotations

import glob
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, closing, contextmanager, nullcontext, suppress
from dataclasses import dataclass
from pathlib import Path

SUPERUSER = "mosic"
DATABASE = "mosic_test"

# The cluster exists only for a test run, so durability is traded for speed;
# the connection limit is high because several test processes each hold pools.
SERVER_SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "max_connections": "200",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
}

# --no-locale keeps the cluster independent of the locales a machine has.
INITDB_ARGS = ("-A", "trust", "-U", SUPERUSER, "--no-sync", "-E", "UTF8", "--no-locale")

START_TIMEOUT_S = 60
# Another process may grab the port between our probe and the server's bind.
START_ATTEMPTS = 3


class ClusterError(RuntimeError):
    """The cluster could not be created or started; the message has the logs."""


@dataclass(frozen=True)
class _RunAs:
    """Credentials for the server processes; ``None`` fields mean "as we are"."""

    uid: int | None = None
    gid: int | None = None

    def popen_kwargs(self) -> dict:
        if self.uid is None:
            return {}
        # extra_groups=[] drops root's supplementary groups, which the
        # child would otherwise keep along with the new uid.
        return {"user": self.uid, "group": self.gid, "extra_groups": []}


def _server_bin_dir() -> Path:
    def version_key(bin_dir: str) -> tuple[int, ...]:
        version = Path(bin_dir).parent.name
        return tuple(int(part) for part in re.findall(r"\d+", version))

    installed = [
        d
        for d in glob.glob("/usr/lib/postgresql/*/bin")
        if os.access(os.path.join(d, "pg_ctl"), os.X_OK)
    ]
    if installed:
        return Path(max(installed, key=version_key))
    on_path = shutil.which("pg_ctl")
    if on_path:
        # Resolve symlinks so initdb/postgres are found beside the real pg_ctl.
        return Path(on_path).resolve().parent
    raise ClusterError(
        "PostgreSQL server binaries not found: nothing in"
        " /usr/lib/postgresql/*/bin and no pg_ctl on PATH"
    )


def _server_identity() -> _RunAs:
    # postgres refuses to start as root, and tests and CI run as root.
    if os.geteuid() != 0:
        return _RunAs()
    for name in ("postgres", "nobody"):
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        return _RunAs(uid=entry.pw_uid, gid=entry.pw_gid)
    raise ClusterError("running as root, but there is no 'postgres' or 'nobody' user")


def _free_port() -> int:
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _clean_env() -> dict[str, str]:
    # PG* variables from the caller's environment (PGSSLMODE, PGDATABASE...)
    # must not leak into a cluster that is configured purely by arguments.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["LC_ALL"] = "C"
    return env


def _run(args: list[str], run_as: _RunAs, cwd: Path, timeout: float) -> str:
    """Run a PostgreSQL tool; return its output, or raise with that output."""
    try:
        proc = subprocess.run(
            args,
            cwd=cwd,  # the server user may not be able to enter our cwd
            env=_clean_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=timeout,
            check=False,
            **run_as.popen_kwargs(),
        )
    except subprocess.TimeoutExpired as exc:
        # The partial output of a timed-out run can be bytes even in text mode.
        output = exc.output or b""
        if isinstance(output, bytes):
            output = output.decode(errors="replace")
        raise ClusterError(f"{args[0]} timed out after {timeout}s:\n{output}") from exc
    if proc.returncode != 0:
        command = " ".join(args)
        raise ClusterError(f"{command} exited with {proc.returncode}:\n{proc.stdout}")
    return proc.stdout


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def _start(bin_dir: Path, data: Path, sock_dir: Path, log: Path, run_as: _RunAs) -> int:
    """Start the server on a free port and return the port."""
    conf = data / "postgresql.conf"
    base_conf = conf.read_text()
    # Settings go in the config file rather than ``pg_ctl -o``, which pg_ctl
    # re-splits through a shell and would break on paths with spaces.
    fixed = {**SERVER_SETTINGS, "unix_socket_directories": f"'{sock_dir}'"}
    for attempt in range(1, START_ATTEMPTS + 1):
        port = _free_port()
        settings = {**fixed, "port": str(port)}
        conf.write_text(base_conf + "".join(f"\n{k} = {v}" for k, v in settings.items()))
        start = ["start", "-w", "-t", str(START_TIMEOUT_S), "-D", str(data), "-l", str(log)]
        try:
            _run([str(bin_dir / "pg_ctl"), *start], run_as, data.parent, START_TIMEOUT_S + 10)
            return port
        except ClusterError as exc:
            server_log = _read(log)
            if attempt < START_ATTEMPTS and "Address already in use" in server_log:
                continue
            raise ClusterError(f"{exc}\n--- server log ({log}) ---\n{server_log}") from exc
    raise AssertionError("unreachable")


def _stop(bin_dir: Path, data: Path, run_as: _RunAs) -> None:
    # Immediate mode: the data is thrown away, so there is nothing to flush.
    # A failure here (e.g. the server already died) must not mask the
    # test's own outcome, and the directory is removed regardless.
    stop = ["stop", "-m", "immediate", "-w", "-D", str(data)]
    with suppress(ClusterError):
        _run([str(bin_dir / "pg_ctl"), *stop], run_as, data.parent, START_TIMEOUT_S)


@dataclass
class Cluster:
    """A running throwaway cluster that a fault test may stop and start again (same port)."""

    url: str
    bin_dir: Path
    data: Path
    log: Path
    run_as: _RunAs

    def stop(self, mode: str = "fast") -> None:
        """``pg_ctl stop -m MODE``: clients see their connections dropped."""
        stop = ["stop", "-m", mode, "-w", "-D", str(self.data)]
        _run([str(self.bin_dir / "pg_ctl"), *stop], self.run_as, self.data.parent, START_TIMEOUT_S)

    def start(self) -> None:
        start = [
            "start",
            "-w",
            "-t",
            str(START_TIMEOUT_S),
            "-D",
            str(self.data),
            "-l",
            str(self.log),
        ]
        _run(
            [str(self.bin_dir / "pg_ctl"), *start],
            self.run_as,
            self.data.parent,
            START_TIMEOUT_S + 10,
        )


@contextmanager
def throwaway_cluster() -> Iterator[str]:
    """Start a private PostgreSQL cluster and yield a URL to a fresh database.

    The URL looks like ``postgresql://mosic@127.0.0.1:PORT/mosic_test`` and
    needs no password (trust authentication, loopback only).
    """
    with controllable_cluster() as cluster:
        yield cluster.url


@contextmanager
def controllable_cluster() -> Iterator[Cluster]:
    """``throwaway_cluster``, yielding the ``Cluster`` so a test can stop and restart it."""
    bin_dir = _server_bin_dir()
    run_as = _server_identity()
    root = Path(tempfile.mkdtemp(prefix="mosic-pg-"))
    data, sock_dir, log = root / "data", root / "socket", root / "server.log"
    try:
        sock_dir.mkdir()
        if run_as.uid is not None:
            # initdb creates data/ itself and must be allowed to; the server
            # writes its socket and log here.
            for path in (root, sock_dir):
                os.chown(path, run_as.uid, run_as.gid)
        _run([str(bin_dir / "initdb"), "-D", str(data), *INITDB_ARGS], run_as, root, 120)
        port = _start(bin_dir, data, sock_dir, log, run_as)
        # createdb is only a client, so it may run as anyone.
        createdb = ["-h", "127.0.0.1", "-p", str(port), "-U", SUPERUSER, DATABASE]
        try:
            _run([str(bin_dir / "createdb"), *createdb], _RunAs(), root, 30)
        except ClusterError as exc:
            raise ClusterError(f"{exc}\n--- server log ---\n{_read(log)}") from exc
        url = f"postgresql://{SUPERUSER}@127.0.0.1:{port}/{DATABASE}"
        yield Cluster(url, bin_dir, data, log, run_as)
    finally:
        # Also after a failed start: pg_ctl may give up waiting on a server
        # that is still coming up and would otherwise outlive the test run.
        if (data / "postmaster.pid").exists():
            _stop(bin_dir, data, run_as)
        shutil.rmtree(root, ignore_errors=True)


def _main() -> None:
    import psycopg  # only the self-check needs a driver

    began = time.monotonic()
    with throwaway_cluster() as url:
        ready = time.monotonic()
        print(url)
        with closing(psycopg.connect(url)) as conn, conn.cursor() as cur:
            cur.execute("SELECT version(), current_setting('max_connections')")
            version, max_connections = cur.fetchone()
        print(version)
        print(f"max_connections={max_connections}")
        print(f"started in {ready - began:.2f}s")
    print(f"stopped and removed in {time.monotonic() - ready:.2f}s")


def configured_or_throwaway() -> AbstractContextManager[str]:
    """The database at ``MOSIC_TEST_DATABASE_URL`` when set, else a throwaway cluster."""
    url = os.environ.get("MOSIC_TEST_DATABASE_URL")
    return nullcontext(url) if url else throwaway_cluster()


if __name__ == "__main__":
    _main()
