"""Two versions of Mosic's list page, measured in the same run: ``GET /play?limit=500``.

One throwaway PostgreSQL, one database with ``--clips`` clip rows (bench/scale_rows.py), and
two ``mosic serve`` on it, each with one worker pinned to CPU 0 (wrk and PostgreSQL on CPU 1):
A imports ``mosic`` from ``--before`` (another checkout, e.g. ``git worktree add`` of main),
B from this checkout. The same wrk load (64 connections) goes to each in turn, ``--rounds``
times, so both see the same machine; it prints rows/s per round and B ÷ A, and the server's
CPU time per request (user + system, from /proc): on a machine shared with other work, which
takes CPU 0 from the server now and then, that figure moves far less than the rates do. The
two answers are compared first: the same bytes, or the run stops.

Run: ``python -m bench.ab_lists --before /path/to/other/checkout`` (``--rounds 3``,
``--seconds 6``, ``--clips 2000``).
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
from pathlib import Path

import httpx

from bench.common import API_KEY, group_cpu_seconds, log, temp_dir
from bench.load import py_spy, summarise_profile, wrk
from bench.scale import fresh_database, mosic_command
from bench.scale_rows import insert_postgresql
from bench.suite import pin_postgres, pin_server
from tests.support.postgres import throwaway_cluster
from tests.support.server import mosic_serve

LIMIT = 500
CONNECTIONS = 64
SIGNING_SECRET = "bench-ab-" + "0" * 32  # both sign alike, so their answers compare


def same_answer(a, b, path: str) -> None:
    """The two servers give the same body (signed links are made for the same minute and
    key, so even those match)."""
    for attempt in range(3):
        got = [httpx.get(s.base + path, headers=s.headers, timeout=30) for s in (a, b)]
        if got[0].content == got[1].content:
            return
        if attempt == 2:
            raise SystemExit(f"the two versions answer {path} differently")


def profile(server, path: str, root: Path, out: Path, seconds: float) -> None:
    """py-spy (sampling, so slower than measured) of ``server`` under the same load."""
    raw = root / "profile.raw"
    with py_spy(server.pid, raw, seconds):
        result = wrk(
            server.base,
            [path],
            connections=CONNECTIONS,
            seconds=seconds,
            headers=server.headers,
            scratch=root,
            timeout_s=30,
        )
    head = f"# {path}: py-spy of B under wrk -c{CONNECTIONS} ({result.rps:,.0f} req/s sampled)\n"
    out.write_text(head + summarise_profile(raw))
    log(f"profile written to {out}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--before", type=Path, required=True, help="checkout A imports from")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=6)
    parser.add_argument("--clips", type=int, default=2000)
    parser.add_argument("--profile", type=Path, help="also write B's py-spy profile here (.txt)")
    args = parser.parse_args()
    path = f"/play?limit={LIMIT}"
    with contextlib.ExitStack() as stack:
        root = stack.enter_context(temp_dir("mosic-ab-"))
        cluster = stack.enter_context(throwaway_cluster())
        pin_postgres(cluster)
        url = stack.enter_context(fresh_database(cluster, "mosic_ab"))
        mosic_command(["migrate"], root, url, 600)
        insert_postgresql(url, args.clips)
        servers = {}
        for name, where in (("A", args.before), ("B", None)):
            server = stack.enter_context(
                mosic_serve(
                    root / name,
                    "--workers",
                    "1",
                    api_key=API_KEY,
                    pythonpath=where,
                    MOSIC_DATABASE_URL_OVERRIDE=url,
                    MOSIC_SIGNING_SECRET=SIGNING_SECRET,
                )
            )
            pin_server(server.pid)
            servers[name] = server
        same_answer(servers["A"], servers["B"], path)
        rows: dict[str, list[float]] = {"A": [], "B": []}
        cpu: dict[str, list[float]] = {"A": [], "B": []}
        for round_ in range(args.rounds):
            for name, server in servers.items():
                used = group_cpu_seconds(server.pid)
                result = wrk(
                    server.base,
                    [path],
                    connections=CONNECTIONS,
                    seconds=args.seconds,
                    headers=server.headers,
                    scratch=root,
                    timeout_s=30,
                )
                used = group_cpu_seconds(server.pid) - used
                rate = result.rps * LIMIT
                rows[name].append(rate)
                # Over the answers wrk counted: the 64 cut off at its end cost a little too.
                cpu[name].append(used * 1000 / max(1, result.requests))
                log(
                    f"round {round_ + 1} {name}: {rate:,.0f} rows/s "
                    f"(p50 {result.p50_ms:.0f} ms, p99 {result.p99_ms:.0f} ms, "
                    f"errors {result.errors or 0}; server CPU {cpu[name][-1]:.2f} ms a request)"
                )
        for round_ in range(args.rounds):
            log(f"round {round_ + 1}: B/A = {rows['B'][round_] / rows['A'][round_]:.2f}")
        a, b = statistics.median(rows["A"]), statistics.median(rows["B"])
        log(f"median A {a:,.0f} rows/s, B {b:,.0f} rows/s, B/A = {b / a:.2f}")
        a, b = statistics.median(cpu["A"]), statistics.median(cpu["B"])
        log(f"median server CPU a request: A {a:.2f} ms, B {b:.2f} ms, A/B = {a / b:.2f}")
        if args.profile:
            profile(servers["B"], path, root, args.profile, args.seconds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
