"""What every benchmark needs beyond tests/support: a ``mosic serve`` with the benchmarks'
settings, a PostgreSQL to point it at, CPU accounting, streamed multipart uploads and one
result-table format.

The server itself (started in a session of its own, waited for, stopped with its whole
process group, so gunicorn workers too) comes from ``tests.support.server``, and the memory
sampler and metric reader from ``tests.support.measure``, as for the end-to-end tests.
Everything cleans up after itself, whatever happens in between.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import secrets
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    # tests.support (the server, memory sampling, audio fixtures, throwaway PostgreSQL) lives
    # beside bench/.
    sys.path.insert(0, str(REPO_ROOT))

from tests.support.server import Mosic, mosic_serve  # noqa: E402

MiB = 1024 * 1024
API_KEY = "bench-" + secrets.token_hex(16)


# -- results --------------------------------------------------------------------------------
@dataclass
class Row:
    """One line of a result table: our number beside the reference measured in the same run."""

    benchmark: str
    case: str
    reference: str
    ours: str
    check: str = ""
    data: dict = field(default_factory=dict)


COLUMNS = (("benchmark", "Benchmark"), ("case", "Case"), ("reference", "Reference"),
           ("ours", "Mosic"), ("check", "Check"))  # fmt: skip


def format_table(rows: list[Row], markdown: bool = False) -> str:
    cells = [[title for _, title in COLUMNS]]
    cells += [[str(getattr(row, name)) for name, _ in COLUMNS] for row in rows]
    if markdown:
        lines = ["| " + " | ".join(cells[0]) + " |", "|" + "---|" * len(COLUMNS)]
        lines += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in cells[1:]]
        return "\n".join(lines)
    widths = [max(len(r[i]) for r in cells) for i in range(len(COLUMNS))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _exit_on_sigterm(signum, frame) -> None:
    # Python's default SIGTERM handling skips ``finally``: servers (in sessions of their own)
    # and the throwaway PostgreSQL would outlive us. Exiting this way runs every cleanup.
    raise SystemExit(128 + signum)


def arguments(description: str) -> argparse.Namespace:
    """Parse a benchmark's command line (``--json PATH``), and make SIGTERM clean up."""
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--json", type=Path, help="also write the result rows to this file")
    return parser.parse_args()


def report(rows: list[Row], json_path: Path | None) -> None:
    print()
    print(format_table(rows))
    if json_path is not None:
        json_path.write_text(json.dumps([asdict(r) for r in rows], indent=2))


def mb_per_s(nbytes: int, seconds: float) -> float:
    return nbytes / MiB / seconds if seconds > 0 else float("inf")


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- places ----------------------------------------------------------------------------------
@contextlib.contextmanager
def temp_dir(prefix: str) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def postgres_url() -> contextlib.AbstractContextManager[str]:
    from tests.support.postgres import configured_or_throwaway

    return configured_or_throwaway()


# -- a real server --------------------------------------------------------------------------
def mosic_server(
    data_dir: Path,
    *,
    workers: int = 1,
    database_url: str | None = None,
    env: dict[str, str] | None = None,
) -> contextlib.AbstractContextManager[Mosic]:
    """``mosic serve --workers N`` on 127.0.0.1 and a free port with the benchmarks' key,
    ready (``/readyz`` 200) when entered; ``env``: more ``MOSIC_*`` settings."""
    settings = dict(env or {})
    if database_url:
        settings["MOSIC_DATABASE_URL_OVERRIDE"] = database_url
    return mosic_serve(data_dir, "--workers", str(workers), api_key=API_KEY, **settings)


# -- uploads --------------------------------------------------------------------------------
def upload_streamed(
    server: Mosic, path: Path, content_type: str, chunk_bytes: int = MiB, timeout: float = 120
) -> tuple[httpx.Response, float]:
    """POST ``path`` as multipart, read from disk chunk by chunk (never whole in memory),
    with a Content-Length as curl would send. Returns the response and the seconds taken."""
    boundary = f"mosic-bench-{secrets.token_hex(8)}"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
        f'filename="{path.name}"\r\nContent-Type: {content_type}\r\n\r\n'
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    size = path.stat().st_size

    def body() -> Iterator[bytes]:
        yield head
        with path.open("rb") as fh:
            while chunk := fh.read(chunk_bytes):
                yield chunk
        yield tail

    headers = {
        **server.headers,
        "Content-Type": f"multipart/form-data; boundary={boundary}",
        "Content-Length": str(len(head) + size + len(tail)),
    }
    with httpx.Client(timeout=timeout) as client:
        began = time.perf_counter()
        response = client.post(server.base + "/play/upload", content=body(), headers=headers)
        elapsed = time.perf_counter() - began
    return response, elapsed


# -- processes ------------------------------------------------------------------------------
def _group_stats(pgid: int) -> Iterator[tuple[int, list[str]]]:
    """(pid, /proc/<pid>/stat fields after the command name) of each live process in a
    process group."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                # The command name may hold spaces and parentheses: split after the last ")".
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:  # fields[2] is the pgrp
            yield int(entry), fields


def group_pids(pgid: int) -> list[int]:
    """The live processes of a process group (a server and, under gunicorn, its workers)."""
    return [pid for pid, _ in _group_stats(pgid)]


def group_cpu_seconds(pgid: int) -> float:
    """User + system CPU seconds used so far by the live processes of a process group (a
    server started by ``mosic_server`` and, under gunicorn, its workers)."""
    # utime and stime are fields 11 and 12 after the command name.
    ticks = sum(int(f[11]) + int(f[12]) for _, f in _group_stats(pgid))
    return ticks / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime
