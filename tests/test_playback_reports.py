"""OpenSubsonic playback reports, the index-based play queue and top songs, against a real
``mosic serve --workers 2`` on SQLite and on PostgreSQL, through py-opensonic (PyPI) where it
has the method and raw HTTP where it has not (an artist ``id`` for getTopSongs, and requests
on fresh connections, so that both workers answer).

A listen counts one play when a report reaches 60 % of a 10-second song, however many
reports follow and even when a burst of them reaches both workers at once; a listen reported
to 30 % never counts, nor one reported with ``ignoreScrobble=true``; a 10-minute song counts
at 240 s (not before); the same song played again after a stop counts again, a seek back
does not. Reports show in ``getNowPlaying``. The queue saved by index comes back with its
index, duplicates and all; bad indexes are error 10 and hidden songs error 70. Top songs come
most played first, with the caller's own play counts, and leave out other folders' songs.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import uuid
from urllib.parse import urlsplit

import httpx
import pytest
from libopensonic import AsyncConnection

from mosic.app import Services
from mosic.core.keys import User
from mosic.core.plays import reaches_a_play
from mosic.core.reports import PlaybackReports, Report
from mosic.persistence.models import ADMIN, ADMIN_ID, Clip, utcnow
from tests.conftest import LOCAL_BACKENDS, new_postgres_db
from tests.support.audio import make_clip
from tests.support.measure import metric
from tests.test_folders import scanned, serve
from tests.test_users import add_user, call

SHORT_S = 10.0  # half of it: 5 s
LONG_S = 600.0  # half of it is 300 s, so 240 s comes first
BURST = 24  # reports at once, each on its own connection: both workers get some
BURST_ROUNDS = 6
MISSING, NOT_FOUND = 10, 70
# (folder, artist, album, title, tone): "Rock Band" has songs in both folders.
LIBRARY = [
    ("Rock", "Rock Band", "Loud", "Loud Song", 300),
    ("Rock", "Rock Band", "Loud", "Quiet Song", 330),
    ("Jazz", "Rock Band", "Abroad", "Hidden Song", 360),
    ("Jazz", "Jazz Trio", "Smooth", "Smooth Song", 390),
]


@pytest.fixture(scope="module", params=LOCAL_BACKENDS)
def world(request, tmp_path_factory):
    """Two library folders, two uploads (10 s and 10 min), Ann (every folder) and Rocky
    (Rock and the uploads)."""
    root = tmp_path_factory.mktemp(f"reports-{request.param}")
    folders = []
    for n, (folder, artist, album, title, tone) in enumerate(LIBRARY):
        path = root / "library" / folder / artist / album / f"{n:02d}.mp3"
        make_clip(path, "mp3", freq=tone, title=title, artist=artist, album=album)
        folders.append(str(root / "library" / folder))
    music = ":".join(dict.fromkeys(folders))
    with (
        new_postgres_db(request) as pg,
        serve(root, music, pg, "--workers", "2", metrics_port=True) as server,
    ):
        scanned(server)
        listed = call(server, "GET", "/play", server.api_key, params={"limit": 500}).json()
        server.songs = {clip["title"]: clip["id"] for clip in listed}
        for title, seconds in (("Short", SHORT_S), ("Long", LONG_S)):
            path = make_clip(root / f"{title}.mp3", "mp3", seconds=seconds, title=title)
            server.songs[title] = server.upload(path, "audio/mpeg")["id"]
        server.ann = add_user(server, "Ann")[1]
        server.rocky = add_user(server, "Rocky", music_folders=["Rock", "Uploads"])[1]
        yield server


def connect(server, key: str, player: str) -> AsyncConnection:
    url = urlsplit(server.base)
    return AsyncConnection(
        f"{url.scheme}://{url.hostname}", port=url.port, api_key=key, app_name=player
    )


async def report(server, key: str, player: str, song: str, steps, **options) -> None:
    """Report ``steps`` ((state, position in ms), in order) of ``song`` from ``player``."""
    conn = connect(server, key, player)
    try:
        for state, position_ms in steps:
            assert await conn.report_playback(song, "song", position_ms, state, **options)
    finally:
        await conn.cleanup()


def reports(server, key, player, song, steps, **options) -> None:
    asyncio.run(report(server, key, player, song, steps, **options))


def sonic(server, key: str, method: str, **params) -> dict:
    """A Subsonic call on a new connection (so either worker may answer it)."""
    answer = httpx.get(f"{server.base}/rest/{method}", timeout=10,
                       params={"apiKey": key, "f": "json", **params})  # fmt: skip
    assert answer.status_code == 200, answer.text
    return answer.json()["subsonic-response"]


def error(server, key: str, method: str, **params) -> int:
    body = sonic(server, key, method, **params)
    assert body["status"] == "failed", (method, params, body)
    return body["error"]["code"]


def plays(server, key: str, song: str) -> tuple[int, int, float]:
    """The song's global count, the key's user's own count, and ``mosic_plays_total``."""
    stats = call(server, "GET", f"/play/{server.songs[song]}/stats", key).json()
    return (
        stats["play_count"],
        stats["my_play_count"],
        metric(server.metrics(), "mosic_plays_total"),
    )


def added(before: tuple, after: tuple) -> tuple:
    return tuple(b - a for a, b in zip(before, after, strict=True))


# -- the play rule of reports --------------------------------------------------------------


@pytest.mark.parametrize(
    ("position_ms", "duration_s", "counts"),
    [
        (4_999, 10.0, False),
        (5_000, 10.0, True),  # half the song
        (239_999, 600.0, False),
        (240_000, 600.0, True),  # 240 s comes before half of 10 minutes
        (239_999, None, False),  # a song of unknown length: 240 s
        (240_000, 0.0, True),
    ],
)
def test_the_rule_is_half_the_song_or_240_seconds_whichever_is_first(
    position_ms, duration_s, counts
):
    assert reaches_a_play(position_ms, duration_s) is counts


def test_a_listen_counts_once_when_a_report_reaches_half_the_song(world):
    song = world.songs["Short"]
    before = plays(world, world.ann, "Short")
    reports(world, world.ann, "phone", song, [("starting", 0), ("playing", 1_000),
                                              ("playing", 4_900)])  # fmt: skip
    assert added(before, plays(world, world.ann, "Short")) == (0, 0, 0)  # 49 %: not yet
    reports(world, world.ann, "phone", song, [("playing", 6_000)])  # 60 %
    assert added(before, plays(world, world.ann, "Short")) == (1, 1, 1)
    # Everything after it belongs to the same listen, even a seek back to the start.
    later = [("playing", 7_000), ("paused", 7_500), ("playing", 7_500), ("playing", 0),
             ("playing", 9_000), ("stopped", 10_000)]  # fmt: skip
    reports(world, world.ann, "phone", song, later)
    assert added(before, plays(world, world.ann, "Short")) == (1, 1, 1)


def test_a_listen_reported_to_30_percent_or_ignoring_scrobbles_never_counts(world):
    song = world.songs["Short"]
    before = plays(world, world.ann, "Short")
    reports(world, world.ann, "laptop", song, [("starting", 0), ("playing", 2_000),
                                               ("playing", 3_000), ("stopped", 3_000)])  # fmt: skip
    whole = [("starting", 0), ("playing", 6_000), ("playing", 10_000), ("stopped", 10_000)]
    reports(world, world.ann, "laptop", song, whole, ignore_scrobble=True)
    assert added(before, plays(world, world.ann, "Short")) == (0, 0, 0)
    reports(world, world.ann, "laptop", song, [("starting", 0), ("playing", 6_000)])
    assert added(before, plays(world, world.ann, "Short")) == (1, 1, 1)  # the rule still runs


def test_a_ten_minute_song_counts_at_240_seconds(world):
    song = world.songs["Long"]
    before = plays(world, world.ann, "Long")
    reports(world, world.ann, "radio", song, [("starting", 0), ("playing", 239_000)])
    assert added(before, plays(world, world.ann, "Long")) == (0, 0, 0)
    reports(world, world.ann, "radio", song, [("playing", 240_000)])  # 40 % of it
    assert added(before, plays(world, world.ann, "Long")) == (1, 1, 1)


def test_the_same_song_again_after_a_stop_is_a_new_listen(world):
    song = world.songs["Short"]
    before = plays(world, world.ann, "Short")
    once = [("starting", 0), ("playing", 6_000), ("stopped", 10_000)]
    reports(world, world.ann, "tablet", song, once)
    # From the start after the stop, without "starting": a new listen.
    reports(world, world.ann, "tablet", song, [("playing", 0), ("playing", 6_000)])
    assert added(before, plays(world, world.ann, "Short")) == (2, 2, 2)
    # "starting" again (a repeat), without a stop: a new listen too.
    reports(world, world.ann, "tablet", song, [("starting", 0), ("playing", 5_500)])
    assert added(before, plays(world, world.ann, "Short")) == (3, 3, 3)
    # A stop then a resume mid-song is the listen that already counted.
    reports(world, world.ann, "tablet", song, [("stopped", 6_000), ("playing", 6_000),
                                               ("playing", 9_000)])  # fmt: skip
    assert added(before, plays(world, world.ann, "Short")) == (3, 3, 3)


def test_reports_sent_at_once_to_both_workers_count_one_play_per_listen(world):
    song = world.songs["Short"]
    before = plays(world, world.ann, "Short")
    params = {"mediaId": song, "mediaType": "song", "c": "car", "positionMs": "6000",
              "state": "playing"}  # fmt: skip
    with concurrent.futures.ThreadPoolExecutor(BURST) as pool:
        for _ in range(BURST_ROUNDS):
            reports(world, world.ann, "car", song, [("starting", 0)])
            answers = list(pool.map(lambda _: sonic(world, world.ann, "reportPlayback", **params),
                                    range(BURST)))  # fmt: skip
            assert all(a["status"] == "ok" for a in answers), answers
    assert added(before, plays(world, world.ann, "Short")) == (BURST_ROUNDS,) * 3


class Racing(PlaybackReports):
    """Reports whose claims wait until every report of the burst has moved the listen: each
    then claims a listen it saw uncounted, as the unluckiest interleaving would have it."""

    def __init__(self, burst: int, **parts) -> None:
        super().__init__(**parts)
        self.barrier = asyncio.Barrier(burst)

    async def _claim(self, *args) -> bool:
        await self.barrier.wait()
        return await super()._claim(*args)


@pytest.mark.parametrize("backend", LOCAL_BACKENDS)
async def test_reports_racing_in_one_process_claim_each_listen_once(settings, backend):
    services = Services.build(settings)
    await services.db.aio_connect()
    try:
        clip_id, now = uuid.uuid4(), utcnow()
        song = {"title": "Race", "duration": SHORT_S, "created_at": now, "updated_at": now}
        await services.db.aio_execute(Clip.insert(id=clip_id, **song).returning(Clip.id))
        admin = User(id=ADMIN_ID, name=settings.admin_user, role=ADMIN)
        racing = Racing(BURST, db=services.db, plays=services.plays, listening=services.listening)
        start = Report(clip_id, SHORT_S, "starting", 0)
        far = Report(clip_id, SHORT_S, "playing", 6_000)
        for _ in range(BURST_ROUNDS):
            await racing.report(admin, "race", start)
            counted = await asyncio.gather(
                *(racing.report(admin, "race", far) for _ in range(BURST))
            )
            assert counted.count(True) == 1, counted
        query = Clip.select(Clip.play_count).where(Clip.id == clip_id).tuples()
        assert list(await services.db.aio_execute(query)) == [(BURST_ROUNDS,)]
    finally:
        await services.db.aio_close()


# -- now playing ---------------------------------------------------------------------------


def entries(server, key: str) -> dict[tuple[str, str], dict]:
    found = sonic(server, key, "getNowPlaying")["nowPlaying"].get("entry", [])
    return {(e["username"], e["playerName"]): e for e in found}


def test_reports_show_in_now_playing_with_state_and_position(world):
    song = world.songs["Short"]
    reports(world, world.ann, "speaker", song, [("starting", 0), ("paused", 2_500)])
    seen = entries(world, world.rocky)[("Ann", "speaker")]
    assert (seen["id"], seen["state"], seen["positionMs"]) == (song, "paused", 2_500)
    assert seen["playbackRate"] == 1.0
    reports(world, world.ann, "speaker", song, [("playing", 3_000)], playback_rate=2.0)
    seen = entries(world, world.rocky)[("Ann", "speaker")]
    assert (seen["state"], seen["playbackRate"]) == ("playing", 2.0)
    assert 3_000 <= seen["positionMs"] <= SHORT_S * 1000  # moves on at twice the pace
    hidden = world.songs["Hidden Song"]
    reports(world, world.ann, "speaker", hidden, [("starting", 0)], ignore_scrobble=True)
    assert entries(world, world.ann)[("Ann", "speaker")]["id"] == hidden
    assert ("Ann", "speaker") not in entries(world, world.rocky)  # not a song Rocky sees


def test_a_report_names_a_song_the_caller_sees(world):
    hidden, song = world.songs["Hidden Song"], world.songs["Short"]
    base = {"mediaType": "song", "positionMs": "0", "state": "playing", "c": "x"}
    assert error(world, world.rocky, "reportPlayback", mediaId=hidden, **base) == NOT_FOUND
    assert error(world, world.rocky, "reportPlayback", mediaId="nope", **base) == NOT_FOUND
    for name in ("mediaId", "mediaType", "positionMs", "state"):
        params = {"mediaId": song, **base}
        del params[name]
        assert error(world, world.rocky, "reportPlayback", **params) == MISSING, name
    assert error(world, world.rocky, "reportPlayback", mediaId=song,
                 **{**base, "state": "rewinding"}) == 0  # fmt: skip
    assert error(world, world.rocky, "reportPlayback", mediaId=song,
                 **{**base, "mediaType": "podcast"}) == NOT_FOUND  # fmt: skip


# -- the play queue by index ---------------------------------------------------------------


async def queue_round_trip(server, key: str, songs: list[str]) -> None:
    conn = connect(server, key, "Queue App")
    try:
        assert await conn.save_play_queue_by_index(songs, current_index=2, position=1_234)
        queue = await conn.get_play_queue_by_index()
        assert [e.id for e in queue.entry] == songs
        assert (queue.current_index, queue.position) == (2, 1_234)
        assert (queue.username, queue.changed_by) == ("Rocky", "Queue App")
        classic = await conn.get_play_queue()
        assert classic.current == songs[2]
        # Saved by song id: the index is the current song's first entry.
        assert await conn.save_play_queue(songs, current=songs[2], position=99)
        queue = await conn.get_play_queue_by_index()
        assert (queue.current_index, queue.position) == (0, 99)
        assert await conn.save_play_queue_by_index()  # nothing: clears it
        assert not (await conn.get_play_queue_by_index()).entry
    finally:
        await conn.cleanup()


def test_a_queue_saved_by_index_keeps_its_repeats_and_its_index(world):
    loud, quiet = world.songs["Loud Song"], world.songs["Quiet Song"]
    asyncio.run(queue_round_trip(world, world.rocky, [loud, quiet, loud]))


def test_a_bad_index_is_error_10_and_a_hidden_song_error_70(world):
    loud, hidden = world.songs["Loud Song"], world.songs["Hidden Song"]
    save = "savePlayQueueByIndex"
    assert sonic(world, world.rocky, save, id=[loud], currentIndex="0")["status"] == "ok"
    for index in ("2", "-1", "one"):
        assert error(world, world.rocky, save, id=[loud, loud], currentIndex=index) == MISSING
    assert error(world, world.rocky, save, id=[loud]) == MISSING  # no index
    assert error(world, world.rocky, save, currentIndex="0") == MISSING  # no queue
    assert error(world, world.rocky, save, id=[loud, hidden], currentIndex="0") == NOT_FOUND
    kept = sonic(world, world.rocky, "getPlayQueueByIndex")["playQueueByIndex"]
    assert [e["id"] for e in kept["entry"]] == [loud]  # no failed save changed it


def test_songs_hidden_since_the_queue_was_saved_are_left_out_of_it(world):
    _, key = add_user(world, "Cat")
    loud, quiet, hidden = (world.songs[t] for t in ("Loud Song", "Quiet Song", "Hidden Song"))
    answer = sonic(world, key, "savePlayQueueByIndex", id=[loud, hidden, quiet],
                   currentIndex="1", position="5000")  # fmt: skip
    assert answer["status"] == "ok", answer
    queue = sonic(world, key, "getPlayQueueByIndex")["playQueueByIndex"]
    assert (queue["currentIndex"], queue["position"]) == (1, 5_000)
    narrowed = call(world, "PATCH", "/users/Cat", world.api_key,
                    json={"music_folders": ["Rock"]})  # fmt: skip
    assert narrowed.status_code == 200, narrowed.text
    queue = sonic(world, key, "getPlayQueueByIndex")["playQueueByIndex"]
    assert [e["id"] for e in queue["entry"]] == [loud, quiet]
    # The current song is hidden: the next one is current, from its start.
    assert (queue["currentIndex"], queue["position"]) == (1, 0)


# -- top songs -----------------------------------------------------------------------------


def scrobble(server, key: str, title: str, times: int) -> None:
    for _ in range(times):
        assert sonic(server, key, "scrobble", id=server.songs[title])["status"] == "ok"


async def top_by_name(server, key: str, artist: str, count: int = 50) -> list:
    conn = connect(server, key, "Top App")
    try:
        return await conn.get_top_songs(artist, count)
    finally:
        await conn.cleanup()


def test_top_songs_are_the_most_played_of_the_songs_the_caller_sees(world):
    scrobble(world, world.api_key, "Hidden Song", 5)
    scrobble(world, world.api_key, "Quiet Song", 3)
    scrobble(world, world.rocky, "Loud Song", 2)
    rocky_sees = asyncio.run(top_by_name(world, world.rocky, "rock band"))
    assert [(s.title, s.play_count) for s in rocky_sees] == [("Quiet Song", 0), ("Loud Song", 2)]
    ann_sees = asyncio.run(top_by_name(world, world.ann, "Rock Band", count=2))
    assert [(s.title, s.play_count) for s in ann_sees] == [("Hidden Song", 0), ("Quiet Song", 0)]
    assert asyncio.run(top_by_name(world, world.ann, "Nobody")) == []
    song = sonic(world, world.ann, "getSong", id=world.songs["Smooth Song"])["song"]
    jazz_trio, rock_band = (
        song["artistId"],
        sonic(world, world.ann, "getSong", id=world.songs["Loud Song"])["song"]["artistId"],
    )
    by_id = sonic(world, world.rocky, "getTopSongs", id=rock_band, artist="Jazz Trio")
    assert [s["title"] for s in by_id["topSongs"]["song"]] == ["Quiet Song", "Loud Song"]
    assert error(world, world.rocky, "getTopSongs", id=jazz_trio) == NOT_FOUND
    assert error(world, world.rocky, "getTopSongs") == MISSING
    smooth = sonic(world, world.ann, "getTopSongs", id=jazz_trio, count="1")["topSongs"]["song"]
    assert [s["title"] for s in smooth] == ["Smooth Song"]


def test_the_extensions_are_listed_with_their_versions(world):
    listed = sonic(world, world.ann, "getOpenSubsonicExtensions")["openSubsonicExtensions"]
    versions = {e["name"]: e["versions"] for e in listed}
    for name in ("playbackReport", "indexBasedQueue", "topSongsByArtistId"):
        assert versions.get(name) == [1], name
