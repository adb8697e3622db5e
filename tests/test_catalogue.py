"""The catalogue's derived rows: albums, artists, genres and counts stay exact through every
change, album songs come in disc and track order, search goes through its index, and
``mosic reindex`` rebuilds it all from clip rows loaded behind Mosic's back. On SQLite and
PostgreSQL (the media store plays no part here).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib
import shutil
import subprocess
import sys
import uuid

import falcon.testing
import pytest
from playhouse.migrate import SchemaMigrator

from mosic.app import create_app
from mosic.persistence.database import make_sync_database
from mosic.persistence.migrations import AppliedMigration
from tests.conftest import LOCAL_BACKENDS, Api, settings_for
from tests.support.asgi import StaysConnected
from tests.support.database import mosic_env
from tests.support.tagging import tag_fully
from tests.test_subsonic import Sub


@pytest.fixture(params=LOCAL_BACKENDS)
def backend(request) -> str:
    return request.param


def album_id(artist: str, album: str) -> str:
    joined = f"{artist}\x00{album}".encode()
    return "al-" + hashlib.sha1(joined, usedforsecurity=False).hexdigest()[:16]


async def upload_tagged(api, clip_file, tmp_path, name, fmt, freq, *, title, artist, album, **tags):
    source = clip_file(fmt, freq=freq, title=title, artist=artist, album=album)
    path = tmp_path / f"{name}.{fmt}"
    shutil.copy(source, path)
    if tags:
        tag_fully(path, fmt, **tags)
    result = await api.upload(path.read_bytes(), path.name)
    assert result.status_code == 201, result.text
    return result.json["id"]


async def test_an_album_plays_in_disc_then_track_order(api, clip_file, tmp_path):
    sub = Sub(api)
    songs = [  # (title, disc, track), uploaded out of order and titled against it
        ("Alpha", "2/2", "1"),
        ("Zeta", "1/2", "1/10"),
        ("Beta", "1/2", "10/10"),
        ("Mid", "1/2", "2/10"),
    ]
    for n, (title, disc, track) in enumerate(songs):
        await upload_tagged(
            api, clip_file, tmp_path, f"s{n}", "flac", 500 + n * 7,
            title=title, artist="Orderly", album="Sides", disc=disc, track=track,
        )  # fmt: skip
    album = (await sub.ok("getAlbum", id=album_id("Orderly", "Sides")))["album"]
    assert [s["title"] for s in album["song"]] == ["Zeta", "Mid", "Beta", "Alpha"]
    directory = (await sub.ok("getMusicDirectory", id=album_id("Orderly", "Sides")))["directory"]
    assert [s["title"] for s in directory["child"]] == ["Zeta", "Mid", "Beta", "Alpha"]


async def test_albums_artists_genres_and_counts_follow_every_change(api, clip_file, tmp_path):
    sub = Sub(api)
    ids = {}
    plan = [
        ("a1", "mp3", "Ann", "One", "Jazz"),
        ("a2", "ogg", "Ann", "One", "Jazz"),
        ("a3", "flac", "Ann", "Two", "Rock"),
        ("b1", "wav", "Bob", "Solo", "Jazz"),
    ]
    for n, (name, fmt, artist, album, genre) in enumerate(plan):
        ids[name] = await upload_tagged(
            api, clip_file, tmp_path, name, fmt, 600 + n * 11,
            title=name.upper(), artist=artist, album=album, genre=genre,
        )  # fmt: skip
    await api.add_external(title="Elsewhere", artist="Ann", album="One")

    async def state():
        artists = (await sub.ok("getArtists"))["artists"]["index"]
        genres = (await sub.ok("getGenres"))["genres"].get("genre", [])
        listed = await api.get("/play")
        return (
            {a["name"]: a["albumCount"] for group in artists for a in group["artist"]},
            {g["value"]: (g["songCount"], g["albumCount"]) for g in genres},
            int(listed.headers["X-Total-Count"]),
            (await sub.ok("getScanStatus"))["scanStatus"]["count"],
        )

    assert await state() == ({"Ann": 2, "Bob": 1}, {"Jazz": (3, 2), "Rock": (1, 1)}, 5, 4)
    one = (await sub.ok("getAlbum", id=album_id("Ann", "One")))["album"]
    assert (one["songCount"], one["genre"]) == (2, "Jazz")

    assert (await api.delete(f"/play/{ids['a3']}")).status_code == 204
    assert await state() == ({"Ann": 1, "Bob": 1}, {"Jazz": (3, 2)}, 4, 3)
    assert await sub.error("getAlbum", id=album_id("Ann", "Two")) == 70

    assert (await api.delete(f"/play/{ids['b1']}")).status_code == 204
    assert (await api.delete(f"/play/{ids['a1']}")).status_code == 204
    assert await state() == ({"Ann": 1}, {"Jazz": (1, 1)}, 2, 1)
    one = (await sub.ok("getAlbum", id=album_id("Ann", "One")))["album"]
    assert one["songCount"] == 1 and [s["id"] for s in one["song"]] == [ids["a2"]]


async def album_names(sub, kind) -> list[str]:
    albums = (await sub.ok("getAlbumList2", type=kind, size=50))["albumList2"].get("album", [])
    return [a["name"] for a in albums]


async def test_frequent_and_recent_album_lists_are_exact_as_of_the_last_play(api, clip_file):
    sub = Sub(api)
    ids = {}
    for n, album in enumerate(("North", "South", "East")):
        path = clip_file("mp3", freq=700 + n * 13, title=album, artist="Compass", album=album)
        ids[album] = (await api.upload(path.read_bytes(), path.name)).json["id"]
    assert await album_names(sub, "frequent") == []
    for album, plays in (("South", 3), ("North", 1), ("East", 2)):
        for _ in range(plays):
            assert (await api.get(f"/play/{ids[album]}/stream")).status_code == 200
    assert await album_names(sub, "frequent") == ["South", "East", "North"]
    assert (await api.get(f"/play/{ids['North']}/stream")).status_code == 200
    assert (await sub.ok("scrobble", id=ids["North"]))["status"] == "ok"
    assert await album_names(sub, "recent") == ["North", "East", "South"]
    north = (await sub.ok("getAlbum", id=album_id("Compass", "North")))["album"]
    assert north["playCount"] == 3
    assert sorted(await album_names(sub, "random")) == ["East", "North", "South"]


async def test_search_finds_every_word_as_a_substring_long_or_short(api, clip_file):
    sub = Sub(api)
    titles = {"Riverbank Blues": "Ann", "Blue River": "Bob", "Ox Bow": "Cy", "Oxbow Lake": "Di"}
    ids = {}
    for n, (title, artist) in enumerate(titles.items()):
        path = clip_file("mp3", freq=800 + n * 9, title=title, artist=artist, album="Water")
        ids[title] = (await api.upload(path.read_bytes(), path.name)).json["id"]

    async def found(q):
        listed = await api.get("/play", params={"q": q})
        return sorted(c["title"] for c in listed.json), int(listed.headers["X-Total-Count"])

    assert await found("RIVER") == (["Blue River", "Riverbank Blues"], 2)
    assert await found("river blue") == (["Blue River", "Riverbank Blues"], 2)
    assert await found("iverb") == (["Riverbank Blues"], 1)
    assert await found("ox") == (["Ox Bow", "Oxbow Lake"], 2)  # shorter than a trigram
    assert await found("ox lake") == (["Oxbow Lake"], 1)
    assert await found("bob river") == (["Blue River"], 1)  # the artist is searched too
    assert await found("nothing") == ([], 0)
    result = await sub.ok("search3", query="river", albumCount=5, artistCount=5)
    songs = result["searchResult3"]["song"]
    assert sorted(s["title"] for s in songs) == ["Blue River", "Riverbank Blues"]
    artists = (await sub.ok("search3", query="cy", songCount=0))["searchResult3"]["artist"]
    assert [a["name"] for a in artists] == ["Cy"]
    # An album is its artist's: four artists, four albums named Water; its artist is searched.
    albums = (await sub.ok("search3", query="wat", songCount=0))["searchResult3"]["album"]
    assert sorted(a["artist"] for a in albums) == ["Ann", "Bob", "Cy", "Di"]
    albums = (await sub.ok("search3", query="wat ann", songCount=0))["searchResult3"]["album"]
    assert [(a["name"], a["artist"]) for a in albums] == [("Water", "Ann")]


def _insert_clips(settings, rows: list[dict]) -> None:
    """Clip rows written straight into the database, as a bulk SQL load would: no album, no
    artist, no count is touched."""
    db = make_sync_database(settings)
    try:
        for row in rows:
            columns = ", ".join(row)
            marks = ", ".join(["%s" if settings.postgres else "?"] * len(row))
            db.execute_sql(f"INSERT INTO clip ({columns}) VALUES ({marks})", list(row.values()))  # noqa: S608
    finally:
        db.close()


def _bulk_row(n: int, title: str, artist: str, album: str, genre: str) -> dict:
    now = dt.datetime(2026, 1, 1) + dt.timedelta(minutes=n)
    sha = hashlib.sha256(title.encode()).hexdigest()
    return {
        # A UUID as each database stores one (peewee writes 32 hex digits on SQLite).
        "id": uuid.uuid4().hex, "title": title, "duration": 60.0 + n, "artist": artist,
        "album": album, "genre": genre, "genre_key": genre.casefold(),
        "content_type": "audio/mpeg", "size": 1000 + n, "sha256": sha,
        "file_name": sha + ".mp3", "search_text": f"{title}\n{artist}\n{album}".casefold(),
        "play_count": n, "created_at": now, "updated_at": now, "track": n + 1,
    }  # fmt: skip


def _reindex(settings) -> subprocess.CompletedProcess:
    run = subprocess.run(
        [sys.executable, "-m", "mosic", "reindex"],
        env={**mosic_env(settings), "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    return run


async def test_reindex_rebuilds_what_a_bulk_load_left_out(settings, api):
    sub = Sub(api)
    rows = [
        _bulk_row(0, "Loaded One", "Loader", "Bulk", "Ambient"),
        _bulk_row(1, "Loaded Two", "Loader", "Bulk", "Ambient"),
        _bulk_row(2, "Other Song", "Other", "Elsewhere", "Noise"),
    ]
    _insert_clips(settings, rows)
    # Before: the clips are there, what is derived from them is not.
    assert await sub.error("getAlbum", id=album_id("Loader", "Bulk")) == 70
    assert "reindexed 3 clip(s)" in _reindex(settings).stderr
    bulk = (await sub.ok("getAlbum", id=album_id("Loader", "Bulk")))["album"]
    assert [s["title"] for s in bulk["song"]] == ["Loaded One", "Loaded Two"]
    # Subsonic's playCount is the caller's own (the admin played nothing); everyone's stays.
    assert (bulk["songCount"], bulk["playCount"], bulk["genre"]) == (2, 0, "Ambient")
    loaded = (await api.get("/play", params={"album": "Bulk"})).json
    assert sum(clip["play_count"] for clip in loaded) == 1
    genres = (await sub.ok("getGenres"))["genres"]["genre"]
    assert {g["value"]: g["songCount"] for g in genres} == {"Ambient": 2, "Noise": 1}
    assert (await api.get("/play")).headers["X-Total-Count"] == "3"
    found = await api.get("/play", params={"q": "other"})
    assert [c["title"] for c in found.json] == ["Other Song"]
    assert (await sub.ok("getScanStatus"))["scanStatus"]["count"] == 3


def _directory_id(folder: str, path: str) -> str:
    joined = f"{folder}\x00{path}".encode()
    return "dir-" + hashlib.sha1(joined, usedforsecurity=False).hexdigest()[:16]


async def test_reindex_rebuilds_the_folder_tree_of_library_files(settings, api):
    sub = Sub(api)
    rows = [
        _bulk_row(0, "Deep One", "Loader", "Bulk", "Ambient"),
        _bulk_row(1, "Deep Two", "Loader", "Bulk", "Ambient"),
        _bulk_row(2, "At The Top", "Other", "Elsewhere", "Noise"),
    ]
    paths = ["Loader/Bulk/01 Deep One.mp3", "Loader/Bulk/02 Deep Two.mp3", "top.mp3"]
    for row, path in zip(rows, paths, strict=True):
        row.update(source="library", music_folder="Music", path=path)
    _insert_clips(settings, rows)
    stale = _directory_id("Music", "Gone")  # a directory nothing lies in any more
    db = make_sync_database(settings)
    try:
        marks = ", ".join(["%s" if settings.postgres else "?"] * 6)
        columns = "id, music_folder, path, parent_id, name, sort_key"
        insert = f"INSERT INTO library_directory ({columns}) VALUES ({marks})"  # noqa: S608
        db.execute_sql(insert, [stale, "Music", "Gone", _directory_id("Music", ""), "Gone", "gone"])
    finally:
        db.close()
    album = _directory_id("Music", "Loader/Bulk")
    assert await sub.error("getMusicDirectory", id=album) == 70  # no rows for it yet
    _reindex(settings)
    top = (await sub.ok("getMusicDirectory", id=_directory_id("Music", "")))["directory"]
    assert [c["title"] for c in top["child"]] == ["Loader", "At The Top"]  # "Gone" is gone
    loader = (await sub.ok("getMusicDirectory", id=top["child"][0]["id"]))["directory"]
    assert [c["title"] for c in loader["child"]] == ["Bulk"]
    bulk = (await sub.ok("getMusicDirectory", id=album))["directory"]
    assert [c["title"] for c in bulk["child"]] == ["Deep One", "Deep Two"]
    assert bulk["parent"] == loader["id"]
    assert await sub.error("getMusicDirectory", id=stale) == 70


@pytest.fixture
def old_settings(backend, tmp_path, request):
    """Settings of a database that the release before the library made: migrations up to
    0003, applied as that release applied them."""
    url = request.getfixturevalue("postgres_url") if backend == "postgresql" else None
    settings = settings_for("sqlite", tmp_path / "data", None)
    if url is not None:
        pg = request.getfixturevalue("fresh_postgres_db")
        settings = settings_for("postgresql", tmp_path / "data", url).replace(postgres=pg)
    db = make_sync_database(settings)
    try:
        with db.bind_ctx([AppliedMigration]), db.atomic():
            db.create_tables([AppliedMigration])
            migrator = SchemaMigrator.from_database(db)
            for name in ("0001_create_clip", "0002_full_tags", "0003_subsonic"):
                importlib.import_module(f"mosic.persistence.migrations.{name}").apply(db, migrator)
                AppliedMigration.create(name=name, applied_at=dt.datetime(2026, 11, 1))
    finally:
        db.close()
    return settings


async def test_an_upgrade_fills_the_library_and_keeps_stars_and_plays(old_settings):
    rows = [_bulk_row(n, f"Old {n}", "Elder", "Vintage", "Folk") for n in range(3)]
    for row in rows:
        row["media_version"] = 1  # read by the old release already
    _insert_clips(old_settings, rows)
    vintage = album_id("Elder", "Vintage")
    star_sql = "INSERT INTO subsonic_star (item_id, starred_at) VALUES ('%s', '2026-11-02')"
    db = make_sync_database(old_settings)
    try:
        db.execute_sql(star_sql % vintage)  # noqa: S608 (constants of the test)
    finally:
        db.close()
    run = subprocess.run(
        [sys.executable, "-m", "mosic", "migrate"],
        env={**mosic_env(old_settings), "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "0004_library" in run.stderr and "reindexed 3 clip(s)" in run.stderr
    app = StaysConnected(create_app(old_settings))
    async with falcon.testing.ASGIConductor(app) as conductor:
        sub = Sub(Api(conductor, old_settings, old_settings.media_root))
        starred = (await sub.ok("getStarred2"))["starred2"]["album"]
        # playCount is the caller's own since users; the earlier plays stay everyone's.
        assert [(a["id"], a["songCount"], a["playCount"]) for a in starred] == [(vintage, 3, 0)]
        album = (await sub.ok("getAlbum", id=vintage))["album"]
        assert [s["title"] for s in album["song"]] == ["Old 0", "Old 1", "Old 2"]
        listed = await sub.api.get("/play", params={"music_folder": "Uploads"})
        assert listed.headers["X-Total-Count"] == "3"
        assert {c["source"] for c in listed.json} == {"upload"}
        assert sum(clip["play_count"] for clip in listed.json) == 3  # everyone's plays stay
