"""Where the request time goes, measured from outside: the same reads under settings that
switch one cost off at a time, each beside the raw ASGI ceiling in the same run.

Variants (``mosic serve``, one worker pinned to CPU 0, PostgreSQL and wrk on CPU 1):
* ``default`` — as shipped (pool of 10 connections, access log on, in-process metrics);
* ``pool64`` — ``MOSIC_DB_POOL_SIZE=64``: one connection per wrk connection, so no request
  ever waits for the pool (shows what pool waits do to p50/p99);
* ``no-access-log`` — ``MOSIC_LOG_LEVEL=WARNING``, so the access log writes nothing;
* ``multiprocess-metrics`` — ``PROMETHEUS_MULTIPROC_DIR`` set, as under gunicorn
  (``--workers N``): prometheus-client keeps every value in mmap'd files;
* ``sqlite`` — the embedded database instead of PostgreSQL.

Run: ``python -m bench.experiments [--seconds 6] [--json PATH]``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import statistics
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

from bench.common import Row, format_table, log, mosic_server, postgres_url, temp_dir
from bench.references import ceiling
from bench.suite import FULL, Runner, latency, make_library, pin_postgres, pin_server, ratio, seed

CLIPS = 500
CONNECTIONS = 64


def variants(scratch: Path) -> dict[str, dict[str, str]]:
    return {
        "default": {},
        "pool64": {"MOSIC_DB_POOL_SIZE": "64"},
        "no-access-log": {"MOSIC_LOG_LEVEL": "WARNING"},
        "multiprocess-metrics": {"PROMETHEUS_MULTIPROC_DIR": tempfile.mkdtemp(dir=scratch)},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=6, help="length of each load")
    parser.add_argument("--rounds", type=int, default=2, help="variants run in turn, N times")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    rows: list[Row] = []
    with temp_dir("mosic-bench-exp-") as root:
        runner = Runner(replace(FULL, seconds=args.seconds), root)
        files, _ = make_library(root / "library", CLIPS)
        with contextlib.ExitStack() as stack:
            cap = stack.enter_context(ceiling(root))
            pin_server(cap.pid)
            url = stack.enter_context(postgres_url())
            pin_postgres(url)
            ids_by_db: dict[str | None, list[str]] = {}
            runs = [(name, env, url) for name, env in variants(root).items()]
            runs.append(("sqlite", {}, None))
            # In turn, round after round: a machine that gets busier shifts every variant.
            for (name, env, database), turn in (
                (run, turn) for turn in range(args.rounds) for run in runs
            ):
                if name == runs[0][0]:
                    runner.load(f"ceiling:{turn}", cap.base, ["/"], CONNECTIONS)
                data = root / ("data-sqlite" if database is None else "data-pg")
                with mosic_server(data, database_url=database, env=env) as server:
                    pin_server(server.pid)
                    if database not in ids_by_db:  # each database is seeded once
                        ids_by_db[database] = seed(server, files)
                    some = ids_by_db[database][:100]
                    for route, paths in (
                        ("stats", [f"/play/{i}/stats" for i in some]),
                        ("list500", ["/play?limit=500"]),
                    ):
                        key = f"{name}:{route}:{turn}"
                        runner.load(
                            key,
                            server.base,
                            paths,
                            CONNECTIONS,
                            server.headers,
                            slow=route == "list500",
                        )
        ceiling_runs = [r["rps"] for k, r in runner.results.items() if k.startswith("ceiling:")]
        ceiling_rps = statistics.median(ceiling_runs)
        grouped: dict[str, list[dict]] = {}
        for key, result in runner.results.items():
            if not key.startswith("ceiling:"):
                grouped.setdefault(key.rsplit(":", 1)[0], []).append(result)
        for key, results in grouped.items():
            name, route = key.split(":")
            result = {
                "rps": statistics.median(r["rps"] for r in results),
                "p50_ms": statistics.median(r["p50_ms"] for r in results),
                "p99_ms": statistics.median(r["p99_ms"] for r in results),
                "requests": sum(r["requests"] for r in results),
                "seconds": sum(r["seconds"] for r in results),
                "errors": {},
                "rounds_rps": [round(r["rps"]) for r in results],
            }
            rows.append(
                Row(
                    "experiment",
                    f"{route}, {name}",
                    f"ceiling {ceiling_rps:,.0f} req/s (rounds {[round(x) for x in ceiling_runs]})",
                    f"{result['rps']:,.0f} req/s = {ratio(result['rps'], ceiling_rps)}",
                    latency(result) + f"; rounds {result['rounds_rps']} req/s",
                    result,
                )
            )
    log("done")
    print(format_table(rows, markdown=True))
    if args.json:
        args.json.write_text(json.dumps(runner.results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
