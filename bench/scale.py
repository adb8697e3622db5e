"""The scale benchmark of issue 18: every catalogue read at 1k, 10k, 100k and 1M clips.

For each database (SQLite, a throwaway PostgreSQL) and each size: a fresh data directory and
database, ``mosic migrate``, clip rows inserted straight into the database with realistic tags
(bench/scale_rows.py), ``mosic reindex`` when this version has it (timed), then ``mosic serve``
(one worker on 127.0.0.1, pinned to CPU 0; wrk and PostgreSQL on CPU 1) and, for every read
of the issue's table: p50 and p95 of one client asking one request at a time, and req/s at 16
connections (wrk). Prints a table per database, each size beside the smallest (1k), and
writes every figure as JSON. Every loop is bounded in count and in time; everything started
is stopped and removed at the end, also on Ctrl-C or SIGTERM.

Run: ``python -m bench.scale`` (``--sizes 1k,10k``, ``--db sqlite|postgresql|both``,
``--out PATH``, ``--markdown``).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx

from bench.common import API_KEY, REPO_ROOT, group_cpu_seconds, log, mosic_server, temp_dir
from bench.load import can_pin, wrk
from bench.run_all import machine
from bench.scale_rows import insert_postgresql, insert_sqlite
from bench.suite import pin_postgres, pin_server
from tests.support.measure import RssSampler, rss_kib
from tests.support.server import Mosic, clean_env

DEFAULT_SIZES = "1k,10k,100k,1M"
SQLITE_FILE = "mosic.sqlite3"  # where mosic keeps its SQLite database in the data dir
SUBSONIC = f"apiKey={API_KEY}&f=json&v=1.16.1&c=mosic-bench"
COMMAND_TIMEOUT_S = 3600  # migrate, reindex: generous, but not forever
DRAIN_TIMEOUT_S = 120


@dataclass(frozen=True)
class Plan:
    requests: int  # sequential requests measured per read
    warmups: int
    read_seconds: float  # bound on one read's sequential requests, warm-ups included
    connections: int
    load_seconds: float  # at least; longer for slow reads (see ``loaded``)
    load_max_seconds: float
    load_requests: int  # bound on the requests of one load


@dataclass(frozen=True)
class Read:
    name: str
    kind: str  # "subsonic" or "rest"
    paths: tuple[str, ...]  # rotated over


# -- sizes and places -----------------------------------------------------------------------
def parse_size(text: str) -> int:
    text = text.strip().lower()
    factor = {"k": 1_000, "m": 1_000_000}.get(text[-1:], 1)
    return int(float(text.rstrip("km")) * factor)


def size_label(n: int) -> str:
    if n >= 1_000_000 and n % 1_000_000 == 0:
        return f"{n // 1_000_000}M"
    if n >= 1_000 and n % 1_000 == 0:
        return f"{n // 1_000}k"
    return str(n)


@contextlib.contextmanager
def fresh_database(cluster_url: str, name: str) -> Iterator[str]:
    """A new, empty database on the cluster, dropped on the way out."""
    import psycopg

    with psycopg.connect(cluster_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    parts = urlsplit(cluster_url)
    try:
        yield urlunsplit(parts._replace(path="/" + name))
    finally:
        with psycopg.connect(cluster_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def mosic_command(args: list[str], data: Path, url: str | None, timeout: float) -> float:
    """Run ``mosic ARGS`` against this data dir (and database); its seconds."""
    settings = {"MOSIC_DATA_DIR": str(data), "MOSIC_API_KEY": API_KEY}
    if url:
        settings["MOSIC_DATABASE_URL_OVERRIDE"] = url
    began = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "mosic", *args],
        env=clean_env(**settings),
        cwd=data,  # no stray ./.env
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"mosic {' '.join(args)} exited {proc.returncode}:\n{proc.stderr}")
    return time.perf_counter() - began


def has_reindex() -> bool:
    """Whether this version's command line has ``mosic reindex`` (``mosic --help``)."""
    proc = subprocess.run(
        [sys.executable, "-m", "mosic", "--help"],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return "reindex" in proc.stdout


# -- the reads ------------------------------------------------------------------------------
def reads(server: Mosic) -> list[Read]:
    """The reads of the issue's table, with ids asked from the server itself."""
    with httpx.Client(base_url=server.base, headers=server.headers, timeout=120) as client:
        first = client.get("/play?limit=100")
        first.raise_for_status()
        clip_ids = [c["id"] for c in first.json()]
        second = first.links.get("next", {}).get("url")
        listed = subsonic(client, "getAlbumList2", "type=alphabeticalByName&size=20")
        album_ids = [a["id"] for a in listed["albumList2"].get("album", [])]
    if not clip_ids or not album_ids or not second:
        raise RuntimeError(f"no clips, albums or second page: {clip_ids[:1]} {album_ids[:1]}")
    some = clip_ids[:100]

    def sub(method: str, *queries: str) -> tuple[str, ...]:
        return tuple(f"/rest/{method}?{q + '&' if q else ''}{SUBSONIC}" for q in queries)

    return [
        Read("getAlbum", "subsonic", sub("getAlbum", *(f"id={a}" for a in album_ids))),
        Read("getArtists", "subsonic", sub("getArtists", "")),
        Read("getIndexes", "subsonic", sub("getIndexes", "")),
        Read("getAlbumList2 newest", "subsonic", sub("getAlbumList2", "type=newest&size=20")),
        Read("getAlbumList2 random", "subsonic", sub("getAlbumList2", "type=random&size=20")),
        Read("search3 river", "subsonic", sub("search3", "query=river")),
        Read("getGenres", "subsonic", sub("getGenres", "")),
        Read("getRandomSongs", "subsonic", sub("getRandomSongs", "")),
        Read("getSong", "subsonic", sub("getSong", *(f"id={i}" for i in some))),
        Read("GET /play?limit=100", "rest", ("/play?limit=100",)),
        Read("GET /play next page (cursor)", "rest", (second,)),
        Read("GET /play?q=river", "rest", ("/play?q=river",)),
        Read("GET /play/{id}", "rest", tuple(f"/play/{i}" for i in some)),
        Read("GET /play/{id}/stats", "rest", tuple(f"/play/{i}/stats" for i in some)),
    ]


def subsonic(client: httpx.Client, method: str, query: str) -> dict:
    response = client.get(f"/rest/{method}?{query}&{SUBSONIC}")
    response.raise_for_status()
    body = response.json()["subsonic-response"]
    if body.get("status") != "ok":
        raise RuntimeError(f"{method}: {body}")
    return body


def _check(read: Read, response: httpx.Response) -> str | None:
    """Why this answer is not a success, or None."""
    if response.status_code != 200:
        return f"HTTP {response.status_code}"
    if read.kind == "subsonic" and b'"status":"ok"' not in response.content.replace(b" ", b""):
        return "subsonic status not ok"
    return None


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0-1) by linear interpolation between the closest ranks."""
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    rank = q * (len(ordered) - 1)
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def sequential(server: Mosic, read: Read, plan: Plan) -> dict:
    """One client, one request at a time on one keep-alive connection: ``plan.warmups``
    warm-ups, then up to ``plan.requests`` timed ones, all within ``plan.read_seconds``."""
    headers = server.headers if read.kind == "rest" else {}
    timings: list[float] = []
    errors: dict[str, int] = {}
    deadline = time.monotonic() + plan.read_seconds
    n = 0
    with httpx.Client(base_url=server.base, headers=headers, timeout=plan.read_seconds) as client:
        for i in range(plan.warmups + plan.requests):
            if time.monotonic() >= deadline:
                break
            path = read.paths[n % len(read.paths)]
            n += 1
            began = time.perf_counter()
            try:
                response = client.get(path)
                problem = _check(read, response)
            except httpx.HTTPError as exc:
                problem = type(exc).__name__
            elapsed = time.perf_counter() - began
            if problem:
                errors[problem] = errors.get(problem, 0) + 1
            elif i >= plan.warmups:
                timings.append(elapsed * 1000)
    result = {
        "samples": len(timings),
        "errors": errors,
        "p50_ms": statistics.median(timings) if timings else None,
        "p95_ms": percentile(timings, 0.95) if timings else None,
        "max_ms": max(timings) if timings else None,
        "bounded_by_time": len(timings) < plan.requests and not errors,
    }
    return result


def load_window(plan: Plan, p50_ms: float | None) -> float:
    """How long a load lasts: ``plan.load_seconds``, or long enough for the connections to
    be answered about three times over when one request alone takes ``p50_ms`` (one
    server core answers 16 slow requests together, all near the end: a short window would
    see none finish), at most ``plan.load_max_seconds``."""
    rounds = 3 * plan.connections * (p50_ms or 0) / 1000
    return min(plan.load_max_seconds, max(plan.load_seconds, rounds))


def loaded(server: Mosic, read: Read, plan: Plan, scratch: Path, p50_ms: float | None) -> dict:
    """``plan.connections`` connections for ``load_window`` seconds or ``plan.load_requests``
    answers, whichever comes first; then wait until the server has finished what the load
    left queued, so the next figure starts on an idle server."""
    headers = server.headers if read.kind == "rest" else None
    result = wrk(
        server.base,
        list(read.paths),
        connections=plan.connections,
        seconds=load_window(plan, p50_ms),
        headers=headers,
        scratch=scratch,
        timeout_s=30,
        max_requests=plan.load_requests,
    )
    out = {**asdict(result), "stopped_by_count": result.requests >= plan.load_requests}
    out["rps"] = ok_rate(out, plan.connections)
    # Little's law, for comparison: what the connections' mean latency says the rate was.
    out["rps_little"] = plan.connections / (result.mean_ms / 1000) if result.mean_ms else None
    out["drain_seconds"], out["drained"] = drain(server)
    return out


def ok_rate(load: dict, connections: int) -> float:
    """Successful answers per second of a wrk load (its ``requests`` count non-2xx answers
    too). A load stopped by count: wrk divides by the whole duration, so by Little's law."""
    ok = load["requests"] - load["errors"].get("status", 0)
    if load["stopped_by_count"] and load["mean_ms"]:
        return connections / (load["mean_ms"] / 1000) * ok / load["requests"]
    return ok / load["seconds"] if load["seconds"] else 0.0


def drain(server: Mosic) -> tuple[float, bool]:
    """Wait (bounded) until the server uses no CPU and answers a cheap request at once: the
    requests a load left queued are done."""
    pgid = os.getpgid(server.pid)
    began = time.monotonic()
    while time.monotonic() - began < DRAIN_TIMEOUT_S:
        before = group_cpu_seconds(pgid)
        time.sleep(0.5)
        if group_cpu_seconds(pgid) - before > 0.05:
            continue
        probe = time.perf_counter()
        with contextlib.suppress(httpx.HTTPError):
            server.get("/readyz", key=False)
            if time.perf_counter() - probe < 0.2:
                return time.monotonic() - began, True
    return time.monotonic() - began, False


# -- one size -------------------------------------------------------------------------------
def run_size(db: str, size: int, root: Path, cluster: str | None, plan: Plan, reindex: bool):
    label = size_label(size)
    data = root / f"{db}-{label}"
    data.mkdir()
    out: dict = {"size": size, "label": label}
    began = time.monotonic()
    with contextlib.ExitStack() as stack:
        stack.callback(shutil.rmtree, data, True)
        url = None
        if cluster is not None:
            url = stack.enter_context(fresh_database(cluster, f"mosic_scale_{label.lower()}"))
        out["migrate_seconds"] = mosic_command(["migrate"], data, url, COMMAND_TIMEOUT_S)
        log(f"{db} {label}: migrated in {out['migrate_seconds']:.1f} s; inserting {size:,} clips")
        if url:
            out["insert_seconds"] = insert_postgresql(url, size)
        else:
            sqlite = data / SQLITE_FILE
            if not sqlite.exists():
                raise RuntimeError(f"mosic migrate made no {sqlite}")
            out["insert_seconds"] = insert_sqlite(sqlite, size)
        log(f"{db} {label}: inserted in {out['insert_seconds']:.1f} s")
        if reindex:
            out["reindex_seconds"] = mosic_command(["reindex"], data, url, COMMAND_TIMEOUT_S)
            log(f"{db} {label}: mosic reindex took {out['reindex_seconds']:.1f} s")
        else:
            out["reindex_seconds"] = None
        out["load_seconds"] = time.monotonic() - began

        server = stack.enter_context(mosic_server(data, database_url=url))
        pin_server(server.pid)
        out["start_seconds"] = time.monotonic() - began - out["load_seconds"]
        the_reads = reads(server)
        rss = stack.enter_context(RssSampler(server.pid, interval=0.1, max_seconds=7200))
        out["rss_before_mib"] = (rss_kib(server.pid) or 0) / 1024
        out["reads"] = {}
        for read in the_reads:
            one = sequential(server, read, plan)
            one["load"] = loaded(server, read, plan, root, one["p50_ms"])
            out["reads"][read.name] = one
            log(f"{db} {label} {read.name}: {_cell(one)}, {one['load']['rps']:,.1f} req/s")
        out["rss_after_mib"] = (rss_kib(server.pid) or 0) / 1024
        out["rss_peak_mib"] = rss.peak_mib()[0]
    out["wall_seconds"] = time.monotonic() - began
    return out


def _cell(one: dict) -> str:
    if one["p50_ms"] is None:
        return f"failed {one['errors']}"
    return f"{one['p50_ms']:,.1f} / {one['p95_ms']:,.1f} ms"


def run_database(db: str, sizes: list[int], root: Path, plan: Plan, reindex: bool) -> dict:
    results: dict = {}
    with contextlib.ExitStack() as stack:
        cluster = None
        if db == "postgresql":
            from bench.common import postgres_url

            cluster = stack.enter_context(postgres_url())
            pin_postgres(cluster)
        for size in sizes:
            results[size_label(size)] = run_size(db, size, root, cluster, plan, reindex)
    return results


# -- the table ------------------------------------------------------------------------------
def table(db: str, results: dict, markdown: bool, connections: int) -> str:
    labels = list(results)
    base = labels[0]
    head = ["read"]
    for label in labels:
        head += [f"{label} p50 / p95 ms", f"{label} req/s @{connections}"]
        if label != base:
            head.append(f"{label} p95 ÷ {base}")
    names = list(next(iter(results.values()))["reads"])
    cells = [head]
    for name in names:
        row = [name]
        for label in labels:
            one = results[label]["reads"].get(name)
            if one is None:
                row += ["-", "-"] + (["-"] if label != base else [])
                continue
            load = one["load"]
            rps = ok_rate(load, connections)
            rate = f"{rps:.2f}" if rps < 1 else f"{rps:,.1f}" if rps < 100 else f"{rps:,.0f}"
            if not rps:
                rate = f"none in {load['seconds']:.0f} s"
            if load["errors"]:
                names = {"status": "non-2xx"}
                errors = (f"{n} {names.get(k, k)}" for k, n in load["errors"].items())
                rate += f" ({', '.join(errors)})"
            cell = _cell(one).removesuffix(" ms")
            if one["bounded_by_time"]:
                cell += f" (n={one['samples']})"
            row += [cell, rate]
            if label != base:
                ref = results[base]["reads"].get(name, {}).get("p95_ms")
                row.append(f"{one['p95_ms'] / ref:.1f}×" if ref and one["p95_ms"] else "-")
        cells.append(row)
    if markdown:
        lines = ["| " + " | ".join(cells[0]) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(r) + " |" for r in cells[1:]]
        text = "\n".join(lines)
    else:
        widths = [max(len(r[i]) for r in cells) for i in range(len(head))]
        lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in cells]
        lines.insert(1, "  ".join("-" * w for w in widths))
        text = "\n".join(lines)
    return f"{db}\n\n{text}\n\n" + "\n".join(_size_line(results[label]) for label in labels)


def _size_line(r: dict) -> str:
    reindex = (
        f"mosic reindex {r['reindex_seconds']:.1f} s"
        if r["reindex_seconds"] is not None
        else "no mosic reindex in this version (skipped)"
    )
    return (
        f"* {r['label']}: migrate {r['migrate_seconds']:.1f} s, insert {r['insert_seconds']:.1f} s"
        f", {reindex}, server ready {r['start_seconds']:.1f} s later; RSS "
        f"{r['rss_before_mib']:.0f} -> {r['rss_after_mib']:.0f} MiB (peak {r['rss_peak_mib']:.0f})"
        f" over the reads; {r['wall_seconds']:.0f} s in all"
    )


def commit() -> str:
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        git = ["git", "-C", str(REPO_ROOT)]
        head = subprocess.run(
            [*git, "log", "-1", "--format=%h %s"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            [*git, "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        return head + (" (with uncommitted changes)" if dirty else "")
    return "unknown"


def _exit_on_sigterm(signum, frame) -> None:
    raise SystemExit(128 + signum)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=DEFAULT_SIZES, help=f"default {DEFAULT_SIZES}")
    parser.add_argument("--db", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--out", type=Path, help="write every figure to this JSON file")
    parser.add_argument("--markdown", action="store_true", help="print Markdown tables")
    parser.add_argument(
        "--tables", type=Path, metavar="JSON", help="only print the tables of an --out file"
    )
    parser.add_argument("--requests", type=int, default=30, help="sequential requests per read")
    parser.add_argument("--warmups", type=int, default=3)
    parser.add_argument(
        "--read-seconds", type=float, default=60, help="bound on one read's sequential requests"
    )
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument(
        "--load-seconds", type=float, default=5, help="of each load, longer for slow reads"
    )
    parser.add_argument("--load-max-seconds", type=float, default=60)
    parser.add_argument("--load-requests", type=int, default=20_000)
    args = parser.parse_args()
    if args.tables:
        saved = json.loads(args.tables.read_text())
        print("\n".join(saved["header"]), end="\n\n")
        for db, results in saved["results"].items():
            print(table(db, results, args.markdown, saved["plan"]["connections"]), end="\n\n")
        return 0
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    if shutil.which("wrk") is None:
        print("bench.scale: wrk is not installed (Debian: apt-get install wrk)", file=sys.stderr)
        return 2
    sizes = sorted({parse_size(s) for s in args.sizes.split(",") if s.strip()})
    databases = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    plan = Plan(
        requests=args.requests,
        warmups=args.warmups,
        read_seconds=args.read_seconds,
        connections=args.connections,
        load_seconds=args.load_seconds,
        load_max_seconds=args.load_max_seconds,
        load_requests=args.load_requests,
    )
    # The servers and commands run from their data dirs: make them import this checkout's
    # mosic, the one whose model the rows were made from.
    paths = [str(REPO_ROOT), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    os.environ["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    reindex = has_reindex()
    load_before = os.getloadavg()
    began = time.monotonic()
    results: dict = {}
    with temp_dir("mosic-scale-") as root:
        for db in databases:
            results[db] = run_database(db, sizes, root, plan, reindex)
            # Print as soon as a database is done: the next may take long.
            print(
                table(db, results[db], args.markdown, plan.connections), file=sys.stderr, flush=True
            )
    elapsed = time.monotonic() - began
    load_after = os.getloadavg()
    pinning = "server CPU 0, wrk and PostgreSQL CPU 1" if can_pin() else "none"
    header = [
        f"Measured {dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H:%M')} UTC at {commit()}"
        f" on {machine()}; pinned: {pinning}",
        f"One client: {plan.warmups} warm-ups then {plan.requests} requests (at most "
        f"{plan.read_seconds:g} s per read); load: wrk, {plan.connections} connections, "
        f"{plan.load_seconds:g} s (up to {plan.load_max_seconds:g} s for slow reads: about three"
        f" answers per connection) or {plan.load_requests:,} answers",
        "mosic reindex: " + ("run and timed" if reindex else "not in this version, skipped"),
        f"Wall time {elapsed:.0f} s; load average before {load_before[0]:.2f}, "
        f"after {load_after[0]:.2f} (above ~2 means other work shared the CPUs)",
    ]
    print()
    print("\n".join(header))
    print()
    for db in databases:
        print(table(db, results[db], args.markdown, plan.connections))
        print()
    if args.out:
        args.out.write_text(
            json.dumps(
                {"header": header, "plan": asdict(plan), "results": results}, indent=2, default=str
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
