"""Music folders indexed in place, against a real ``mosic serve`` on SQLite and PostgreSQL:
a real tree (nested folders, the six formats, mixed-case extensions, hidden files, a text
file named .mp3, a folder cover, an .lrc, links inside and outside) scanned read-only to the
last byte; re-tags, moves, deletions and returns that keep ids and play counts; the watcher;
``mosic scan``; and two servers on one PostgreSQL that scan once."""

from __future__ import annotations

import concurrent.futures
import hashlib
import os
import re
import shutil
import stat
import subprocess
import sys
import uuid
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import httpx
import mutagen
import pytest

from mosic.media.local import BACKGROUND_NICE, LocalStore
from mosic.media.storage import MediaMissing
from mosic.persistence.database import make_sync_database
from mosic.settings import PostgresConfig, Settings, SettingsError, load_settings
from tests.conftest import LOCAL_BACKENDS
from tests.support.analysis import dies, who_reads
from tests.support.audio import make_clip
from tests.support.database import migrate
from tests.support.server import clean_env, mosic_serve, wait_for
from tests.support.tagging import Image, image, tag_fully

SCAN_WAIT_S = 60
FOLDER = "Music"
# path in the folder -> (format, tags); a file without a title is named by its file name.
TRACKS = {
    "Artist A/Album 1/01 First.mp3": ("mp3", {"title": "First", "artist": "A", "album": "One"}),
    "Artist A/Album 1/02 Second.OGG": ("ogg", {"title": "Second", "artist": "A", "album": "One"}),
    "Artist A/Album 2/Third.opus": ("opus", {"title": "Third", "artist": "A", "album": "Two"}),
    "Artist A/Album 2/Fourth.Flac": ("flac", {"artist": "A", "album": "Two"}),
    "Various/Fifth.wav": ("wav", {"title": "Fifth", "artist": "B"}),
    "Various/deeper/Sixth.M4A": ("m4a", {"title": "Sixth", "artist": "C"}),
}
LINK_INSIDE = "links/again.mp3"  # -> Artist A/Album 1/01 First.mp3: the same bytes, a 2nd clip
EXPECTED = {*TRACKS, LINK_INSIDE}
DIRECTORIES = {"", "Artist A", "Artist A/Album 1", "Artist A/Album 2", "Various",
               "Various/deeper", "links"}  # fmt: skip


def build_tree(root: Path, outside: Path) -> Path:
    """The library tree under ``root``/Music; ``outside`` holds what a link points out to."""
    music = root / FOLDER
    for number, (path, (fmt, tags)) in enumerate(TRACKS.items()):
        make_clip(music / path, fmt, freq=300 + 40 * number, **tags)
    (music / "Artist A/Album 1/01 First.lrc").write_text("[00:00.10]first line\n")
    image(music / "Artist A/Album 1/Cover", "blue")  # a folder cover, as Cover.jpg
    (music / "Artist A/Album 1/Cover.jpg").rename(music / "Artist A/Album 1/Cover.JPG")
    make_clip(music / ".hidden/Hidden.mp3", "mp3", freq=900, title="Hidden")
    make_clip(music / "Various/.Dotted.mp3", "mp3", freq=910, title="Dotted")
    (music / "Various/not audio.mp3").write_text("this is a text file, not audio\n")
    make_clip(outside / "Elsewhere.mp3", "mp3", freq=920, title="Elsewhere")
    (music / "links").mkdir()
    os.symlink("../Artist A/Album 1/01 First.mp3", music / LINK_INSIDE)
    os.symlink(outside / "Elsewhere.mp3", music / "links/out.mp3")
    os.symlink(outside, music / "links/out-dir")
    return music


def snapshot(root: Path) -> dict[str, tuple]:
    """Every entry under ``root``: its kind, and for files their SHA-256 and mtime."""
    seen = {}
    for path in sorted(root.rglob("*")):
        info = path.lstat()
        if stat.S_ISREG(info.st_mode):
            seen[str(path)] = ("file", hashlib.sha256(path.read_bytes()).hexdigest(),
                               info.st_mtime_ns)  # fmt: skip
        else:
            seen[str(path)] = (stat.filemode(info.st_mode), info.st_mtime_ns)
    return seen


def read_only(root: Path) -> None:
    subprocess.run(["chmod", "-R", "a-w", str(root)], check=True)


def writable(root: Path) -> None:
    subprocess.run(["chmod", "-R", "u+w", str(root)], check=True)


# -- the server and its database --------------------------------------------------------------


def db_env(pg: PostgresConfig | None) -> dict[str, str]:
    if pg is None:
        return {}
    return {"MOSIC_DB_HOST": pg.host, "MOSIC_DB_PORT": str(pg.port), "MOSIC_DB_USER": pg.user,
            "MOSIC_DB_NAME": pg.name}  # fmt: skip


def query(data_dir: Path, pg: PostgresConfig | None, sql: str, *params) -> list[tuple]:
    """Rows of ``sql`` from the server's own database (SQLite file or PostgreSQL)."""
    db = make_sync_database(Settings(data_dir=data_dir, postgres=pg))
    try:
        sql = sql.replace("?", "%s") if pg is not None else sql
        return list(db.execute_sql(sql, params).fetchall())
    finally:
        db.close()


def clips(server, pg) -> dict[str, dict]:
    """Library clips by path: id, title, folder, source, missing, lyrics, cover, plays."""
    rows = query(server.data_dir, pg,
                 "SELECT path, id, title, music_folder, source, missing_since, lyrics_path, "
                 "cover_name, play_count FROM clip WHERE source = 'library'")  # fmt: skip
    names = ("id", "title", "music_folder", "source", "missing_since", "lyrics_path",
             "cover_name", "play_count")  # fmt: skip
    return {row[0]: {**dict(zip(names, row[1:], strict=True)), "id": str(row[1])} for row in rows}


def scan_status(server) -> dict:
    response = server.get("/library/scan")
    assert response.status_code == 200, response.text
    return response.json()


def scanned(server, after: str | None = None) -> dict:
    """Wait for a scan that started after ``after`` (a started_at) to finish."""

    def done():
        status = scan_status(server)
        fresh = status["finished_at"] and status["started_at"] != after
        return status if fresh and not status["scanning"] else None

    return wait_for("the library scan to finish", done, SCAN_WAIT_S, server.log)


def rescan(server) -> dict:
    before = scan_status(server)["started_at"]
    response = httpx.post(server.base + "/library/scan", headers=server.headers, timeout=10)
    assert response.status_code == 202, response.text
    return scanned(server, before)


@pytest.fixture(params=LOCAL_BACKENDS)
def pg(request):
    if request.param != "postgresql":
        yield None
        return
    yield request.getfixturevalue("fresh_postgres_db")


@pytest.fixture
def library(tmp_path) -> Path:
    music = build_tree(tmp_path / "library", tmp_path / "outside")
    yield music
    writable(tmp_path / "library")  # so pytest can remove it


def serve(tmp_path: Path, music: Path, pg, *extra, **settings):
    return mosic_serve(tmp_path / "data", *extra, MOSIC_LIBRARY_DIRS=str(music),
                       MOSIC_LIBRARY_SETTLE_S="0.2", **db_env(pg), **settings)  # fmt: skip


# -- what a scan indexes ------------------------------------------------------------------------


def test_a_read_only_tree_is_indexed_in_place_and_left_as_it_was(tmp_path, library, pg):
    read_only(library.parent)
    before = snapshot(library.parent)
    with serve(tmp_path, library, pg, "--workers", "2") as server:
        status = scanned(server)
        found = clips(server, pg)
        assert set(found) == EXPECTED
        assert status["added"] == len(EXPECTED) and status["failed"] == 1
        assert re.search(r"Music/Various/not audio\.mp3 skipped", server.output())
        assert {c["source"] for c in found.values()} == {"library"}
        assert {c["music_folder"] for c in found.values()} == {FOLDER}
        assert found["Artist A/Album 2/Fourth.Flac"]["title"] == "Fourth"  # from its name
        assert found["Artist A/Album 1/01 First.mp3"]["lyrics_path"] == (
            "Artist A/Album 1/01 First.lrc"
        )
        assert_sidecar_cover(server, found, library)
        assert_streams(server, found, library)
        assert_upload_of_library_bytes_is_a_duplicate(server, found, library)
        assert_library_clips_change_only_in_their_folder(server, found)
        assert_subsonic_browses_the_real_tree(server)
        rows = query(server.data_dir, pg, "SELECT path FROM library_directory")
        assert {row[0] for row in rows} == DIRECTORIES
        assert_reported(server)
        assert snapshot(library.parent) == before, "the scan changed the library folder"
        # The watcher (root writes pass through chmod) sees a new album arrive.
        make_clip(library / "New Artist/New Album/Arrived.mp3", "mp3", freq=777, title="Arrived")
        wait_for("the new file to be listed",
                 lambda: "New Artist/New Album/Arrived.mp3" in clips(server, pg),
                 SCAN_WAIT_S, server.log)  # fmt: skip
        assert clips(server, pg)["New Artist/New Album/Arrived.mp3"]["title"] == "Arrived"


def assert_sidecar_cover(server, found: dict, library: Path) -> None:
    cover = (library / "Artist A/Album 1/Cover.JPG").read_bytes()
    plain = found["Artist A/Album 1/02 Second.OGG"]  # embeds no picture: the folder's
    assert plain["cover_name"] == hashlib.sha256(cover).hexdigest() + ".jpg"
    response = server.get(f"/play/{plain['id']}/cover")
    assert response.status_code == 200 and response.content == cover
    assert found["Various/Fifth.wav"]["cover_name"] is None


def assert_streams(server, found: dict, library: Path) -> None:
    """Bytes stream from the folder itself, ranges included."""
    for path in ("Various/deeper/Sixth.M4A", LINK_INSIDE):
        clip_id = found[path]["id"]
        data = (library / path).read_bytes()
        whole = server.get(f"/play/{clip_id}/stream")
        assert whole.status_code == 200 and whole.content == data
        part = server.get(f"/play/{clip_id}/stream", headers={"Range": "bytes=10-19"})
        assert part.status_code == 206 and part.content == data[10:20]


def assert_upload_of_library_bytes_is_a_duplicate(server, found: dict, library: Path) -> None:
    path = "Various/Fifth.wav"
    upload = {"file": ("copy.wav", (library / path).read_bytes(), "audio/wav")}
    response = httpx.post(
        server.base + "/play/upload", headers=server.headers, files=upload, timeout=30
    )
    assert response.status_code == 409, response.text
    assert response.json()["existing_id"].replace("-", "") == found[path]["id"].replace("-", "")


def assert_library_clips_change_only_in_their_folder(server, found: dict) -> None:
    clip_id = str(uuid.UUID(found["Various/Fifth.wav"]["id"]))
    renamed = httpx.patch(f"{server.base}/play/{clip_id}", headers=server.headers,
                          json={"title": "Renamed"}, timeout=10)  # fmt: skip
    assert renamed.status_code == 409 and "music folder" in renamed.json()["description"]
    deleted = httpx.delete(f"{server.base}/play/{clip_id}", headers=server.headers, timeout=10)
    assert deleted.status_code == 409
    kept = server.get(f"/play/{clip_id}")
    assert kept.status_code == 200 and kept.json()["title"] != "Renamed"
    listed = server.get("/play", params={"music_folder": FOLDER, "source": "library"})
    assert int(listed.headers["X-Total-Count"]) == len(EXPECTED)
    uploads = server.get("/play", params={"source": "upload"})
    assert uploads.headers["X-Total-Count"] == "0"


def subsonic(server, method: str, **params) -> dict:
    response = server.get(
        f"/rest/{method}", params={"apiKey": server.api_key, "f": "json", **params}
    )
    body = response.json()["subsonic-response"]
    assert body["status"] == "ok", body
    return body


def assert_subsonic_browses_the_real_tree(server) -> None:
    folders = subsonic(server, "getMusicFolders")["musicFolders"]["musicFolder"]
    assert [f["name"] for f in folders] == ["Uploads", FOLDER] and folders[0]["id"] == 1
    music_id = folders[1]["id"]
    top = subsonic(server, "getIndexes", musicFolderId=music_id)["indexes"]
    names = {entry["name"]: entry["id"] for group in top["index"] for entry in group["artist"]}
    assert set(names) == {"Artist A", "Various", "links"}
    artist_dir = subsonic(server, "getMusicDirectory", id=names["Artist A"])["directory"]
    assert [c["title"] for c in artist_dir["child"]] == ["Album 1", "Album 2"]
    assert all(c["isDir"] for c in artist_dir["child"])
    album_dir = subsonic(server, "getMusicDirectory", id=artist_dir["child"][0]["id"])
    songs = album_dir["directory"]["child"]
    assert [c["title"] for c in songs if not c["isDir"]] == ["First", "Second"]
    assert album_dir["directory"]["parent"] == names["Artist A"]
    uploads_only = subsonic(server, "getRandomSongs", musicFolderId=1, size=50)
    assert uploads_only["randomSongs"].get("song", []) == []
    in_music = subsonic(server, "getRandomSongs", musicFolderId=music_id, size=50)
    assert len(in_music["randomSongs"]["song"]) == len(EXPECTED)


def assert_reported(server) -> None:
    subsonic = server.get("/rest/getScanStatus", params={"apiKey": server.api_key, "f": "json"})
    scan = subsonic.json()["subsonic-response"]["scanStatus"]
    assert scan["scanning"] is False and scan["count"] >= len(EXPECTED)
    metrics = server.metrics()
    assert re.search(r'mosic_library_files\{music_folder="Music"\} 7\.0', metrics)
    assert re.search(r'mosic_library_scan_files_total\{outcome="added"\} 7\.0', metrics)
    assert re.search(r'mosic_library_scan_files_total\{outcome="failed"\} 1\.0', metrics)
    assert "mosic_library_scan_seconds_count" in metrics


# -- identity across changes --------------------------------------------------------------------


def retitle(path: Path, title: str) -> None:
    """Re-tag as a tagger would: the file rewritten in place (Vorbis comments)."""
    audio = mutagen.File(path)
    audio["title"] = [title]
    audio.save()


def test_retags_moves_deletions_and_returns_keep_ids_and_play_counts(tmp_path, library, pg):
    first, moved_to = "Artist A/Album 2/Third.opus", "Elsewhere/Third.opus"
    with serve(tmp_path, library, pg, MOSIC_LIBRARY_WATCH="false") as server:
        scanned(server)
        clip_id = clips(server, pg)[first]["id"]
        assert server.get(f"/play/{clip_id}/stream").status_code == 200  # one play
        retitle(library / first, "Third, re-tagged")
        status = rescan(server)
        assert (status["updated"], status["added"]) == (1, 0)
        after = clips(server, pg)[first]
        assert (after["id"], after["title"], after["play_count"]) == (
            clip_id, "Third, re-tagged", 1
        )  # fmt: skip
        (library / "Elsewhere").mkdir()
        shutil.move(library / first, library / moved_to)
        status = rescan(server)
        assert (status["moved"], status["added"], status["missing"]) == (1, 0, 0)
        assert clips(server, pg)[moved_to]["id"] == clip_id
        kept = (library / moved_to).read_bytes()
        (library / moved_to).unlink()
        assert rescan(server)["missing"] == 1
        assert clips(server, pg)[moved_to]["missing_since"] is not None
        assert server.get(f"/play/{clip_id}/stream").status_code == 404
        (library / "Back/Again").mkdir(parents=True)
        (library / "Back/Again/returned.opus").write_bytes(kept)
        status = rescan(server)
        back = clips(server, pg)["Back/Again/returned.opus"]
        assert (back["id"], back["play_count"], back["missing_since"]) == (clip_id, 1, None)
        assert (status["moved"], status["added"]) == (1, 0)
        assert server.get(f"/play/{clip_id}/stream").content == kept
        (library / "Back/Again/returned.opus").unlink()
        assert_scan_command(server, pg, library, clip_id)


def test_a_rescan_sees_a_folder_cover_replaced_added_or_removed(tmp_path, library, pg):
    album = library / "Artist A/Album 1"
    blue = (album / "Cover.JPG").read_bytes()
    # A tagger embedded the folder's very picture in one track: that track keeps its own.
    tag_fully(album / "01 First.mp3", "mp3", picture=Image(blue, "image/jpeg"))
    with serve(tmp_path, library, pg, MOSIC_LIBRARY_WATCH="false") as server:
        scanned(server)
        assert covers(server, pg, "Artist A/Album 1") == {"01 First.mp3": blue,
                                                          "02 Second.OGG": blue}  # fmt: skip
        red = image(tmp_path / "red", "red").data
        (album / "Cover.JPG").write_bytes(red)  # in place: the directory's mtime stays
        status = rescan(server)
        assert (status["added"], status["missing"]) == (0, 0)
        assert covers(server, pg, "Artist A/Album 1") == {"01 First.mp3": blue,
                                                          "02 Second.OGG": red}  # fmt: skip
        (album / "Cover.JPG").unlink()
        green = image(library / "Artist A/Album 2/folder", "green", "png").data
        rescan(server)
        assert covers(server, pg, "Artist A/Album 1") == {"01 First.mp3": blue,
                                                          "02 Second.OGG": None}  # fmt: skip
        assert covers(server, pg, "Artist A/Album 2") == {"Third.opus": green,
                                                          "Fourth.Flac": green}  # fmt: skip


def covers(server, pg, directory: str) -> dict[str, bytes | None]:
    """The cover each clip of ``directory`` serves (None for a 404), by file name."""
    found = {}
    for path, clip in clips(server, pg).items():
        if path.rsplit("/", 1)[0] == directory:
            response = server.get(f"/play/{clip['id']}/cover")
            assert response.status_code in (200, 404), response.text
            found[path.rsplit("/", 1)[1]] = response.content if response.is_success else None
    return found


def assert_scan_command(server, pg, library: Path, clip_id: str) -> None:
    """``mosic scan --purge-missing``: a line per change, the summary, the clip removed."""
    env = clean_env(MOSIC_DATA_DIR=str(server.data_dir), MOSIC_LIBRARY_DIRS=str(library),
                    MOSIC_API_KEY=server.api_key, **db_env(pg))  # fmt: skip
    done = subprocess.run([sys.executable, "-m", "mosic", "scan", "--purge-missing"],
                          env=env, cwd=server.data_dir, capture_output=True, text=True,
                          timeout=120, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "missing Music/Back/Again/returned.opus" in done.stdout
    assert done.stdout.strip().endswith("0 added, 0 updated, 0 moved, 1 missing, 6 unchanged, "
                                        "1 failed")  # fmt: skip
    rows = query(server.data_dir, pg, "SELECT id FROM clip WHERE source = 'library'")
    assert clip_id not in {str(row[0]) for row in rows} and len(rows) == len(EXPECTED) - 1


# -- one scanner --------------------------------------------------------------------------------


HOLD_LEASE = (
    "UPDATE library_scan SET scanning = TRUE, owner = 'elsewhere', "
    "lease_until = '2999-01-01 00:00:00'"
)


def test_two_servers_on_one_postgresql_scan_one_at_a_time(tmp_path, library, fresh_postgres_db):
    """Both start while another process holds the lease: neither scans. Asked at once, one
    scans and the other is refused; every file is added once."""
    pg = fresh_postgres_db
    migrate(Settings(data_dir=tmp_path, postgres=pg), then=HOLD_LEASE)
    with (
        serve(tmp_path / "a", library, pg, MOSIC_LIBRARY_WATCH="false") as first,
        serve(tmp_path / "b", library, pg, MOSIC_LIBRARY_WATCH="false") as second,
    ):
        servers = (first, second)
        for server in servers:
            wait_for("the server to skip its scan at start",
                     lambda s=server: "library scan at start skipped" in s.output(),
                     SCAN_WAIT_S, server.log)  # fmt: skip
        for server in servers:
            assert post_scan(server) == 409
        query(first.data_dir, pg, "UPDATE library_scan SET scanning = FALSE, lease_until = "
              "NULL RETURNING id")  # fmt: skip
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            answers = sorted(pool.map(post_scan, servers))
        assert answers in ([202, 409], [202, 202])  # two only if one ended first
        scanned(first)
        added = [int(n) for s in servers for n in re.findall(r"(\d+) added", s.output())]
        assert sum(added) == len(EXPECTED)
        rows = query(first.data_dir, pg, "SELECT count(*) FROM clip")
        assert rows[0][0] == len(EXPECTED)


def post_scan(server) -> int:
    return httpx.post(server.base + "/library/scan", headers=server.headers, timeout=10).status_code


# -- settings -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dirs", "named"),
    [("/srv/a/Music:/mnt/b/Music", "/srv/a/Music and /mnt/b/Music"), ("/srv/Uploads", "Uploads")],
)
def test_music_folders_of_one_name_are_refused_naming_them(monkeypatch, dirs, named):
    monkeypatch.setenv("MOSIC_LIBRARY_DIRS", dirs)
    with pytest.raises(SettingsError) as refused:
        load_settings(env_file=None)
    assert str(refused.value).startswith("MOSIC_LIBRARY_DIRS: ") and named in str(refused.value)
    assert "\n" not in str(refused.value)


def test_the_command_refuses_them_in_one_line(tmp_path):
    env = clean_env(MOSIC_DATA_DIR=str(tmp_path), MOSIC_LIBRARY_DIRS="/x/Music:/y/Music")
    done = subprocess.run([sys.executable, "-m", "mosic", "scan"], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "mosic: invalid setting: MOSIC_LIBRARY_DIRS: /x/Music and /y/Music are both named "
        "'Music'; a music folder is known by its last path component, so mount one elsewhere"
    )


def test_folders_are_named_by_their_last_component_in_order():
    settings = Settings(library_dirs=(Path("/srv/b/Jazz"), Path("/srv/a/Rock/")))
    assert settings.music_folders == {"Jazz": Path("/srv/b/Jazz"), "Rock": Path("/srv/a/Rock")}


# -- the processes that read files ----------------------------------------------------------


READ_IN_A_POOL = """
import asyncio, os
from mosic.media.readers import ReaderPool

async def main():
    pool = ReaderPool(1)
    try:
        print(await pool.run(os.getpid) != os.getpid())
    finally:
        await pool.close()

asyncio.run(main())
"""


def test_files_are_read_in_other_processes_even_under_a_deep_tmpdir(tmp_path):
    """The fork server's socket lives under TMPDIR and a Unix socket's path has a limit of
    107 bytes: under a deeper TMPDIR the readers are spawned instead, and a scan still reads
    every file (it failed them all, as "AF_UNIX path too long")."""
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    run = subprocess.run([sys.executable, "-c", READ_IN_A_POOL], capture_output=True, text=True,
                         timeout=60, env=clean_env(TMPDIR=str(deep)))  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["True"]
    assert "spawning them instead" in run.stderr


async def test_stored_media_is_read_by_a_process_below_the_servers_priority(tmp_path):
    """An upload's loudness is measured from its stored file after its 201: in a worker
    process niced below the server, so that decoding never takes the server's GIL, and the
    requests sharing its core go first."""
    store = LocalStore(tmp_path / "media")
    store.prepare()
    name = f"{'ab' * 32}.bin"
    await store.put(name, b"RIFF and more", content_type="application/octet-stream")
    try:
        pid, nice, head = await store.inspect(name, who_reads)
        with pytest.raises(MediaMissing):
            await store.inspect(f"{'cd' * 32}.bin", who_reads)
    finally:
        await store.close()
    assert head == b"RIFF" and pid != os.getpid()
    assert nice == min(19, os.nice(0) + BACKGROUND_NICE) > os.nice(0)


async def test_a_reader_process_that_dies_is_replaced(tmp_path):
    """A worker killed mid-read (the kernel's OOM killer, a decoder's crash) fails that read
    alone: the next one runs in a new worker, so uploads are measured again."""
    store = LocalStore(tmp_path / "media")
    store.prepare()
    name = f"{'ef' * 32}.bin"
    await store.put(name, b"RIFF and more", content_type="application/octet-stream")
    try:
        with pytest.raises(BrokenProcessPool):
            await store.inspect(name, dies)
        _, _, head = await store.inspect(name, who_reads)
    finally:
        await store.close()
    assert head == b"RIFF"
