"""Reads by whose key: ``GET /play/{id}/stats`` and ``GET /play/{id}`` with the configured
admin key (compared in memory) and with a listener's key (found in the database on every
request, so a revoked key is refused at once), beside the raw ASGI ceiling, in one run.

Issue 18 holds stats and single-clip reads at ≥ 12 % of the ceiling; issue 20 asks the same
with a key lookup per request. Mosic on PostgreSQL (the throwaway cluster of the tests, or
``MOSIC_TEST_POSTGRES_URL``) and on SQLite, one worker each, 64 connections.

    python -m bench.keys [--seconds 8] [--clips 50]
"""

from __future__ import annotations

import argparse
import contextlib
import sys

import httpx

from bench.common import log, mosic_server, postgres_url, temp_dir
from bench.load import wrk
from bench.references import ceiling
from bench.suite import API_CONNECTIONS, make_library, pin_postgres, pin_server, seed

WARMUP_S = 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8, help="of each measured load")
    parser.add_argument("--clips", type=int, default=50, help="clips the reads rotate over")
    args = parser.parse_args()
    rows = []
    with temp_dir("mosic-bench-keys-") as root, contextlib.ExitStack() as stack:
        files, _ = make_library(root / "library", args.clips)
        cap = stack.enter_context(ceiling(root))
        pin_server(cap.pid)
        top = load(root, cap.base, ["/"], None, args.seconds)
        rows.append(("ceiling", "", "", top))
        url = stack.enter_context(postgres_url())
        pin_postgres(url)
        for db, database_url in (("PostgreSQL", url), ("SQLite", None)):
            server = stack.enter_context(mosic_server(root / db, database_url=database_url))
            pin_server(server.pid)
            ids = seed(server, files)
            listener = make_listener(server)
            for read, path in (("stats", "/play/{}/stats"), ("clip", "/play/{}")):
                paths = [path.format(i) for i in ids]
                for who, key in (("admin (configured)", server.api_key), ("listener", listener)):
                    rps = load(root, server.base, paths, {"X-API-Key": key}, args.seconds)
                    rows.append((db, read, who, rps))
    print(f"{'server':<11} {'read':<6} {'key':<19} {'req/s':>9} {'of ceiling':>11}")
    for db, read, who, rps in rows:
        print(f"{db:<11} {read:<6} {who:<19} {rps:>9,.0f} {rps / top:>10.1%}")
    return 0


def make_listener(server) -> str:
    made = httpx.post(server.base + "/users", headers=server.headers, json={"name": "bench"})
    made.raise_for_status()
    return made.json()["key"]["key"]


def load(root, base: str, paths: list[str], headers: dict | None, seconds: float) -> float:
    kwargs = {"connections": API_CONNECTIONS, "headers": headers, "scratch": root}
    wrk(base, paths, seconds=WARMUP_S, **kwargs)
    result = wrk(base, paths, seconds=seconds, **kwargs)
    assert not result.errors, f"{base}{paths[0]}: {result.errors} errors"
    log(f"{base}{paths[0]}: {result.rps:,.0f} req/s, p99 {result.p99_ms:.1f} ms")
    return result.rps


if __name__ == "__main__":
    sys.exit(main())
