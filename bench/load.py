"""Load generators and process placement for the suite: wrk (with a generated Lua script for
the API-key header and a rotation of paths), a raw-socket asyncio client that opens thousands
of connections at once (for exact play counts), CPU pinning with ``taskset`` and py-spy
profiles of a running server. Every load is bounded in time and in count.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

SERVER_CPU = 0  # the server under test (Mosic, nginx, the ceiling, supysonic)
CLIENT_CPU = 1  # wrk, the raw client, PostgreSQL


# -- placement ------------------------------------------------------------------------------
def can_pin() -> bool:
    return shutil.which("taskset") is not None and (os.cpu_count() or 1) >= 2


def pin(pids: list[int], cpu: int) -> None:
    """Pin every thread of these processes to one CPU (new threads and children inherit it)."""
    if not can_pin():
        return
    for pid in pids:
        subprocess.run(
            ["taskset", "-a", "-p", "-c", str(cpu), str(pid)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=False,
        )


def pinned(command: list[str], cpu: int) -> list[str]:
    return ["taskset", "-c", str(cpu), *command] if can_pin() else command


# -- wrk ------------------------------------------------------------------------------------
WRK_SCRIPT = """
local paths = {%(paths)s}
local headers = {%(headers)s}
local n = 0
request = function()
  n = n + 1
  return wrk.format("GET", paths[(n %% #paths) + 1], headers)
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCHJSON {"requests":%%d,"duration_us":%%d,"bytes":%%d,"connect":%%d,"read":%%d,' ..
    '"write":%%d,"status":%%d,"timeout":%%d,"p50_us":%%d,"p90_us":%%d,"p99_us":%%d,' ..
    '"max_us":%%d,"mean_us":%%f}\\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status,
    e.timeout, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean))
end
"""


# Only when a load is bounded by count too: a ``response`` function makes wrk hand every
# response to Lua, which costs the client a little. wrk's main thread still sleeps the whole
# duration after a thread stops, so a load stopped by count reports its requests over the
# whole duration: use connections / mean latency (Little's law) for its rate instead.
WRK_STOP = """
local answered = 0
response = function(status, headers, body)
  answered = answered + 1
  if answered >= %(max)d then
    wrk.thread:stop()
  end
end
"""


@dataclass
class WrkResult:
    requests: int
    seconds: float
    nbytes: int
    errors: dict
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    mean_ms: float = 0.0

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def mib_s(self) -> float:
        return self.nbytes / 2**20 / self.seconds if self.seconds else 0.0

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())


def _lua_string(text: str) -> str:
    return json.dumps(text)  # a JSON string literal is a valid Lua string literal here


def wrk(
    base: str,
    paths: list[str],
    *,
    connections: int,
    seconds: float,
    headers: dict[str, str] | None = None,
    threads: int = 1,
    scratch: Path,
    timeout_s: int = 10,
    max_requests: int | None = None,
) -> WrkResult:
    """Run wrk against ``base`` for ``seconds`` over ``connections``, rotating ``paths``;
    ``max_requests``: each thread also stops after that many responses (wrk still runs for
    ``seconds`` and divides by them: see ``WRK_STOP``)."""
    script = scratch / f"wrk-{time.monotonic_ns()}.lua"
    text = WRK_SCRIPT % {
        "paths": ", ".join(_lua_string(p) for p in paths),
        "headers": ", ".join(
            f"[{_lua_string(k)}] = {_lua_string(v)}" for k, v in (headers or {}).items()
        ),
    }
    if max_requests is not None:
        text += WRK_STOP % {"max": max_requests}
    script.write_text(text)
    command = pinned(
        [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            f"--timeout={timeout_s}s",
            "-s",
            str(script),
            base,
        ],
        CLIENT_CPU,
    )
    proc = subprocess.run(
        command, capture_output=True, text=True, timeout=seconds + timeout_s + 30, check=False
    )
    script.unlink(missing_ok=True)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("BENCHJSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk gave no result ({proc.returncode}):\n{proc.stdout}{proc.stderr}")
    data = json.loads(line.split(" ", 1)[1])
    return WrkResult(
        requests=data["requests"],
        seconds=data["duration_us"] / 1e6,
        nbytes=data["bytes"],
        errors={k: data[k] for k in ("connect", "read", "write", "status", "timeout") if data[k]},
        p50_ms=data["p50_us"] / 1000,
        p90_ms=data["p90_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        max_ms=data["max_us"] / 1000,
        mean_ms=data["mean_us"] / 1000,
    )


# -- many connections at once ---------------------------------------------------------------
async def _one_get(host: str, port: int, request: bytes, expect: int, timeout: float) -> str:
    """One request on a connection of its own; the outcome as a label ("ok" or why not)."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except (TimeoutError, OSError) as exc:
        return f"connect {type(exc).__name__}"
    try:
        writer.write(request)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
        status = int(head.split(b" ", 2)[1])
        length = None
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        body = 0
        while length is None or body < length:
            chunk = await asyncio.wait_for(reader.read(256 * 1024), timeout)
            if not chunk:
                break
            body += len(chunk)
        if status != 200:
            return f"HTTP {status}"
        if body != expect:
            return f"short body {body}/{expect}"
        return "ok"
    except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError) as exc:
        return type(exc).__name__
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


async def _many_gets(
    host: str, port: int, path: str, headers: dict, n: int, expect: int, timeout: float
) -> tuple[float, Counter]:
    lines = [f"GET {path} HTTP/1.1", f"Host: {host}:{port}", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    request = ("\r\n".join(lines) + "\r\n\r\n").encode()
    began = time.perf_counter()
    outcomes = await asyncio.wait_for(
        asyncio.gather(*(_one_get(host, port, request, expect, timeout) for _ in range(n))),
        timeout * 3,
    )
    return time.perf_counter() - began, Counter(outcomes)


def concurrent_gets(
    base: str, path: str, headers: dict, n: int, expect: int, timeout: float = 60
) -> tuple[float, Counter]:
    """``n`` GETs at once, each on its own connection (so ``n`` connections are open together):
    (seconds until the last one finished, outcome counts)."""
    host, port = base.removeprefix("http://").rsplit(":", 1)
    with contextlib.suppress(ImportError):
        import uvloop

        return uvloop.run(_many_gets(host, int(port), path, headers, n, expect, timeout))
    return asyncio.run(_many_gets(host, int(port), path, headers, n, expect, timeout))


# -- profiles -------------------------------------------------------------------------------
@contextlib.contextmanager
def py_spy(pid: int, out: Path | None, seconds: float, native: bool = False) -> Iterator[None]:
    """Sample ``pid`` with py-spy (collapsed stacks with line numbers, idle threads skipped)
    while the block runs, at most ``seconds``, into ``out``; nothing when ``out`` is None or
    py-spy is missing. ``native``: C frames too (uvloop, psycopg2, the interpreter). SIGINT
    makes py-spy write what it has and stop."""
    binary = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if out is None or not Path(binary).exists():
        yield
        return
    command = [
        binary,
        "record",
        "--pid",
        str(pid),
        "--format",
        "raw",
        "--rate",
        "250",
        "--duration",
        str(max(1, round(seconds))),
        "--output",
        str(out),
        # Native stacks need the process paused while sampled; Python-only ones do not.
        *(["--native"] if native else ["--nonblocking"]),
    ]
    proc = subprocess.Popen(
        pinned(command, CLIENT_CPU), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        time.sleep(0.3)
        yield
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=seconds + 20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


_LINE = re.compile(r":\d+\)$")
_FILE = re.compile(r"\((.*?)(?::\d+)?\)$")


def _package(frame: str) -> str:
    """Where a frame's code lives: a site-packages distribution, a mosic module, or the
    standard library module."""
    match = _FILE.search(frame)
    path = match.group(1) if match else frame
    if "site-packages/" in path:
        return path.split("site-packages/", 1)[1].split("/", 1)[0].removesuffix(".py")
    if "/mosic/" in path:
        return "mosic/" + path.rsplit("/mosic/", 1)[1]
    if "/lib/python3" in path:
        return "stdlib " + path.rsplit("/", 1)[-1]
    return path


# Where request time goes, by the frames on the stack (a sample counts in every category whose
# pattern its stack matches, so categories overlap; indented ones are parts of the one above).
CATEGORIES = {
    "responder (falcon do_before: auth hook + resource)": r"do_before \(falcon",
    "  Catalogue.get (SELECT clips by id, coalesced)": r"Catalogue\.get|BatchedLookup\._read",
    "  Listing.list (SELECT page + count)": r"Listing\.list",
    "  PlayCounts.count (a play: global and the user's own)": r"PlayCounts\.",
    "  Marks.of (the caller's marks of clips)": r"Marks\.of",
    "SQL text built by peewee per query (Context.sql)": r"Context\.sql \(peewee",
    "driver (psycopg cursor, waiting, preparing)": (
        r"psycopg/(_cursor_base|cursor_async|waiting|_preparing)"
    ),
    "rows -> records (mosic/persistence/compiled.py)": r"Records\.__call__",
    "rows -> peewee Model objects (fetch_models)": r"fetch_models",
    "pool acquire/release (psycopg_pool)": r"psycopg_pool/",
    "clip_json (dict per clip)": r"clip_json",
    "  iso() timestamps": r"iso \(mosic/api/shapes",
    "  Signer.query (HMAC per clip)": r"Signer\.query",
    "  str(UUID)": r"UUID\.__str__",
    "JSON encoding (json.dumps / orjson)": r"dumps \(json|_dump_json",
    "request observer (metrics + access log)": r"RequestObserver",
    "  logging (record, handler)": r"logging/__init__",
    "uvicorn send (httptools_impl RequestResponseCycle.send)": r"RequestResponseCycle\.send",
    "page-cache reads on the loop (read_cached)": r"read_cached",
    "thread hops on the loop (to_thread, executor submit)": r"to_thread|ThreadPoolExecutor\.submit",
    "worker threads (the thread pool: pread, file open/close)": r"Thread\._bootstrap",
}


# A thread-pool worker waiting for work (``work_queue.get`` in concurrent/futures/thread.py)
# blocks on a lock that py-spy does not always see as idle. Such a stack has no Python frame
# after ``_worker`` (a busy one goes on into ``_WorkItem.run``); with --native, only C frames
# (the lock wait in libc) follow it. These samples are left out.
_WORKER = "_worker (concurrent/futures/thread.py:"


def _idle_worker(stack: str) -> bool:
    _, found, tail = stack.partition(_WORKER)
    after = tail.split(";")[1:]  # the frames called from _worker
    return bool(found) and not any(".py:" in frame for frame in after)


def _stacks(raw: Path) -> Iterator[tuple[str, int]]:
    """(stack, samples) of py-spy's collapsed output, without idle pool workers."""
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit() and not _idle_worker(stack):
            yield stack, int(count)


def breakdown(raw: Path) -> str:
    """The share of samples whose stack matches each of ``CATEGORIES``."""
    patterns = {name: re.compile(p) for name, p in CATEGORIES.items()}
    hits = dict.fromkeys(CATEGORIES, 0)
    total = 0
    for stack, count in _stacks(raw):
        total += count
        for name, pattern in patterns.items():
            if pattern.search(stack):
                hits[name] += count
    lines = ["where the time goes (share of samples with this on the stack):"]
    lines += [f"{100 * n / total:6.1f}%  {name}" for name, n in hits.items() if n and total]
    return "\n".join(lines) + "\n"


def summarise_profile(raw: Path, top: int = 30) -> str:
    """A text summary of py-spy's collapsed stacks: the functions where samples were taken
    (self), the functions on the stack (inclusive) and self time by package, as percentages
    of all samples."""
    own: Counter = Counter()
    inclusive: Counter = Counter()
    packages: Counter = Counter()
    total = 0
    for stack, n in _stacks(raw):
        frames = [
            _LINE.sub(")", f) for f in stack.split(";") if not f.startswith(("process ", "thread "))
        ]
        if not frames:
            continue
        total += n
        own[frames[-1]] += n
        packages[_package(frames[-1])] += n
        for frame in dict.fromkeys(frames):  # each once, in a stable order
            inclusive[frame] += n
    if not total:
        return "no samples\n"

    def table(counter: Counter, rows: int = top) -> list[str]:
        return [f"{100 * n / total:6.1f}%  {frame}" for frame, n in counter.most_common(rows)]

    lines = [f"{total} samples (250 Hz; idle threads and idle pool workers excluded)", ""]
    lines += [breakdown(raw)]
    lines += ["self time by package/module:"]
    lines += table(packages, 20)
    lines += ["", f"top {top} functions by self time:"]
    lines += table(own)
    lines += ["", f"top {top} functions by inclusive time (on the stack):"]
    lines += table(inclusive)
    return "\n".join(lines) + "\n"
