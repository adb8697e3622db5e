"""The OpenSubsonic additions through py-sonic (PyPI ``py-sonic``, module ``libsonic``), a
third Subsonic client nobody here wrote, against a real ``mosic serve`` on SQLite and on
PostgreSQL.

py-sonic sends every call as a form POST (``formPost``) with a token and salt, so each test
here is also a login by token over a form body. A listener reads a song's words by artist
and title (``getLyrics``), starts a transcode half way (``stream`` with ``timeOffset``, read
back by ffprobe), plays and is shown playing (``scrobble``, ``getNowPlaying``), finds an
artist's most played songs (``getTopSongs``), keeps a queue (``savePlayQueue``) and shares
two songs (``createShare``, ``getShares``, ``updateShare``, ``deleteShare``).
"""

from __future__ import annotations

import time
from urllib.parse import urlsplit

import httpx
import pytest
from libsonic import Connection

from tests.conftest import LOCAL_BACKENDS, new_postgres_db
from tests.support.audio import make_clip
from tests.support.server import mosic_serve
from tests.support.tagging import tag_lyrics
from tests.test_folders import db_env
from tests.test_listen_transcoded import probe

WORDS = "First line\nSecond line"
LONG_S, OFFSET_S = 40.0, 30
# ffprobe's duration of an encoded file: the encoder's padding, a frame's rounding.
DURATION_TOLERANCE = 0.5
SONGS = {  # title: (format, seconds, scrobbles)
    "Long": ("mp3", LONG_S, 1),
    "Often": ("ogg", 1.0, 3),
    "Seldom": ("flac", 1.0, 2),
}
QUEUE_POSITION_MS = 12_345


def login(server, user: str, key: str) -> Connection:
    url = urlsplit(server.base)
    return Connection(f"{url.scheme}://{url.hostname}", user, key, port=url.port)


@pytest.fixture(scope="module", params=LOCAL_BACKENDS)
def world(request, tmp_path_factory):
    """Three songs by "Band" (one with words), each scrobbled its number of times by Ann."""
    root = tmp_path_factory.mktemp(f"pysonic-{request.param}")
    with (
        new_postgres_db(request) as pg,
        mosic_serve(root / "data", **db_env(pg)) as server,
    ):
        server.songs = {}
        for n, (title, (fmt, seconds, _)) in enumerate(SONGS.items()):
            path = make_clip(root / f"{title}.{fmt}", fmt, seconds=seconds, freq=330 + 50 * n,
                             title=title, artist="Band", album="Record")  # fmt: skip
            if title == "Long":
                tag_lyrics(path, fmt, text=WORDS)
            kind = {"mp3": "audio/mpeg", "ogg": "audio/ogg", "flac": "audio/flac"}[fmt]
            server.songs[title] = server.upload(path, kind)["id"]
        made = httpx.post(f"{server.base}/users", json={"name": "Ann"}, headers=server.headers,
                          timeout=10)  # fmt: skip
        assert made.status_code == 201, made.text
        server.ann = login(server, "Ann", made.json()["key"]["key"])
        for title, (_, _, scrobbles) in SONGS.items():
            for _ in range(scrobbles):
                assert server.ann.scrobble(server.songs[title])["status"] == "ok"
        yield server


def test_lyrics_by_artist_and_title(world):
    lyrics = world.ann.getLyrics(artist="Band", title="Long")["lyrics"]
    assert (lyrics["artist"], lyrics["title"], lyrics["value"]) == ("Band", "Long", WORDS)
    assert world.ann.getLyrics(artist="Band", title="Often")["lyrics"].get("value", "") == ""


def test_a_transcode_from_30_s_lasts_the_rest(world, tmp_path):
    answer = world.ann.stream(world.songs["Long"], tformat="mp3", timeOffset=OFFSET_S)
    found = probe(answer.read(), tmp_path)
    assert found["codec"] == "mp3"
    assert abs(found["seconds"] - (LONG_S - OFFSET_S)) < DURATION_TOLERANCE, found


def test_top_songs_are_the_most_played_first(world):
    top = world.ann.getTopSongs("Band")["topSongs"]["song"]
    assert [s["title"] for s in top] == ["Often", "Seldom", "Long"]
    assert [s["playCount"] for s in top] == [3, 2, 1]
    assert [s["title"] for s in world.ann.getTopSongs("Band", count=1)["topSongs"]["song"]] == [
        "Often"
    ]
    assert world.ann.getTopSongs("Nobody")["topSongs"].get("song", []) == []


def test_now_playing_is_not_a_play(world):
    seldom = world.songs["Seldom"]
    assert world.ann.scrobble(seldom, submission=False)["status"] == "ok"
    entries = world.ann.getNowPlaying()["nowPlaying"]["entry"]
    mine = [e for e in entries if e["username"] == "Ann"]
    assert [e["id"] for e in mine] == [seldom]
    assert world.ann.getSong(seldom)["song"]["playCount"] == SONGS["Seldom"][2]


def test_the_play_queue_comes_back_as_saved(world):
    order = [world.songs["Seldom"], world.songs["Long"]]
    saved = world.ann.savePlayQueue(order, current=order[1], position=QUEUE_POSITION_MS)
    assert saved["status"] == "ok"
    queue = world.ann.getPlayQueue()["playQueue"]
    assert [e["id"] for e in queue["entry"]] == order
    assert (queue["current"], queue["position"], queue["username"]) == (
        order[1],
        QUEUE_POSITION_MS,
        "Ann",
    )


def test_a_share_is_made_listed_changed_opened_and_ended(world):
    songs = [world.songs["Often"], world.songs["Long"]]
    made = world.ann.createShare(songs, description="for you", expires=time.time() + 3600)
    share = made["shares"]["share"][0]
    assert [e["id"] for e in share["entry"]] == songs
    assert (share["description"], share["username"], share["visitCount"]) == ("for you", "Ann", 0)
    page = httpx.get(share["url"], timeout=10)
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert world.ann.updateShare(share["id"], description="still for you")["status"] == "ok"
    listed = {s["id"]: s for s in world.ann.getShares()["shares"]["share"]}
    assert listed[share["id"]]["description"] == "still for you"
    assert listed[share["id"]]["visitCount"] == 1
    assert world.ann.deleteShare(share["id"])["status"] == "ok"
    assert share["id"] not in {s["id"] for s in world.ann.getShares()["shares"].get("share", [])}
    assert httpx.get(share["url"], timeout=10).status_code == 410
