"""Shares, as the people who make them and the people they are for use them.

Against a real ``mosic serve --workers 2`` on SQLite and on PostgreSQL, with uploads and a
library folder:

- through Subsonic clients nobody here wrote — py-opensonic (PyPI) and subsonic-api (npm, run
  by node) — a user shares songs, an album and a playlist, lists, changes and deletes its
  shares; another user gets error 50 for them, and a user who does not see a music folder gets
  70 for its song and its album; the answers' XML is valid Subsonic;
- over REST, ``/shares`` answers 201, 200, 204, 400 for a bad body, 403 for a read-only key and
  for another user's share, 404 and, once expired or deleted, 410 on every public route;
- the public side needs no key: the page counts each visit, twenty at once too, whichever worker
  gets them (and ``mosic_share_visits_total``),
  the songs list counts none and holds the share's songs alone; a removed user's shares are
  gone; the README's sharing example runs verbatim.

In process, on SQLite, PostgreSQL and S3: a shared song streams with Range, validators and HEAD,
and counts exactly one play by the stream rule (a probe, a seek, a HEAD and a 304 none), in the
global count only: a visitor is no user.

In headless Chromium at a phone's width (390 px): a share's page plays a song when its "Play"
button is pressed, with no console error, no policy violation and nothing axe-core finds
wrong; a share that expires a few seconds later really expires: the open page says so when a
song is played, its stream is 410, and a reload shows the 410 page.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import httpx
import pytest
from libopensonic import AsyncConnection, errors
from selenium.webdriver.common.by import By

from tests.conftest import LOCAL_BACKENDS, new_postgres_db
from tests.support.audio import make_clip
from tests.support.measure import metric
from tests.support.server import mosic_serve, wait_for
from tests.support.subsonic import validate_xml
from tests.support.tagging import image, tag_fully
from tests.test_folders import db_env, scanned
from tests.test_readme import run_after_setup, sh_blocks_after
from tests.test_subsonic_clients import JS_CLIENT, NODE, NODE_TIMEOUT_S
from tests.test_users import add_user, call
from tests.test_web import (  # noqa: F401 - browser is a fixture
    accessibility_problems,
    audio_time,
    browser,
    click,
    console,
    named,
    wait,
)

TRACKS = [("Morning", "First"), ("Noon", "First"), ("Evening", "Later")]  # (title, album)
HOUR_S = 3600
NOT_AUTHORIZED, NOT_FOUND = 50, 70
CONCURRENT_VISITS = 8
GONE = "This share has expired, or its owner deleted it."  # share.js


@pytest.fixture(scope="module", params=LOCAL_BACKENDS)
def world(request, tmp_path_factory):
    """A server with three uploads (two on the album "First"), a library folder "Jazz" with
    one song, and three listeners: Ann and Bob see everything, Cleo the uploads alone."""
    root = tmp_path_factory.mktemp(f"shares-{request.param}")
    jazz = root / "Jazz"
    make_clip(jazz / "Trio" / "Blue" / "01.mp3", "mp3", freq=520, title="Smooth",
              artist="Trio", album="Blue")  # fmt: skip
    with (
        new_postgres_db(request) as pg,
        mosic_serve(
            root / "data",
            "--workers",
            "2",
            MOSIC_LIBRARY_DIRS=str(jazz),
            MOSIC_LIBRARY_SETTLE_S="0.2",
            **db_env(pg),
        ) as server,  # fmt: skip
    ):
        scanned(server)
        server.songs = {}
        for n, (title, album) in enumerate(TRACKS):
            path = make_clip(root / f"{n}.mp3", "mp3", freq=300 + 50 * n, title=title,
                             artist="Ann Artist", album=album)  # fmt: skip
            server.songs[title] = server.upload(path, "audio/mpeg")["id"]
        [smooth] = server.get("/play?music_folder=Jazz").json()
        server.smooth = smooth["id"]
        server.ann, server.bob = add_user(server, "Ann")[1], add_user(server, "Bob")[1]
        server.cleo = add_user(server, "Cleo", music_folders=["Uploads"])[1]
        yield server


def connection(server, key: str) -> AsyncConnection:
    url = urlsplit(server.base)
    return AsyncConnection(f"{url.scheme}://{url.hostname}", port=url.port, api_key=key)


def sonic(server, key: str, method: str, **params) -> dict:
    answer = httpx.get(f"{server.base}/rest/{method}", timeout=10,
                       params={"apiKey": key, "f": "json", **params})  # fmt: skip
    assert answer.status_code == 200, answer.text
    return answer.json()["subsonic-response"]


def play_count(server, clip_id: str) -> int:
    return server.get(f"/play/{clip_id}/stats").json()["play_count"]


def visits(server, share_id: str) -> int:
    return call(server, "GET", f"/shares/{share_id}", server.api_key).json()["visit_count"]


def public(server, path: str, method: str = "GET") -> httpx.Response:
    return httpx.request(method, server.base + path, timeout=10)


# -- Subsonic clients ------------------------------------------------------------------------


async def test_py_opensonic_shares_songs_an_album_and_a_playlist(world):
    morning, noon, evening = (world.songs[t] for t in ("Morning", "Noon", "Evening"))
    ann, bob, cleo, admin = (connection(world, k) for k in (world.ann, world.bob, world.cleo,
                                                             world.api_key))  # fmt: skip
    try:
        assert await ann.create_playlist(name="Road", song_ids=[evening, morning])
        [road] = [p.id for p in await ann.get_playlists() if p.name == "Road"]
        album = (await ann.get_song(morning)).album_id
        expires = time.time() + HOUR_S
        by_songs = await ann.create_share([morning, noon], description="Two", expires=expires)
        assert [song.id for song in by_songs.entry] == [morning, noon]
        assert (by_songs.username, by_songs.description, by_songs.visit_count) == ("Ann", "Two", 0)
        assert by_songs.url == f"{world.base}/share/{by_songs.id}"  # absolute, for any browser
        shared_until = dt.datetime.fromisoformat(by_songs.expires).timestamp()
        assert abs(shared_until - int(expires)) < 1
        by_album = await ann.create_share([album])
        assert [song.id for song in by_album.entry] == [morning, noon]  # the album's order
        by_playlist = await ann.create_share([road])
        assert [song.id for song in by_playlist.entry] == [evening, morning]
        assert by_album.expires is None and len({by_songs.id, by_album.id, by_playlist.id}) == 3

        page = httpx.get(by_songs.url, timeout=10)  # anyone, no key
        assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
        listed = {share.id: share for share in await ann.get_shares()}
        assert set(listed) == {by_songs.id, by_album.id, by_playlist.id}
        assert listed[by_songs.id].visit_count == 1 and listed[by_songs.id].last_visited
        assert listed[by_album.id].visit_count == 0 and listed[by_album.id].last_visited is None

        # py-opensonic's update_share keys its expiry by the variable, not "expires" (a None
        # key its form cannot send): the same request, through its transport.
        updated = await ann._do_request(
            "updateShare", {"id": by_songs.id, "description": "Changed"}
        )
        assert (await updated.json())["subsonic-response"]["status"] == "ok"
        changed = {share.id: share for share in await ann.get_shares()}[by_songs.id]
        assert changed.description == "Changed" and changed.expires == by_songs.expires

        refused = await bob._do_request("updateShare", {"id": by_songs.id, "description": "Mine"})
        assert (await refused.json())["subsonic-response"]["error"]["code"] == NOT_AUTHORIZED
        with pytest.raises(errors.AuthError):  # error 50: only its owner or an admin
            await bob.delete_share(by_songs.id)
        assert {share.username for share in await bob.get_shares()} <= {"Bob"}  # none of Ann's
        assert {by_songs.id, by_album.id} <= {share.id for share in await admin.get_shares()}

        # Cleo sees the uploads, not Jazz: its song and album are not hers to share.
        jazz_album = (await admin.get_song(world.smooth)).album_id
        for item in (world.smooth, jazz_album):
            with pytest.raises(errors.DataNotFoundError):  # error 70
                await cleo.create_share([item])
        assert [song.id for song in (await cleo.create_share([noon])).entry] == [noon]

        assert await ann.delete_share(by_album.id)
        assert httpx.get(by_album.url, timeout=10).status_code == 410
        assert by_album.id not in {share.id for share in await ann.get_shares()}
        with pytest.raises(errors.DataNotFoundError):
            await ann.delete_share(by_album.id)
    finally:
        for conn in (ann, bob, cleo, admin):
            await conn.cleanup()


def test_shares_in_subsonic_xml_are_valid(world):
    made = sonic(world, world.ann, "createShare", id=world.songs["Evening"], description="<&>")
    share_id = made["shares"]["share"][0]["id"]
    for method in ("getShares", "createShare"):
        params = {"apiKey": world.ann, "id": world.songs["Noon"]}
        answer = httpx.get(f"{world.base}/rest/{method}.view", params=params, timeout=10)
        root = validate_xml(answer.content)
        assert root.get("status") == "ok", answer.text
    assert sonic(world, world.ann, "updateShare", id=share_id, expires="1")["status"] == "ok"
    assert public(world, f"/share/{share_id}").status_code == 410  # 1 ms after 1970: over
    reopened = sonic(world, world.ann, "updateShare", id=share_id, expires="0")
    assert reopened["status"] == "ok" and public(world, f"/share/{share_id}").status_code == 200
    for params in ({"expires": "soon"}, {"expires": "-1"}, {"expires": str(10**18)}):
        refused = sonic(world, world.ann, "createShare", id=world.songs["Noon"], **params)
        assert refused["error"]["code"] == 0, params
    past = sonic(world, world.ann, "createShare", id=world.songs["Noon"], expires="1000")
    assert past["error"]["code"] == 0 and "future" in past["error"]["message"]
    assert sonic(world, world.ann, "createShare")["error"]["code"] == 10
    read_only = call(world, "POST", "/users/Ann/keys", world.api_key, json={"scope": "read"})
    key = read_only.json()["key"]
    refused = sonic(world, key, "createShare", id=world.songs["Noon"])
    assert refused["error"]["code"] == NOT_AUTHORIZED
    assert sonic(world, key, "getShares")["status"] == "ok"


def run_share_script(world, album: str, expires_ms: int) -> dict:
    songs = [world.songs["Morning"], world.songs["Evening"]]
    result = subprocess.run(
        [NODE, str(JS_CLIENT / "share.mjs")],
        capture_output=True,
        text=True,
        timeout=NODE_TIMEOUT_S,
        env={
            "MOSIC_URL": world.base,
            "MOSIC_KEY": world.bob,
            "MOSIC_OTHER": world.cleo,
            "MOSIC_SONGS": json.dumps(songs),
            "MOSIC_ALBUM": album,
            "MOSIC_EXPIRES": str(expires_ms),
            "PATH": "/usr/bin:/bin",
        },  # fmt: skip
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_subsonic_api_for_node_manages_shares(world):
    morning, noon, evening = (world.songs[t] for t in ("Morning", "Noon", "Evening"))
    album = sonic(world, world.bob, "getSong", id=noon)["song"]["albumId"]
    expires_ms = int(time.time() * 1000) + HOUR_S * 1000
    seen = run_share_script(world, album, expires_ms)
    songs, by_album = seen["songs"], seen["album"]
    assert songs["entry"] == [morning, evening] and by_album["entry"] == [morning, noon]
    assert (songs["username"], songs["description"]) == ("Bob", "For the road")
    assert songs["expires"] == expires_ms and by_album["expires"] is None
    assert songs["url"] == f"{world.base}/share/{songs['id']}"
    assert seen["page"] == {"status": 200, "type": "text/html; charset=utf-8"}
    listed = {share["id"]: share for share in seen["listed"]}
    assert set(listed) == {songs["id"], by_album["id"]}
    assert (listed[songs["id"]]["visitCount"], listed[by_album["id"]]["visitCount"]) == (1, 0)
    assert seen["otherListed"] == 0  # Cleo manages none of Bob's shares...
    assert (seen["otherUpdate"], seen["otherDelete"]) == (NOT_AUTHORIZED, NOT_AUTHORIZED)
    [after] = seen["after"]  # ...but Bob may: one changed, one deleted
    assert after["id"] == songs["id"]
    assert (after["description"], after["expires"]) == ("For the way back", None)
    assert (seen["deletedAgain"], seen["unknown"]) == (NOT_FOUND, NOT_FOUND)
    assert public(world, f"/share/{by_album['id']}/songs").status_code == 410


# -- REST ------------------------------------------------------------------------------------


def test_rest_shares_make_list_change_and_delete(world):
    morning, noon, evening = (world.songs[t] for t in ("Morning", "Noon", "Evening"))
    ann, bob = world.ann, world.bob
    made = call(world, "POST", "/shares", ann, json={
        "clip_ids": [evening, morning], "description": "  REST  ",
        "expires_at": "2099-01-31T13:00:00+01:00",
    })  # fmt: skip
    assert made.status_code == 201, made.text
    share = made.json()
    assert made.headers["Location"] == f"/shares/{share['id']}"
    assert share["url"] == f"{world.base}/share/{share['id']}"
    assert (share["owner"], share["description"], share["visit_count"]) == ("Ann", "REST", 0)
    assert (share["clip_ids"], share["expires_at"]) == ([evening, morning], "2099-01-31T12:00:00Z")
    album = sonic(world, ann, "getSong", id=noon)["song"]["albumId"]
    by_album = call(world, "POST", "/shares", ann, json={"album_id": album}).json()
    assert by_album["clip_ids"] == [morning, noon]
    sonic(world, ann, "createPlaylist", name="Two", songId=[noon, evening])
    [listed] = [p for p in sonic(world, ann, "getPlaylists")["playlists"]["playlist"]
                if p["name"] == "Two"]  # fmt: skip
    by_playlist = call(world, "POST", "/shares", ann, json={"playlist_id": listed["id"]}).json()
    assert by_playlist["clip_ids"] == [noon, evening]

    assert_bad_bodies_are_400(world, morning)
    assert_refusals(world, share["id"], morning)

    mine = {s["id"] for s in call(world, "GET", "/shares", ann).json()}
    assert {share["id"], by_album["id"], by_playlist["id"]} <= mine
    bobs = call(world, "GET", "/shares", bob).json()
    assert {s["owner"] for s in bobs} <= {"Bob"}  # his own alone, none of Ann's
    assert share["id"] in {s["id"] for s in call(world, "GET", "/shares", world.api_key).json()}
    assert call(world, "GET", f"/shares/{share['id']}", ann).json() == share

    path = f"/shares/{share['id']}"
    changed = call(world, "PATCH", path, ann, json={"description": None, "expires_at": None})
    assert changed.status_code == 200, changed.text
    assert (changed.json()["description"], changed.json()["expires_at"]) == (None, None)
    assert_expiry_ends_and_reopens(world, share["id"], ann)
    by_admin = call(world, "PATCH", path, world.api_key, json={"description": "by the admin"})
    assert by_admin.json()["description"] == "by the admin"

    assert call(world, "DELETE", path, ann).status_code == 204
    assert call(world, "GET", path, ann).status_code == 404
    assert call(world, "DELETE", path, ann).status_code == 404
    for public_path in (f"/share/{share['id']}", f"/share/{share['id']}/songs",
                        f"/share/{share['id']}/stream/{evening}"):  # fmt: skip
        assert public(world, public_path).status_code == 410, public_path
    assert share["id"] not in {s["id"] for s in call(world, "GET", "/shares", ann).json()}


def assert_bad_bodies_are_400(world, song: str) -> None:
    for body in (
        {},
        {"clip_ids": []},
        {"clip_ids": song},
        {"clip_ids": [song], "album_id": "al-0000000000000000"},
        {"clip_ids": [song], "expires_at": "tomorrow"},
        {"clip_ids": [song], "expires_at": "2099-01-01T00:00:00"},  # no offset
        {"clip_ids": [song], "expires_at": "2001-01-01T00:00:00Z"},  # in the past
        {"clip_ids": [song], "description": "x" * 5001},
        {"clip_ids": [song], "description": "nul \x00"},
        {"clip_ids": [song], "colour": "red"},
        {"album_id": 7},
    ):
        answer = call(world, "POST", "/shares", world.ann, json=body)
        assert answer.status_code == 400, (body, answer.text)
        assert answer.json()["description"]
    changed = call(world, "PATCH", "/shares/x", world.ann, json={"expires_at": 5})
    assert changed.status_code == 400


def assert_refusals(world, share_id: str, song: str) -> None:
    path = f"/shares/{share_id}"
    read = call(world, "POST", "/users/Ann/keys", world.api_key, json={"scope": "read"})
    read_key = read.json()["key"]
    assert call(world, "GET", "/shares", read_key).status_code == 200
    for method, target, body in (("POST", "/shares", {"clip_ids": [song]}),
                                 ("PATCH", path, {}), ("DELETE", path, None)):  # fmt: skip
        assert call(world, method, target, read_key, json=body).status_code == 403, method
        assert call(world, method, target, None, json=body).status_code == 401, method
    for method, body in (("GET", None), ("PATCH", {"description": "x"}), ("DELETE", None)):
        assert call(world, method, path, world.bob, json=body).status_code == 403, method
    for body in ({"clip_ids": ["00000000-0000-4000-8000-000000000000"]},
                 {"album_id": "al-0000000000000000"}, {"playlist_id": "not a playlist"},
                 {"clip_ids": [world.smooth]}):  # fmt: skip
        key = world.cleo if body.get("clip_ids") == [world.smooth] else world.ann
        assert call(world, "POST", "/shares", key, json=body).status_code == 404, body
    assert call(world, "GET", "/shares/NoShareHasThisId000000", world.ann).status_code == 404


def assert_expiry_ends_and_reopens(world, share_id: str, key: str) -> None:
    path, page = f"/shares/{share_id}", f"/share/{share_id}"
    ended = call(world, "PATCH", path, key, json={"expires_at": "2001-01-01T00:00:00Z"})
    assert ended.status_code == 200 and ended.json()["expires_at"] == "2001-01-01T00:00:00Z"
    for gone in (page, page + "/songs"):
        assert public(world, gone).status_code == 410, gone
    assert call(world, "GET", path, key).status_code == 200  # its owner still manages it
    call(world, "PATCH", path, key, json={"expires_at": None})
    assert public(world, page).status_code == 200


# -- the public side -------------------------------------------------------------------------


def test_the_page_and_its_songs_need_no_key_and_each_visit_counts(world):
    morning, noon, evening = (world.songs[t] for t in ("Morning", "Noon", "Evening"))
    made = call(world, "POST", "/shares", world.api_key,
                json={"clip_ids": [noon, morning], "description": "Two of three"})  # fmt: skip
    share = made.json()
    page_path = f"/share/{share['id']}"
    before = metric(world.metrics(), "mosic_share_visits_total")
    for n in range(3):
        page = public(world, page_path)
        assert page.status_code == 200
        assert page.headers["Cache-Control"] == "no-store"  # so a reload is a visit too
        assert "default-src 'none'" in page.headers["Content-Security-Policy"]
        assert page.headers["Referrer-Policy"] == "no-referrer"
        assert visits(world, share["id"]) == n + 1
    assert metric(world.metrics(), "mosic_share_visits_total") == before + 3
    with ThreadPoolExecutor(CONCURRENT_VISITS) as pool:  # at once: not one visit lost
        statuses = list(pool.map(lambda _: public(world, page_path).status_code, range(20)))
    assert statuses == [200] * 20 and visits(world, share["id"]) == 23
    # The page holds no data: nothing of the catalogue, not even the share's own songs.
    assert not any(t in page.text for t in ("Morning", "Noon", "Evening", "Two of three"))

    songs = public(world, page_path + "/songs")
    assert songs.status_code == 200 and songs.headers["Cache-Control"] == "no-store"
    body = songs.json()
    assert {k: body[k] for k in ("id", "description", "owner", "expires_at")} == {
        "id": share["id"], "description": "Two of three", "owner": "mosic", "expires_at": None,
    }  # fmt: skip
    assert [song["title"] for song in body["songs"]] == ["Noon", "Morning"]  # nothing else
    first = body["songs"][0]
    assert set(first) == {"id", "title", "artist", "album", "duration", "stream_url", "cover_url"}
    assert first["stream_url"] == f"{page_path}/stream/{noon}" and first["cover_url"] is None
    assert visits(world, share["id"]) == 23, "reading the songs is no visit"

    assert public(world, f"{page_path}/stream/{evening}").status_code == 404  # not in the share
    assert public(world, f"{page_path}/cover/{noon}").status_code == 404  # it has no picture
    assert public(world, "/share/NoShareHasThisId000000").status_code == 404
    assert public(world, "/share/not%00an%20id/songs").status_code == 404
    assert public(world, page_path, "POST").status_code == 405
    assert public(world, f"{page_path}/stream/{noon}", "HEAD").status_code == 200
    assert visits(world, share["id"]) == 23


def test_a_removed_users_shares_are_gone(world):
    _, key = add_user(world, "Dora")
    share = call(world, "POST", "/shares", key, json={"clip_ids": [world.songs["Noon"]]}).json()
    assert public(world, f"/share/{share['id']}").status_code == 200
    assert call(world, "DELETE", "/users/Dora", world.api_key).status_code == 204
    for path in ("", "/songs", f"/stream/{world.songs['Noon']}"):
        assert public(world, f"/share/{share['id']}{path}").status_code == 410, path
    assert share["id"] not in {s["id"] for s in call(world, "GET", "/shares", world.api_key).json()}


def test_the_readme_sharing_example_works_verbatim(tmp_path):
    [example] = sh_blocks_after("### Sharing")[:1]
    song = make_clip(tmp_path / "song.mp3", "mp3", seconds=1.0, title="Shared Song")
    with mosic_serve(tmp_path / "data", api_key=None) as server:
        server.upload(song, "audio/mpeg")
        ran = run_after_setup(example, server.base, tmp_path)
        assert ran.returncode == 0, ran.stdout + ran.stderr
        lines = ran.stdout.splitlines()
        assert lines[0].startswith(f"{server.base}/share/")  # the link to send
        assert '"title": "Shared Song"' in ran.stdout  # its songs, for anyone
        assert '"visit_count":1' in ran.stdout  # the owner's list, after one visit
        assert ran.stdout.endswith("]410\n")  # the list (no newline of its own), then gone


# -- streams, in process, on every backend ---------------------------------------------------


async def test_a_shared_song_streams_with_ranges_and_counts_one_play(api, clip_file, tmp_path):
    song = tmp_path / "covered.mp3"
    shutil.copy(clip_file("mp3", seconds=2.0, freq=610, title="Shared"), song)
    tag_fully(song, "mp3", picture=image(tmp_path / "cover"))
    data = song.read_bytes()
    clip = (await api.upload(data, "covered.mp3")).json
    other = (await api.upload(clip_file("mp3", freq=620).read_bytes(), "other.mp3")).json
    share = (await api.post("/shares", json={"clip_ids": [clip["id"]]})).json["id"]
    stream = f"/share/{share}/stream/{clip['id']}"
    [listed] = (await api.get(f"/share/{share}/songs", key=None)).json["songs"]
    cover_url = f"/share/{share}/cover/{clip['id']}"
    assert (listed["stream_url"], listed["cover_url"]) == (stream, cover_url)

    async def plays() -> int:
        return (await api.get(f"/play/{clip['id']}/stats")).json["play_count"]

    head = await api.head(stream, key=None)
    assert (head.status_code, head.content) == (200, b"")
    assert (head.headers["Content-Length"], head.headers["Accept-Ranges"]) == (
        str(len(data)),
        "bytes",
    )
    probe = await api.get(stream, key=None, headers={"Range": "bytes=0-1"})
    assert (probe.status_code, probe.content) == (206, data[:2])
    seek = await api.get(stream, key=None, headers={"Range": "bytes=100-"})
    assert (seek.status_code, seek.content) == (206, data[100:])
    cached = await api.get(stream, key=None, headers={"If-None-Match": head.headers["ETag"]})
    assert cached.status_code == 304
    assert await plays() == 0, "a probe, a seek, a HEAD and a 304 are no listen"
    whole = await api.get(stream, key=None)
    assert (whole.status_code, whole.content) == (200, data)
    assert await plays() == 1
    past = await api.get(stream, key=None, headers={"Range": f"bytes={len(data)}-"})
    assert past.status_code == 416 and await plays() == 1

    # A visitor is no user: the admin who made the share did not listen.
    stats = (await api.get(f"/play/{clip['id']}/stats")).json
    assert (stats["play_count"], stats["my_play_count"]) == (1, 0)
    assert (await api.get("/me/history")).json == []
    assert metric((await api.get("/metrics", key=None)).text, "mosic_plays_total") == 1

    cover = await api.get(cover_url, key=None)
    assert cover.status_code == 200 and cover.headers["Content-Type"] == "image/jpeg"
    again = await api.get(cover_url, key=None, headers={"If-None-Match": cover.headers["ETag"]})
    assert again.status_code == 304
    assert (await api.get(f"/share/{share}/stream/{other['id']}", key=None)).status_code == 404

    assert (await api.delete(f"/shares/{share}")).status_code == 204
    for method in ("GET", "HEAD"):
        assert (await api.request(method, stream, key=None)).status_code == 410
    assert (await api.get(cover_url, key=None)).status_code == 410
    assert await plays() == 1


# -- in a browser ----------------------------------------------------------------------------

PHONE = (390, 844)
EXPIRES_IN_S = 8  # long enough to open the page; the test then waits for it to pass
FITS = "return document.documentElement.scrollWidth <= window.innerWidth"


def share_buttons(driver) -> list[str]:
    buttons = driver.find_elements(By.CSS_SELECTOR, "#clips button")
    return [b.accessible_name.removeprefix("Play ") for b in buttons]


def assert_clean(driver, allowed: str | None = None) -> None:
    """No console message (but failed loads answered ``allowed``), no policy violation, no
    uncaught error."""
    messages = [e["message"] for e in console(driver)]
    assert [m for m in messages if allowed is None or allowed not in m] == [], messages
    assert driver.execute_script("return window.__violations") == []
    assert driver.execute_script("return window.__errors") == []


def test_a_share_page_plays_in_a_browser_and_expires_for_real(browser, tmp_path):  # noqa: F811
    with mosic_serve(tmp_path / "data") as server:
        songs = {}
        for n, title in enumerate(("Harbour Lights", "Quiet Dawn", "Not Shared")):
            path = make_clip(tmp_path / f"{n}.mp3", "mp3", seconds=6.0, freq=300 + 70 * n,
                             title=title, artist="Sea", album="Coast")  # fmt: skip
            songs[title] = server.upload(path, "audio/mpeg")["id"]
        shared = [songs["Harbour Lights"], songs["Quiet Dawn"]]
        made = call(server, "POST", "/shares", server.api_key,
                    json={"clip_ids": shared, "description": "Songs of the coast"})  # fmt: skip
        share = made.json()
        browser.set_window_size(*PHONE)
        browser.get(share["url"])
        both = ["Harbour Lights", "Quiet Dawn"]
        wait(browser, "the songs", lambda: share_buttons(browser) == both)
        assert browser.execute_script("return window.innerWidth") <= PHONE[0]
        assert browser.find_element(By.ID, "share-heading").text == "Songs of the coast"
        assert "Shared by mosic" in browser.find_element(By.ID, "share-from").text
        assert "Not Shared" not in browser.find_element(By.TAG_NAME, "body").text
        assert browser.find_elements(By.TAG_NAME, "input") == []  # no key asked for
        assert browser.execute_script(FITS), "wider than a phone"
        assert accessibility_problems(browser) == []

        click(browser, named(browser, "button", "Play Harbour Lights"))
        wait(browser, "playback", lambda: audio_time(browser) > 1.0)
        seek = named(browser, "[role=slider]", "Seek")
        assert seek.get_attribute("aria-valuemax") == "6"
        wait(browser, "the play to count", lambda: play_count(server, shared[0]) == 1)
        assert browser.execute_script(FITS), "the player bar is wider than a phone"
        assert accessibility_problems(browser) == []  # the list and the player with its slider
        assert visits(server, share["id"]) == 1
        assert_clean(browser)
        expire_for_real(browser, server, songs["Quiet Dawn"])


def expire_for_real(driver, server, song: str) -> None:
    until = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=EXPIRES_IN_S)
    made = call(server, "POST", "/shares", server.api_key,
                json={"clip_ids": [song], "expires_at": until.isoformat()})  # fmt: skip
    share = made.json()
    driver.get(share["url"])
    wait(driver, "the song", lambda: share_buttons(driver) == ["Quiet Dawn"])
    wait_for("the share to expire", lambda: dt.datetime.now(dt.UTC) > until, EXPIRES_IN_S + 5)
    click(driver, named(driver, "button", "Play Quiet Dawn"))
    status = driver.find_element(By.ID, "status")
    wait(driver, "the page to say the share is gone", lambda: status.text == GONE)
    assert share_buttons(driver) == [] and audio_time(driver) == 0
    stream = httpx.get(f"{server.base}/share/{share['id']}/stream/{song}", timeout=10)
    assert stream.status_code == 410
    assert play_count(server, song) == 0

    driver.refresh()
    heading = wait(driver, "the 410 page", lambda: driver.find_elements(By.TAG_NAME, "h2"))
    assert heading[0].text == "This share is gone"
    assert httpx.get(share["url"], timeout=10).status_code == 410
    assert accessibility_problems(driver) == []
    assert_clean(driver, allowed="410 (Gone)")
