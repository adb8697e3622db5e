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
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

from bench.common import Row, format_table, log, mosic_server, postgres_url, temp_dir
from bench.references import ceiling
from bench.suite import FULL, Runner, latency, make_library, pin_postgres, pin_server, ratio, seed

CLIPS = 200
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
            runner.load("ceiling", cap.base, ["/"], CONNECTIONS)
            url = stack.enter_context(postgres_url())
            pin_postgres(url)
            ids: list[str] = []
            runs = [(name, env, url) for name, env in variants(root).items()]
            runs.append(("sqlite", {}, None))
            for name, env, database in runs:
                data = root / ("data-sqlite" if database is None else "data-pg")
                with mosic_server(data, database_url=database, env=env) as server:
                    pin_server(server.pid)
                    if database is None or not ids:
                        ids = seed(server, files)
                    some = ids[:100]
                    for route, paths in (
                        ("stats", [f"/play/{i}/stats" for i in some]),
                        ("list500", ["/play?limit=500"]),
                    ):
                        key = f"{name}:{route}"
                        runner.load(
                            key,
                            server.base,
                            paths,
                            CONNECTIONS,
                            server.headers,
                            slow=route == "list500",
                        )
        ceiling_rps = runner.results["ceiling"]["rps"]
        for key, result in runner.results.items():
            if key == "ceiling":
                continue
            name, route = key.split(":")
            rows.append(
                Row(
                    "experiment",
                    f"{route}, {name}",
                    f"ceiling {ceiling_rps:,.0f} req/s",
                    f"{result['rps']:,.0f} req/s = {ratio(result['rps'], ceiling_rps)}",
                    latency(result),
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
