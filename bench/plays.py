"""Exact play counting under concurrency.

Reference (the issue's measurement, repeated here): 2,000 concurrent
``UPDATE clip SET play_count = play_count + 1, last_played_at = … RETURNING play_count`` sent
straight through a peewee-async aiopg pool of 10 on PostgreSQL. On SQLite the same 2,000
statements go straight through one aiosqlite connection in WAL mode (SQLite has one writer).
Exact means the 2,000 returned counts are exactly the 2,000 next numbers.

Ours: 2,000 concurrent plain GETs of one real clip's ``/play/{id}/stream`` (a 5 s MP3, every
response read whole) through a real ``mosic serve --workers 1`` and ``--workers 2``, on SQLite
and on PostgreSQL, over 100 keep-alive connections. Exact means every response is a 200 with
the whole file and ``/play/{id}/stats`` reads exactly +2,000 afterwards.

Each side runs ``BATCHES`` batches of 2,000 after a warm-up; the median rate is reported, and
"exact" only if every batch was. The server's CPU time per play (its whole process group) is
reported too: on a 2-core machine the client, the server and PostgreSQL share the CPUs, so the
rate depends on the machine, while CPU per play says what a play costs the server.

Run: ``python -m bench.plays`` (PostgreSQL from ``MOSIC_TEST_DATABASE_URL``, or a throwaway
cluster started for the run).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import random
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

if __package__ in (None, ""):  # run as a file: python bench/plays.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (  # noqa: E402
    Row,
    arguments,
    group_cpu_seconds,
    log,
    mosic_server,
    own_cpu_seconds,
    postgres_url,
    report,
    temp_dir,
)
from tests.support.server import Mosic  # noqa: E402

PLAYS = 2000
BATCHES = 3
WARMUP_PLAYS = 100
CLIENT_CONNECTIONS = 100
CLIENT_SHARDS = 10
REFERENCE_POOL_SIZE = 10
BATCH_TIMEOUT_S = 120
WORKER_COUNTS = (1, 2)
CLIP_SECONDS = 5.0


async def _gather_timed(coros) -> tuple[float, list]:
    """Run ``coros`` at once (an exception is returned, not raised), at most
    ``BATCH_TIMEOUT_S``; (seconds taken, their results)."""
    began = time.perf_counter()
    gathered = asyncio.gather(*coros, return_exceptions=True)
    results = await asyncio.wait_for(gathered, BATCH_TIMEOUT_S)
    return time.perf_counter() - began, results


async def _batches(
    play_many: Callable[[int], Awaitable[tuple[float, Any]]],
    count: Callable[[], Awaitable[int]],
    judge: Callable[[int, int, Any], dict],
) -> dict:
    """A warm-up, then ``BATCHES`` batches of ``PLAYS``, the same way for both sides.

    ``play_many(n)`` plays ``n`` times at once and returns (seconds taken, what came back);
    ``count()`` reads the play count; ``judge(before, after, what came back)`` adds to a
    batch's rate and count change whether it was exact (and whatever else it reports)."""
    await play_many(WARMUP_PLAYS)
    batches = []
    for _ in range(BATCHES):
        before = await count()
        elapsed, outcome = await play_many(PLAYS)
        after = await count()
        batches.append(
            {"rate": PLAYS / elapsed, "delta": after - before, **judge(before, after, outcome)}
        )
    rates = [b["rate"] for b in batches]
    return {
        "rate": statistics.median(rates),
        "rates": rates,
        "exact": all(b["exact"] for b in batches),
        "deltas": [b["delta"] for b in batches],
        "batches": batches,
    }


# -- the reference: the UPDATE straight through a driver -------------------------------------
async def _reference_batches(
    play: Callable[[], Awaitable[int]], count: Callable[[], Awaitable[int]]
) -> dict:
    async def play_many(n: int) -> tuple[float, list]:
        return await _gather_timed([play() for _ in range(n)])

    def judge(before: int, after: int, returned: list) -> dict:
        counts = sorted(r for r in returned if isinstance(r, int))
        return {
            "errors": sum(isinstance(r, BaseException) for r in returned),
            "exact": after - before == PLAYS and counts == list(range(before + 1, after + 1)),
        }

    return await _batches(play_many, count, judge)


# Plain SQL, with no Mosic import, so the reference survives any reshaping of the package:
# the statement Mosic's play counting runs, on the ``clip`` table its migrations create.
UPDATE_PLAY = (
    "UPDATE clip SET play_count = play_count + 1, last_played_at = {p} "
    "WHERE id = {p} RETURNING play_count"
)
SELECT_COUNT = "SELECT play_count FROM clip WHERE id = {p}"
# What Mosic sets on each SQLite connection (WAL, so readers never wait for the writer).
SQLITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA busy_timeout=10000",
    "PRAGMA synchronous=NORMAL",
)


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


async def reference_postgres(url: str, clip_id: str) -> dict:
    import aiopg

    key = uuid.UUID(clip_id).hex
    update, select = UPDATE_PLAY.format(p="%s"), SELECT_COUNT.format(p="%s")
    async with aiopg.create_pool(url, minsize=1, maxsize=REFERENCE_POOL_SIZE) as pool:

        async def one(sql: str, *args) -> int:
            async with pool.acquire() as conn, conn.cursor() as cur:
                await cur.execute(sql, args)
                return (await cur.fetchone())[0]

        async def play() -> int:
            return await one(update, _utcnow(), key)

        async def count() -> int:
            return await one(select, key)

        return await _reference_batches(play, count)


async def reference_sqlite(path: Path, clip_id: str) -> dict:
    import aiosqlite

    key = uuid.UUID(clip_id).hex  # peewee's UUIDField stores the hex form on SQLite
    update, select = UPDATE_PLAY.format(p="?"), SELECT_COUNT.format(p="?")
    conn = await aiosqlite.connect(str(path), isolation_level=None)
    try:
        for pragma in SQLITE_PRAGMAS:
            await conn.execute(pragma)

        async def play() -> int:
            async with conn.execute(update, (_utcnow().isoformat(" "), key)) as cursor:
                return (await cursor.fetchone())[0]

        async def count() -> int:
            async with conn.execute(select, (key,)) as cur:
                return (await cur.fetchone())[0]

        return await _reference_batches(play, count)
    finally:
        await conn.close()


# -- ours: plain GETs through a real server --------------------------------------------------
def play_count(server: Mosic, clip_id: str) -> int:
    response = server.get(f"/play/{clip_id}/stats")
    response.raise_for_status()
    return response.json()["play_count"]


async def _stream_many(server: Mosic, clip_id: str, n: int, size: int) -> tuple[float, dict]:
    """``n`` GETs at once over ``CLIENT_CONNECTIONS`` keep-alive connections.

    The connections are split over ``CLIENT_SHARDS`` clients, each never asked for more
    requests at a time than it has connections: httpcore's pool rescans every queued request
    against every connection on each event (encode/httpcore#1035), so one client with 2,000
    requests queued on 100 connections burns ~10 ms of CPU per request and measures itself,
    not the server.
    """
    per_client = CLIENT_CONNECTIONS // CLIENT_SHARDS
    limits = httpx.Limits(max_connections=per_client, max_keepalive_connections=per_client)
    timeout = httpx.Timeout(30, pool=BATCH_TIMEOUT_S)
    outcomes: dict[str, int] = {}
    async with contextlib.AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(
                httpx.AsyncClient(
                    base_url=server.base,
                    headers=server.headers,
                    limits=limits,
                    timeout=timeout,
                )
            )
            for _ in range(CLIENT_SHARDS)
        ]
        gates = [asyncio.Semaphore(per_client) for _ in range(CLIENT_SHARDS)]

        async def one(i: int) -> str:
            async with gates[i % CLIENT_SHARDS]:
                response = await clients[i % CLIENT_SHARDS].get(f"/play/{clip_id}/stream")
            if response.status_code != 200:
                return f"HTTP {response.status_code}"
            if len(response.content) != size:
                return f"short body ({len(response.content)} of {size} bytes)"
            return "ok"

        elapsed, results = await _gather_timed([one(i) for i in range(n)])
    for result in results:
        label = result if isinstance(result, str) else type(result).__name__
        outcomes[label] = outcomes.get(label, 0) + 1
    return elapsed, outcomes


def http_plays(server: Mosic, clip_id: str, size: int) -> dict:
    async def play_many(n: int) -> tuple[float, tuple[dict, float, float]]:
        server_cpu, client_cpu = group_cpu_seconds(server.pid), own_cpu_seconds()
        elapsed, outcomes = await _stream_many(server, clip_id, n, size)
        server_cpu = group_cpu_seconds(server.pid) - server_cpu
        return elapsed, (outcomes, server_cpu, own_cpu_seconds() - client_cpu)

    async def count() -> int:
        return play_count(server, clip_id)

    def judge(before: int, after: int, outcome: tuple[dict, float, float]) -> dict:
        outcomes, server_cpu, client_cpu = outcome
        return {
            "outcomes": outcomes,
            "exact": after - before == PLAYS and outcomes == {"ok": PLAYS},
            "server_cpu_ms_per_play": server_cpu / PLAYS * 1000,
            "client_cpu_ms_per_play": client_cpu / PLAYS * 1000,
        }

    result = asyncio.run(_batches(play_many, count, judge))
    batches = result["batches"]
    result["server_cpu_ms_per_play"] = statistics.median(
        b["server_cpu_ms_per_play"] for b in batches
    )
    result["client_cpu_ms_per_play"] = statistics.median(
        b["client_cpu_ms_per_play"] for b in batches
    )
    return result


def _describe(result: dict) -> str:
    exact = "yes" if result["exact"] else "NO"
    deltas = "/".join(f"+{d:,}" for d in result["deltas"])
    return f"{result['rate']:,.0f} plays/s, exact {exact} ({deltas})"


def _check(result: dict) -> str:
    bad: dict[str, int] = {}
    for batch in result["batches"]:
        for label, n in batch["outcomes"].items():
            if label != "ok":
                bad[label] = bad.get(label, 0) + n
    cpu = (
        f"server CPU {result['server_cpu_ms_per_play']:.2f} ms/play, "
        f"client {result['client_cpu_ms_per_play']:.2f}"
    )
    return f"{cpu}; " + ("all 200, whole body" if not bad else f"failures: {bad}")


def run_backend(backend: str, database_url: str | None, root: Path, clip: Path) -> list[Row]:
    from tests.support.audio import CONTENT_TYPES

    rows = []
    data_dir = root / f"data-{backend}"
    reference: dict = {}
    clip_id = None
    size = 0
    if backend == "postgresql":
        ref_name = f"UPDATE…RETURNING via aiopg pool of {REFERENCE_POOL_SIZE}"
    else:
        ref_name = "UPDATE…RETURNING via 1 aiosqlite conn (WAL)"
    for workers in WORKER_COUNTS:
        with mosic_server(data_dir, workers=workers, database_url=database_url) as server:
            if clip_id is None:
                created = server.upload(clip, CONTENT_TYPES["mp3"])
                clip_id, size = created["id"], created["size"]
                log(f"{backend}: clip {clip_id}, {size:,} bytes; reference run")
                if backend == "postgresql":
                    reference = asyncio.run(reference_postgres(database_url, clip_id))
                else:
                    path = data_dir / "mosic.sqlite3"
                    reference = asyncio.run(reference_sqlite(path, clip_id))
                log(f"{backend}: reference {_describe(reference)} {reference['rates']}")
            log(f"{backend}: {BATCHES} x {PLAYS} GETs through mosic serve --workers {workers}")
            ours = http_plays(server, clip_id, size)
            log(f"{backend} --workers {workers}: {_describe(ours)} {ours['rates']}")
            if workers == WORKER_COUNTS[-1]:
                # Leave nothing in a database someone else owns (MOSIC_TEST_DATABASE_URL).
                server.delete(f"/play/{clip_id}")
        rows.append(
            Row(
                benchmark="plays",
                case=f"{PLAYS:,} concurrent GET /stream, {backend}, --workers {workers}",
                reference=f"{ref_name}: {_describe(reference)}",
                ours=_describe(ours),
                check=_check(ours),
                data={"reference": reference, "ours": ours, "workers": workers},
            )
        )
    return rows


def main() -> None:
    args = arguments(__doc__.splitlines()[0])
    from tests.support.audio import make_clip

    rows: list[Row] = []
    with temp_dir("mosic-bench-plays-") as root:
        # A random tone, so the bytes (and the content hash) are new even in a shared database.
        clip = make_clip(
            root / "tone.mp3", "mp3", seconds=CLIP_SECONDS, freq=random.randint(200, 2000)
        )
        rows += run_backend("sqlite", None, root, clip)
        with postgres_url() as url:
            rows += run_backend("postgresql", url, root, clip)
    report(rows, args.json)


if __name__ == "__main__":
    main()
