"""An upgrade from the release before per-user state (commit 3332196, the last before
migration 0008), over real HTTP, on SQLite and on PostgreSQL.

The previous release's own code (``git archive`` of that commit) serves a data directory and
database: the admin uploads two songs, stars a song and its album, rates a song, makes a
private and a public playlist, saves a play queue and plays the songs. Today's code then
starts on the same data (migrating at start). The admin finds everything where it was, the
global play counts are what they were, the configured full key and a read-only key work
unchanged, and a new listener sees none of the admin's things but the public playlist.
"""

from __future__ import annotations

import hashlib
import secrets
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.conftest import LOCAL_BACKENDS
from tests.support.audio import make_clip
from tests.support.server import REPO, mosic_serve
from tests.test_folders import db_env

PREVIOUS = "3332196"  # users, and one shared set of stars, playlists and queue
READ_KEY = "upgrade-read-key-0123456789abcdef"
FULL_KEY = "upgrade-full-key-0123456789abcdef"
ADMIN = "mosic"
QUEUE_POSITION_MS = 7_000
PLAYS = {"One": 2, "Two": 1}  # full REST GETs of each song before the upgrade


def previous_release(into: Path) -> Path:
    """The previous release's ``mosic`` package, unpacked under ``into``."""
    known = subprocess.run(
        ["git", "-C", str(REPO), "cat-file", "-e", f"{PREVIOUS}^{{commit}}"],
        capture_output=True,
        text=True,
        check=False,
    )
    if known.returncode != 0:
        pytest.fail(
            f"commit {PREVIOUS} (the release before per-user state) is not in {REPO}'s git "
            f"history ({known.stderr.strip() or 'no git'}); the upgrade test needs the full "
            "history: clone without --depth, or run `git fetch --unshallow`"
        )
    into.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", PREVIOUS, "mosic"], capture_output=True, check=True
    )
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    assert (into / "mosic" / "persistence" / "migrations" / "0007_users.py").is_file()
    assert not (into / "mosic" / "persistence" / "migrations" / "0008_user_state.py").exists()
    return into


@pytest.fixture(params=LOCAL_BACKENDS)
def pg(request):
    if request.param != "postgresql":
        yield None
        return
    yield request.getfixturevalue("fresh_postgres_db")


def subsonic(server, method: str, auth: dict, **params) -> dict:
    answer = httpx.get(
        f"{server.base}/rest/{method}",
        params={**auth, **params, "f": "json", "c": "upgrade"},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    return answer.json()["subsonic-response"]


def ok(answer: dict) -> dict:
    assert answer["status"] == "ok", answer
    return answer


def token(key: str) -> dict:
    salt = secrets.token_hex(6)
    return {"t": hashlib.md5((key + salt).encode(), usedforsecurity=False).hexdigest(), "s": salt}


def rest(server, method: str, path: str, key: str, **kwargs) -> httpx.Response:
    return httpx.request(
        method, server.base + path, headers={"X-API-Key": key}, timeout=10, **kwargs
    )


def before_the_upgrade(old, tmp_path: Path) -> dict:
    """What the admin keeps with the previous release; the ids the test looks for after."""
    admin = {"u": ADMIN, "p": FULL_KEY}
    # The previous release is what answers: it has no per-user history.
    assert rest(old, "GET", "/me/history", FULL_KEY).status_code == 404
    songs = {}
    for n, (title, fmt, kind) in enumerate(
        (("One", "mp3", "audio/mpeg"), ("Two", "ogg", "audio/ogg"))
    ):
        path = make_clip(
            tmp_path / f"{title}.{fmt}",
            fmt,
            seconds=1.0,
            freq=330 + 60 * n,
            title=title,
            artist="Old Band",
            album=f"Album {title}",
        )
        songs[title] = old.upload(path, kind)["id"]
    one, two = songs["One"], songs["Two"]
    album = ok(subsonic(old, "getSong", admin, id=one))["song"]["albumId"]
    ok(subsonic(old, "star", admin, id=one, albumId=album))
    ok(subsonic(old, "setRating", admin, id=two, rating=3))
    own = ok(subsonic(old, "createPlaylist", admin, name="Old favourites", songId=[one, two]))
    party = ok(subsonic(old, "createPlaylist", admin, name="Old party", songId=[two]))
    playlists = {"private": own["playlist"]["id"], "public": party["playlist"]["id"]}
    ok(subsonic(old, "updatePlaylist", admin, playlistId=playlists["public"], public="true"))
    ok(
        subsonic(
            old, "savePlayQueue", admin, id=[two, one], current=one, position=QUEUE_POSITION_MS
        )
    )
    for title, times in PLAYS.items():
        for _ in range(times):
            whole = rest(old, "GET", f"/play/{songs[title]}/stream", FULL_KEY)
            assert whole.status_code == 200 and whole.content
    for title, times in PLAYS.items():
        assert (
            rest(old, "GET", f"/play/{songs[title]}/stats", READ_KEY).json()["play_count"] == times
        )
    # What the previous release itself says, to compare with after.
    kept = {
        "starred2": ok(subsonic(old, "getStarred2", admin))["starred2"],
        "playlists": ok(subsonic(old, "getPlaylists", admin))["playlists"]["playlist"],
    }
    return {"songs": songs, "album": album, "playlists": playlists, "kept": kept}


def test_what_the_admin_kept_before_users_is_the_admins_after_the_upgrade(tmp_path, pg):
    old_code = previous_release(tmp_path / "previous")
    data = tmp_path / "data"
    keys = {"api_key": FULL_KEY, "MOSIC_READ_API_KEYS": f"{READ_KEY},", **db_env(pg)}
    with mosic_serve(data, pythonpath=old_code, **keys) as old:
        before = before_the_upgrade(old, tmp_path)
    one, two = before["songs"]["One"], before["songs"]["Two"]
    playlists = before["playlists"]

    with mosic_serve(data, **keys) as new:
        assert rest(new, "GET", "/me/history", FULL_KEY).status_code == 200  # today's code
        # The same keys, unchanged: the configured full key is the admin's, and the read key
        # reads but may not write.
        assert rest(new, "GET", "/me", FULL_KEY).json() == {
            "name": ADMIN,
            "role": "admin",
            "music_folders": None,
        }
        assert rest(new, "GET", "/me", READ_KEY).json()["name"] == ADMIN
        assert rest(new, "GET", "/play", READ_KEY).status_code == 200
        remote = {"title": "t", "duration": 1, "audio_url": "https://example.com/a.mp3"}
        assert rest(new, "POST", "/play", READ_KEY, json=remote).status_code == 403
        for login in (
            {"u": ADMIN, "p": FULL_KEY},
            {"u": ADMIN, **token(FULL_KEY)},
            {"apiKey": FULL_KEY},
            {"u": ADMIN, "p": READ_KEY},
            {"apiKey": READ_KEY},
        ):
            assert subsonic(new, "ping", login)["status"] == "ok", login.keys()
        assert subsonic(new, "star", {"apiKey": READ_KEY}, id=two)["error"]["code"] == 50

        # Every play before stays in the global counts, whoever asks.
        for title, times in PLAYS.items():
            clip_id = before["songs"][title]
            for key in (FULL_KEY, READ_KEY):
                stats = rest(new, "GET", f"/play/{clip_id}/stats", key).json()
                assert stats["play_count"] == times, (title, stats)

        # The admin's stars, rating, playlists and queue, as the previous release kept them.
        admin = {"u": ADMIN, **token(FULL_KEY)}
        starred = ok(subsonic(new, "getStarred2", admin))["starred2"]
        assert [s["id"] for s in starred["song"]] == [one]
        assert [a["id"] for a in starred["album"]] == [before["album"]]
        assert [s["id"] for s in starred["song"]] == [
            s["id"] for s in before["kept"]["starred2"]["song"]
        ]
        songs = {
            t: ok(subsonic(new, "getSong", admin, id=i))["song"] for t, i in before["songs"].items()
        }
        assert "starred" in songs["One"] and "starred" not in songs["Two"]
        assert songs["Two"].get("userRating") == 3 and songs["One"].get("userRating") is None
        listed = {
            p["id"]: p for p in ok(subsonic(new, "getPlaylists", admin))["playlists"]["playlist"]
        }
        assert {
            i: (p["name"], p["owner"], p["public"], p["songCount"]) for i, p in listed.items()
        } == {
            playlists["private"]: ("Old favourites", ADMIN, False, 2),
            playlists["public"]: ("Old party", ADMIN, True, 1),
        }
        assert sorted(listed) == sorted(p["id"] for p in before["kept"]["playlists"])
        entries = ok(subsonic(new, "getPlaylist", admin, id=playlists["private"]))["playlist"]
        assert [e["id"] for e in entries["entry"]] == [one, two]
        queue = ok(subsonic(new, "getPlayQueue", admin))["playQueue"]
        assert [e["id"] for e in queue["entry"]] == [two, one]
        assert (queue["current"], queue["position"], queue["username"]) == (
            one,
            QUEUE_POSITION_MS,
            ADMIN,
        )

        # A listener made after the upgrade has none of it but the public playlist, read-only.
        made = rest(new, "POST", "/users", FULL_KEY, json={"name": "Lou"})
        assert made.status_code == 201, made.text
        lou_key = made.json()["key"]["key"]
        lou = {"u": "Lou", **token(lou_key)}
        starred = ok(subsonic(new, "getStarred2", lou))["starred2"]
        assert not starred.get("song") and not starred.get("album") and not starred.get("artist")
        for title, clip_id in before["songs"].items():
            song = ok(subsonic(new, "getSong", lou, id=clip_id))["song"]
            assert "starred" not in song and song.get("userRating") is None, (title, song)
            assert song["playCount"] == 0, (title, song)  # the earlier plays are nobody's
            assert rest(new, "GET", f"/play/{clip_id}/stats", lou_key).json()["my_play_count"] == 0
        queue = ok(subsonic(new, "getPlayQueue", lou))["playQueue"]
        assert not queue.get("entry") and queue["username"] == "Lou"
        theirs = ok(subsonic(new, "getPlaylists", lou))["playlists"]["playlist"]
        assert [(p["id"], p["owner"]) for p in theirs] == [(playlists["public"], ADMIN)]
        assert subsonic(new, "getPlaylist", lou, id=playlists["private"])["error"]["code"] == 70
        changed = subsonic(new, "updatePlaylist", lou, playlistId=playlists["public"], name="Lou's")
        assert changed["error"]["code"] == 50
        assert ok(subsonic(new, "getStarred2", admin))["starred2"]["song"][0]["id"] == one
