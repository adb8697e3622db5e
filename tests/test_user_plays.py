"""Every play counted exactly, globally and for its listener, under load: 20 listeners play
2,000 times at once (64 requests in flight) against a real ``mosic serve --workers 2`` on
SQLite and on PostgreSQL, by both paths that count — full REST ``GET /play/{id}/stream``
and Subsonic ``scrobble`` — mixed. Afterwards each clip's global count, each user's own
count (REST and Subsonic), each user's history and ``mosic_plays_total`` are exactly the
plan's numbers: a lost, doubled or misattributed play fails the test."""

from __future__ import annotations

import asyncio
import datetime as dt
import random
import time
from collections import Counter

import httpx
import pytest

from tests.conftest import LOCAL_BACKENDS
from tests.support.audio import make_clip
from tests.support.measure import metric
from tests.support.server import mosic_serve
from tests.test_folders import db_env

USERS = 20
PLAYS = 2_000
IN_FLIGHT = 64
CLIPS = 4
PLAY_TIMEOUT_S = 60  # the whole burst; each request gets as long
SEED = 20261207


@pytest.fixture(params=LOCAL_BACKENDS)
def pg(request):
    if request.param != "postgresql":
        yield None
        return
    yield request.getfixturevalue("fresh_postgres_db")


def plan(users: list[str], clips: list[str]) -> list[tuple[str, str, str]]:
    """(user, clip, "stream" or "scrobble") for every play; uneven on purpose, so a play
    counted for the wrong user or clip changes some number."""
    rng = random.Random(SEED)
    weights = [n + 1 for n in range(len(users))]
    return [
        (rng.choices(users, weights)[0], rng.choice(clips), rng.choice(("stream", "scrobble")))
        for _ in range(PLAYS)
    ]


async def play_all(server, keys: dict[str, str], plays, sizes: dict[str, int]) -> None:
    # The client drops a connection idle for 2 s, before the server's keep-alive of 5 s
    # closes it: else a request may go out on a connection the server is closing that
    # moment (httpx.ReadError, CI run 15), a race of the test's client, not of the server.
    limits = httpx.Limits(
        max_connections=IN_FLIGHT, max_keepalive_connections=IN_FLIGHT, keepalive_expiry=2
    )
    gate = asyncio.Semaphore(IN_FLIGHT)
    async with httpx.AsyncClient(
        base_url=server.base, limits=limits, timeout=PLAY_TIMEOUT_S
    ) as client:

        async def play(user: str, clip_id: str, how: str) -> None:
            async with gate:
                if how == "stream":
                    answer = await client.get(
                        f"/play/{clip_id}/stream", headers={"X-API-Key": keys[user]}
                    )
                    assert answer.status_code == 200, answer.text
                    assert len(answer.content) == sizes[clip_id]
                else:
                    answer = await client.get(
                        "/rest/scrobble",
                        params={"apiKey": keys[user], "id": clip_id, "f": "json", "c": "load"},
                    )
                    assert answer.status_code == 200, answer.text
                    body = answer.json()["subsonic-response"]
                    assert body["status"] == "ok", body

        await asyncio.wait_for(asyncio.gather(*(play(*p) for p in plays)), timeout=PLAY_TIMEOUT_S)


def history(server, key: str) -> list[dict]:
    """Every play in a user's history, newest first, following the pages."""
    seen, path = [], "/me/history?limit=50"
    while path:
        page = httpx.get(server.base + path, headers={"X-API-Key": key}, timeout=10)
        assert page.status_code == 200, page.text
        seen += page.json()
        link = page.links.get("next")
        path = link["url"] if link else None
        assert len(seen) <= PLAYS, "the history pages never end"
    return seen


def test_concurrent_plays_of_many_users_are_counted_exactly(tmp_path, pg):
    with mosic_serve(
        tmp_path / "data", "--workers", "2", metrics_port=True, **db_env(pg)
    ) as server:
        clips, sizes = [], {}
        for n in range(CLIPS):
            path = make_clip(
                tmp_path / f"s{n}.mp3", "mp3", seconds=1.0, freq=220 + 55 * n, title=f"Song {n}"
            )
            clip_id = server.upload(path, "audio/mpeg")["id"]
            clips.append(clip_id)
            sizes[clip_id] = path.stat().st_size
        keys = {}
        for n in range(USERS):
            made = httpx.post(
                server.base + "/users",
                headers=server.headers,
                json={"name": f"listener{n:02d}"},
                timeout=10,
            )
            assert made.status_code == 201, made.text
            keys[f"listener{n:02d}"] = made.json()["key"]["key"]
        plays = plan(list(keys), clips)
        mine = {user: Counter() for user in keys}
        for user, clip_id, _ in plays:
            mine[user][clip_id] += 1
        total = Counter(clip_id for _, clip_id, _ in plays)
        assert len(set(h for _, _, h in plays)) == 2 and len(mine) == USERS  # both paths, all

        started = time.monotonic()
        asyncio.run(play_all(server, keys, plays, sizes))
        took = time.monotonic() - started

        for clip_id in clips:
            stats = server.get(f"/play/{clip_id}/stats").json()
            assert stats["play_count"] == total[clip_id], (clip_id, stats)
            assert stats["my_play_count"] == 0  # the admin played nothing
        assert metric(server.metrics(), "mosic_plays_total") == PLAYS
        for user, key in keys.items():
            listed = httpx.get(
                server.base + "/play", params={"limit": 500}, headers={"X-API-Key": key}, timeout=10
            ).json()
            assert {c["id"]: c["my_play_count"] for c in listed} == {
                clip_id: mine[user][clip_id] for clip_id in clips
            }, user
            for clip_id in clips:
                stats = httpx.get(
                    f"{server.base}/play/{clip_id}/stats", headers={"X-API-Key": key}, timeout=10
                ).json()
                assert (stats["play_count"], stats["my_play_count"]) == (
                    total[clip_id],
                    mine[user][clip_id],
                ), (user, clip_id)
                assert (stats["my_last_played_at"] is None) == (mine[user][clip_id] == 0)
            found = httpx.get(
                f"{server.base}/rest/search3",
                params={"apiKey": key, "query": '""', "songCount": 500, "f": "json"},
                timeout=10,
            ).json()["subsonic-response"]["searchResult3"]["song"]
            assert {s["id"]: s["playCount"] for s in found} == {
                clip_id: mine[user][clip_id] for clip_id in clips
            }, user
            played = history(server, key)
            assert Counter(h["clip_id"] for h in played) == mine[user], user
            # Newest first, page after page, however the concurrent writes interleaved.
            times = [dt.datetime.fromisoformat(h["played_at"]) for h in played]
            assert times == sorted(times, reverse=True), user
        print(f"{PLAYS} plays by {USERS} users in {took:.1f} s")
