"""Two listeners through Subsonic clients nobody here wrote, against a real ``mosic serve
--workers 2`` on SQLite and on PostgreSQL: what one keeps, the other never sees.

Ann, through py-opensonic (PyPI), logs in with every form Subsonic has — ``u`` with a plain
``p``, ``u`` with ``p=enc:HEX``, ``u`` with ``t``/``s``, and ``apiKey`` — and stars, rates,
makes a private and a public playlist, saves a play queue, bookmarks and scrobbles. Every form
then sees all of it, so each form logged in as Ann and no one else. Bob, through subsonic-api
(npm, run by node) with token auth and with an API key, sees none of it but the public
playlist, which he may not change (error 50); Ann's plays count in the song's global count
and in hers, never in Bob's.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from urllib.parse import urlsplit

import httpx
import pytest
from libopensonic import AsyncConnection

from tests.conftest import LOCAL_BACKENDS, new_postgres_db
from tests.support.audio import make_clip
from tests.support.server import mosic_serve
from tests.test_folders import db_env
from tests.test_subsonic_clients import JS_CLIENT, NODE, NODE_TIMEOUT_S

TRACKS = [  # (file name, format, title, album)
    ("morning.mp3", "mp3", "Morning", "First"),
    ("noon.ogg", "ogg", "Noon", "First"),
    ("evening.flac", "flac", "Evening", "Later"),
]
TYPES = {"mp3": "audio/mpeg", "ogg": "audio/ogg", "flac": "audio/flac"}
QUEUE_POSITION_MS = 61_000
BOOKMARK_MS = 5_000
ANN_PLAYS = 2  # scrobbles of "Evening"


class PlainPassword(AsyncConnection):
    """py-opensonic with ``p`` in the clear, as the oldest Subsonic apps log in (the library
    itself sends ``enc:HEX`` with ``legacy_auth`` and a token otherwise)."""

    def _get_base_qdict(self) -> dict:
        base = super()._get_base_qdict()
        for salted in ("t", "s"):
            base.pop(salted)
        return {**base, "p": self._raw_pass}


def rest(server, method: str, path: str, key: str, **kwargs) -> httpx.Response:
    return httpx.request(
        method, server.base + path, headers={"X-API-Key": key}, timeout=10, **kwargs
    )


def add_user(server, name: str) -> str:
    made = rest(server, "POST", "/users", server.api_key, json={"name": name})
    assert made.status_code == 201, made.text
    return made.json()["key"]["key"]


def ann_logins(server, key: str) -> dict[str, AsyncConnection]:
    url = urlsplit(server.base)
    where = {"base_url": f"{url.scheme}://{url.hostname}", "port": url.port}
    return {
        "plain": PlainPassword(**where, username="Ann", password=key, use_get=True),
        "enc": AsyncConnection(**where, username="Ann", password=key, legacy_auth=True),
        "token": AsyncConnection(**where, username="Ann", password=key),
        "apiKey": AsyncConnection(**where, api_key=key),
    }


async def ann_keeps_things(server, key: str, songs: dict[str, str]) -> dict[str, str]:
    """Ann does one kind of thing with each login form; the ids of her playlists."""
    morning, noon, evening = songs["Morning"], songs["Noon"], songs["Evening"]
    logins = ann_logins(server, key)
    try:
        plain, enc, token, by_key = (logins[k] for k in ("plain", "enc", "token", "apiKey"))
        album = (await plain.get_song(morning)).album_id
        assert await plain.star(sids=[morning], album_ids=[album])
        assert await enc.set_rating(noon, 4)
        assert await enc.create_playlist(name="Ann's own", song_ids=[morning, noon])
        assert await token.create_playlist(name="Ann's party", song_ids=[evening])
        ids = {p.name: p.id for p in await token.get_playlists()}
        # py-opensonic's updatePlaylist has no "public": the same request, through its transport.
        made_public = await token._do_request(
            "updatePlaylist", {"playlistId": ids["Ann's party"], "public": True}
        )
        assert (await made_public.json())["subsonic-response"]["status"] == "ok"
        assert await token.save_play_queue(
            [noon, evening], current=evening, position=QUEUE_POSITION_MS
        )
        assert await by_key.create_bookmark(evening, BOOKMARK_MS, comment="the good bit")
        for _ in range(ANN_PLAYS):
            assert await by_key.scrobble(evening)
        assert await by_key.scrobble(noon, submission=False)  # now playing, not a play
        return {"private": ids["Ann's own"], "public": ids["Ann's party"]}
    finally:
        for conn in logins.values():
            await conn.cleanup()


@pytest.fixture(scope="module", params=LOCAL_BACKENDS)
def world(request, tmp_path_factory):
    """A server with three songs (uploaded by the admin), Ann and Bob, and what Ann keeps."""
    root = tmp_path_factory.mktemp(f"users-{request.param}")
    with (
        new_postgres_db(request) as pg,
        mosic_serve(root / "data", "--workers", "2", **db_env(pg)) as server,
    ):
        server.songs = {}
        for n, (name, fmt, title, album) in enumerate(TRACKS):
            path = make_clip(
                root / name,
                fmt,
                seconds=1.0,
                freq=300 + 40 * n,
                title=title,
                artist="Both",
                album=album,
            )
            server.songs[title] = server.upload(path, TYPES[fmt])["id"]
        server.ann, server.bob = add_user(server, "Ann"), add_user(server, "Bob")
        server.playlists = asyncio.run(ann_keeps_things(server, server.ann, server.songs))
        yield server


@pytest.mark.parametrize("form", ["plain", "enc", "token", "apiKey"])
async def test_each_login_form_is_ann_and_sees_all_she_keeps(world, form):
    morning, noon, evening = (world.songs[t] for t in ("Morning", "Noon", "Evening"))
    conn = ann_logins(world, world.ann)[form]
    try:
        starred = await conn.get_starred2()
        assert [s.id for s in starred.song] == [morning]
        assert [a.name for a in starred.album] == ["First"]
        songs = {s: await conn.get_song(world.songs[s]) for s in ("Morning", "Noon", "Evening")}
        assert songs["Morning"].starred is not None and songs["Noon"].starred is None
        assert (songs["Noon"].user_rating, songs["Morning"].user_rating) == (4, None)
        assert songs["Evening"].play_count == ANN_PLAYS and songs["Evening"].played is not None
        assert songs["Noon"].play_count == 0  # now playing is not a play
        playlists = {p.name: (p.owner, p.public, p.song_count) for p in await conn.get_playlists()}
        assert playlists == {"Ann's own": ("Ann", False, 2), "Ann's party": ("Ann", True, 1)}
        queue = await conn.get_play_queue()
        assert [e.id for e in queue.entry] == [noon, evening]
        assert (queue.username, queue.current, queue.position) == (
            "Ann",
            evening,
            QUEUE_POSITION_MS,
        )
        marks = await conn.get_bookmarks()
        assert [(b.entry.id, b.position, b.username, b.comment) for b in marks] == [
            (evening, BOOKMARK_MS, "Ann", "the good bit")
        ]
        assert (await conn.get_user("Ann")).username == "Ann"
    finally:
        await conn.cleanup()


def look_as(server, user: str, key: str, auth: str, star: str = "") -> dict:
    result = subprocess.run(
        [NODE, str(JS_CLIENT / "look.mjs")],
        capture_output=True,
        text=True,
        timeout=NODE_TIMEOUT_S,
        env={
            "MOSIC_URL": server.base,
            "MOSIC_USER": user,
            "MOSIC_KEY": key,
            "MOSIC_AUTH": auth,
            "MOSIC_SONGS": json.dumps(list(server.songs.values())),
            "MOSIC_PLAYLISTS": json.dumps(server.playlists),
            "MOSIC_STAR": star,
            "PATH": "/usr/bin:/bin",
        },
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.parametrize("auth", ["token", "apiKey"])
async def test_bob_through_node_sees_nothing_of_anns_but_her_public_playlist(world, auth):
    morning, noon, evening = (world.songs[t] for t in ("Morning", "Noon", "Evening"))
    # Bob stars a song of his own: his stars are seen (by him alone), so the empty answers
    # below are Bob's own state, not a client that reads nothing.
    seen = look_as(world, "Bob", world.bob, auth, star=noon)
    assert seen["ping"] == "ok"
    assert seen["starred2"] == {"song": [noon], "album": [], "artist": []}
    assert seen["starred"] == [noon]
    for title, song_id in world.songs.items():
        mine = seen["songs"][song_id]
        assert mine["title"] == title
        assert (mine["starred"] is not None) == (song_id == noon), (title, mine)
        assert mine["userRating"] is None, (title, mine)  # Ann rated Noon
        assert (mine["playCount"], mine["played"]) == (0, None), (title, mine)  # Ann's plays
    assert seen["playQueue"] == {"username": "Bob", "entry": [], "current": None}
    assert seen["bookmarks"] == []
    assert seen["playlists"] == [
        {"id": world.playlists["public"], "name": "Ann's party", "owner": "Ann", "public": True}
    ]
    assert seen["playlist"] == {"private": 70, "public": [evening]}
    assert seen["update"] == {"private": 70, "public": 50}
    assert seen["delete"] == {"private": 70, "public": 50}
    # What Ann plays now (a scrobble with submission=false), under her name.
    assert seen["nowPlaying"] == [{"username": "Ann", "id": noon, "playerName": "py-opensonic"}]

    # And Ann's things are as she left them; Bob's star is not hers.
    conn = ann_logins(world, world.ann)["apiKey"]
    try:
        assert [s.id for s in (await conn.get_starred2()).song] == [morning]
        mine = {p.id: p for p in await conn.get_playlists()}
        assert {p.name for p in mine.values()} == {"Ann's own", "Ann's party"}
        party = await conn.get_playlist(world.playlists["public"])
        assert [e.id for e in party.entry] == [evening]
    finally:
        await conn.cleanup()


def test_plays_count_for_everyone_and_for_the_listener_alone(world):
    evening = world.songs["Evening"]
    stats = {
        who: rest(world, "GET", f"/play/{evening}/stats", key).json()
        for who, key in (("admin", world.api_key), ("Ann", world.ann), ("Bob", world.bob))
    }
    assert {who: s["play_count"] for who, s in stats.items()} == dict.fromkeys(stats, ANN_PLAYS)
    assert {who: s["my_play_count"] for who, s in stats.items()} == {
        "admin": 0,
        "Ann": ANN_PLAYS,
        "Bob": 0,
    }
    assert stats["Ann"]["my_last_played_at"] is not None
    assert stats["Bob"]["my_last_played_at"] is None and stats["admin"]["my_last_played_at"] is None
    # The REST clip objects carry the caller's marks too.
    for title, starred, rating in (("Morning", True, 0), ("Noon", False, 4)):
        clip_id = world.songs[title]
        assert {
            k: rest(world, "GET", f"/play/{clip_id}", world.ann).json()[k]
            for k in ("starred", "rating")
        } == {"starred": starred, "rating": rating}
        assert {
            k: rest(world, "GET", f"/play/{clip_id}", world.api_key).json()[k]
            for k in ("starred", "rating")
        } == {"starred": False, "rating": 0}
    history = rest(world, "GET", "/me/history", world.ann).json()
    assert [h["clip_id"] for h in history] == [evening] * ANN_PLAYS
    assert rest(world, "GET", "/me/history", world.bob).json() == []


def test_album_plays_are_the_callers_too(world):
    evening = world.songs["Evening"]

    def sub(method: str, key: str, **params) -> dict:
        answer = httpx.get(
            f"{world.base}/rest/{method}", timeout=10, params={"apiKey": key, "f": "json", **params}
        )
        body = answer.json()["subsonic-response"]
        assert body["status"] == "ok", body
        return body

    album_id = sub("getSong", world.bob, id=evening)["song"]["albumId"]
    ann = sub("getAlbum", world.ann, id=album_id)["album"]
    assert ann["playCount"] == ANN_PLAYS and ann.get("played")  # Ann's own plays
    bob = sub("getAlbum", world.bob, id=album_id)["album"]
    assert [s["playCount"] for s in bob["song"]] == [0]
    assert (bob["playCount"], bob.get("played")) == (0, None)  # Bob played nothing
    for kind in ("frequent", "recent"):
        listed = sub("getAlbumList2", world.bob, type=kind)["albumList2"].get("album", [])
        assert listed == [], kind
        mine = sub("getAlbumList2", world.ann, type=kind)["albumList2"]["album"]
        assert album_id in [album["id"] for album in mine], kind
        assert next(a for a in mine if a["id"] == album_id)["playCount"] == ANN_PLAYS
