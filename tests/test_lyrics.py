"""Lyrics: a listener asks for a song's words, synced or not, through REST
(``/play/{id}/lyrics``) and Subsonic (``getLyricsBySongId``, ``getLyrics``).

Real files tagged with mutagen where each format keeps lyrics (ID3 USLT and SYLT, Vorbis
LYRICS and UNSYNCEDLYRICS, MP4 ©lyr), uploaded in process on SQLite, PostgreSQL and S3; a
library with an ``.lrc`` sidecar, served by a real ``mosic serve`` on SQLite and PostgreSQL and
read by two Subsonic clients nobody here wrote (py-opensonic, the npm subsonic-api); clips of
older releases backfilled by ``mosic migrate`` and by the next scan; and the LRC parser on
its own, junk included.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
from urllib.parse import urlsplit

import pytest
from libopensonic import AsyncConnection, errors

from mosic.core import lrc
from mosic.core.clip_rows import MEDIA_VERSION
from mosic.core.lyrics import decode
from mosic.persistence.database import make_sync_database
from mosic.settings import Settings
from tests.support.audio import make_clip
from tests.support.database import mosic_env
from tests.support.subsonic import validate_xml
from tests.support.tagging import tag_lyrics
from tests.test_folders import pg, query, rescan, scanned, serve  # noqa: F401 - pg: a fixture
from tests.test_subsonic import Sub
from tests.test_subsonic_clients import JS_CLIENT, NODE

NOT_FOUND = 70
LRC = "[ti:Song]\n[ar:Someone]\n[la:de]\n[offset:+500]\n[00:01.00]Eins\n[00:02.25][00:04.50]Zwei\n"


# -- the LRC parser ----------------------------------------------------------------------------


def starts(lyrics: lrc.Lyrics) -> list[tuple[int | None, str]]:
    return [(line.start_ms, line.text) for line in lyrics.lines]


def test_every_lrc_time_form_is_read_and_lines_are_ordered_by_time():
    text = "[01:02]a\n[00:03.5]b\n[00:04.25]c\n[00:05.125]d\n[00:06:50]e\n[00:00.00][00:09.99]f"
    lyrics = lrc.parse(text)
    assert lyrics.synced
    assert starts(lyrics) == [(0, "f"), (3500, "b"), (4250, "c"), (5125, "d"), (6500, "e"),
                              (9990, "f"), (62000, "a")]  # fmt: skip


def test_lrc_headers_give_language_and_offset_and_are_no_lines():
    lyrics = lrc.parse(LRC, lang="eng")
    assert (lyrics.lang, lyrics.offset_ms) == ("de", 500)  # the text's [la:] wins over the tag's
    assert starts(lyrics) == [(1000, "Eins"), (2250, "Zwei"), (4500, "Zwei")]
    assert [lyrics.shown_at(line) for line in lyrics.lines] == [500, 1750, 4000]
    later = lrc.parse("[offset:-250]\n[00:00.10]x")
    assert later.offset_ms == -250 and later.shown_at(later.lines[0]) == 350
    sooner = lrc.parse("[offset:400]\n[00:00.10]x")
    assert sooner.shown_at(sooner.lines[0]) == 0  # never before the start
    assert lrc.parse("[00:01.00]x", lang="XXX").lang is None  # "no language"


def test_plain_text_is_unsynced_and_keeps_its_verses():
    lyrics = lrc.parse("\n\nVerse one\r\n\r\n[Chorus]\n\tla la\n\n")
    assert not lyrics.synced
    assert starts(lyrics) == [(None, "Verse one"), (None, ""), (None, "[Chorus]"),
                              (None, "la la")]  # fmt: skip
    assert lyrics.text == "Verse one\n\n[Chorus]\nla la"


def test_word_times_junk_and_bad_times_are_dropped_from_synced_text():
    text = "[ar:x]\n[00:01.00]<00:01.00>Hel<00:01.50>lo\nno time here\n[00:75.00]bad\n[00:02]\n"
    assert starts(lrc.parse(text)) == [(1000, "Hello"), (2000, "")]
    assert lrc.parse("[offset:99999999999999999]\n[00:01]x").offset_ms == 0
    assert lrc.parse("[offset:soon]\n[00:01]x").offset_ms == 0
    assert lrc.parse("") is None and lrc.parse("\n \n") is None and lrc.parse("[ar:only]") is None


def test_sylt_syllables_become_lines():
    karaoke = [("Hel", 1000), ("lo", 1200), ("\nWorld", 3000), (" again", 3500)]
    assert starts(lrc.from_timed(karaoke)) == [(1000, "Hello"), (3000, "World again")]
    plain = [("two", 2000), ("one", 1000)]
    assert starts(lrc.from_timed(plain, "eng")) == [(1000, "one"), (2000, "two")]
    assert lrc.from_timed([]) is None


def test_junk_never_breaks_the_parser():
    rng = random.Random(21)
    alphabet = "[]:.0123456789<>\n\r\t\x00\x1b\ud800 abc+-offsetla#"
    for _ in range(2000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 80)))
        lyrics = lrc.parse(text)
        if lyrics is None:
            continue
        assert abs(lyrics.offset_ms) <= lrc.OFFSET_MAX_MS
        for line in lyrics.lines:
            assert line.start_ms is None or line.start_ms >= 0
            assert not any(ch in line.text for ch in "\x00\x1b\ud800\n\r")
    huge = lrc.parse("[00:01]x\n" * (lrc.LINES_MAX + 50))
    assert len(huge.lines) == lrc.LINES_MAX


def test_sidecar_bytes_decode_from_any_common_encoding():
    assert decode("[00:01]Grüße".encode()) == "[00:01]Grüße"
    assert decode("\ufeff[00:01]é".encode()) == "[00:01]é"
    assert decode("[00:01]é".encode("utf-16")) == "[00:01]é"
    assert decode("[00:01]café".encode("cp1252")) == "[00:01]café"


# -- from tags, through REST and Subsonic ------------------------------------------------------

# (format, how it is tagged, what /play/{id}/lyrics answers)
TAGGED = {
    "ID3 USLT": ("mp3", {"text": "First line\nSecond line", "lang": "fra"},
                 {"synced": False, "lang": "fra",
                  "lines": [{"start_ms": None, "text": "First line"},
                            {"start_ms": None, "text": "Second line"}]}),
    "ID3 SYLT": ("mp3", {"timed": [("One", 500), ("Two", 1500)]},
                 {"synced": True, "lang": "eng",
                  "lines": [{"start_ms": 500, "text": "One"}, {"start_ms": 1500, "text": "Two"}]}),
    "FLAC LYRICS as LRC": ("flac", {"text": LRC},
                           {"synced": True, "lang": "de",
                            "lines": [{"start_ms": 500, "text": "Eins"},
                                      {"start_ms": 1750, "text": "Zwei"},
                                      {"start_ms": 4000, "text": "Zwei"}]}),
    "Opus UNSYNCEDLYRICS": ("opus", {"text": "Just words", "key": "UNSYNCEDLYRICS"},
                            {"synced": False, "lang": None,
                             "lines": [{"start_ms": None, "text": "Just words"}]}),
    "MP4 ©lyr": ("m4a", {"text": "[00:00.50]Timed in MP4"},
                 {"synced": True, "lang": None,
                  "lines": [{"start_ms": 500, "text": "Timed in MP4"}]}),
}  # fmt: skip


async def upload(api, path, **form) -> dict:
    result = await api.upload(path.read_bytes(), path.name, **form)
    assert result.status_code == 201, result.text
    return result.json


def tagged(tmp_path, name: str, freq: int, **tags):
    fmt, how, _ = TAGGED[name]
    path = make_clip(tmp_path / f"{freq}.{fmt}", fmt, freq=freq, **tags)
    return tag_lyrics(path, fmt, **how)


@pytest.mark.parametrize("kind", list(TAGGED))
async def test_lyrics_from_each_kind_of_tag(api, tmp_path, kind):
    clip = await upload(api, tagged(tmp_path, kind, 500, title="Sung", artist="Singer"))
    answer = await api.get(f"/play/{clip['id']}/lyrics")
    assert answer.status_code == 200, answer.text
    assert answer.json == TAGGED[kind][2]
    body = await Sub(api).ok("getLyricsBySongId", id=clip["id"])
    [entry] = body["lyricsList"]["structuredLyrics"]
    expected = TAGGED[kind][2]
    assert (entry["synced"], entry["lang"]) == (expected["synced"], expected["lang"] or "xxx")
    assert (entry["displayArtist"], entry["displayTitle"]) == ("Singer", "Sung")
    assert [line["value"] for line in entry["line"]] == [x["text"] for x in expected["lines"]]
    if expected["synced"]:  # starts as written, the offset beside them
        shifted = [line["start"] - entry["offset"] for line in entry["line"]]
        assert [max(0, s) for s in shifted] == [x["start_ms"] for x in expected["lines"]]
    else:
        assert not any("start" in line for line in entry["line"])


async def test_a_song_without_lyrics_and_one_that_is_no_song(api, sub_api, clip_file):
    plain = await upload(api, clip_file("mp3", freq=610, title="Hum"))
    missing = await api.get(f"/play/{plain['id']}/lyrics")
    assert missing.status_code == 404 and missing.json["title"] == "No lyrics"
    body = await sub_api.ok("getLyricsBySongId", id=plain["id"])
    assert body["lyricsList"] == {"structuredLyrics": []}
    root = validate_xml((await sub_api.call("getLyricsBySongId", id=plain["id"])).content)
    assert [child.tag.split("}")[1] for child in root] == ["lyricsList"]
    external = (await api.add_external(title="Far")).json
    assert (await api.get(f"/play/{external['id']}/lyrics")).status_code == 404
    for unknown in (external["id"], "0" * 32, "not-an-id"):
        assert await sub_api.error("getLyricsBySongId", id=unknown) == NOT_FOUND
    assert await sub_api.error("getLyricsBySongId") == 10
    gone = (await api.get("/play/00000000-0000-0000-0000-000000000000/lyrics")).json
    assert gone["description"] == "no clip has this id"


@pytest.fixture
def sub_api(api) -> Sub:
    return Sub(api)


async def test_get_lyrics_finds_the_song_by_artist_and_title(api, sub_api, tmp_path, clip_file):
    # The same artist and title twice: the first has no lyrics, so the second is the answer.
    await upload(api, clip_file("mp3", freq=620, title="Échos", artist="Ärzte"))
    sung = await upload(api, tagged(tmp_path, "ID3 USLT", 630, title="Échos", artist="Ärzte"))
    body = await sub_api.ok("getLyrics", artist="ärzte", title=" ÉCHOS ")
    assert body["lyrics"] == {"artist": "Ärzte", "title": "Échos",
                              "value": "First line\nSecond line"}  # fmt: skip
    for asked in ({"artist": "Ärzte", "title": "Other"}, {"artist": "Else", "title": "Échos"},
                  {"title": "Échos"}, {}):  # fmt: skip
        assert (await sub_api.ok("getLyrics", **asked))["lyrics"] == {"value": ""}
    root = validate_xml((await sub_api.call("getLyrics", artist="Ärzte", title="Échos")).content)
    assert root[0].text == "First line\nSecond line" and root[0].get("artist") == "Ärzte"
    # Deleted: its lyrics go with it.
    assert (await api.delete(f"/play/{sung['id']}")).status_code == 204
    assert (await sub_api.ok("getLyrics", artist="Ärzte", title="Échos"))["lyrics"]["value"] == ""
    assert lyrics_rows(api.settings, sung["id"]) == 0


async def test_a_listener_finds_no_lyrics_of_songs_it_does_not_see(api, sub_api, tmp_path):
    clip = await upload(api, tagged(tmp_path, "ID3 SYLT", 640, title="Hidden", artist="Shy"))
    made = await api.post("/users", json={"name": "nobody", "music_folders": []})
    assert made.status_code == 201, made.text
    key = made.json["key"]["key"]
    assert (await api.get(f"/play/{clip['id']}/lyrics", key=key)).status_code == 404
    assert (await api.get(f"/play/{clip['id']}/lyrics")).status_code == 200  # the admin sees it
    auth = {"apiKey": key}
    assert await sub_api.error("getLyricsBySongId", id=clip["id"], auth=auth) == NOT_FOUND
    found = await sub_api.ok("getLyrics", artist="Shy", title="Hidden", auth=auth)
    assert found["lyrics"] == {"value": ""}
    assert (await api.get(f"/play/{clip['id']}/lyrics", key=None)).status_code == 401


def lyrics_rows(settings, clip_id: str | None = None) -> int:
    db = make_sync_database(settings)
    try:
        sql = "SELECT clip_id FROM clip_lyrics"
        ids = [str(row[0]).replace("-", "") for row in db.execute_sql(sql).fetchall()]
    finally:
        db.close()
    return len(ids) if clip_id is None else ids.count(clip_id.replace("-", ""))


def run_sql(settings, *statements: str) -> None:
    db = make_sync_database(settings)
    try:
        for statement in statements:
            db.execute_sql(statement)
    finally:
        db.close()


async def test_uploads_of_an_older_release_get_their_lyrics_at_migrate(api, tmp_path):
    clip = await upload(api, tagged(tmp_path, "FLAC LYRICS as LRC", 650, title="Old"))
    # As the previous release left it: read under version 1, no lyrics kept.
    # (Its genre marks what a full re-read would write again: the file has none.)
    run_sql(api.settings, "DELETE FROM clip_lyrics",
            "UPDATE clip SET media_version = 1, genre = 'Marked'")  # fmt: skip
    assert (await api.get(f"/play/{clip['id']}/lyrics")).status_code == 404
    run = subprocess.run([sys.executable, "-m", "mosic", "migrate"], capture_output=True,
                         text=True, env={**mosic_env(api.settings), "PATH": "/usr/bin:/bin"},
                         timeout=120, check=False)  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "read the tags of 1 existing clip(s)" in run.stderr
    answer = await api.get(f"/play/{clip['id']}/lyrics")
    assert answer.status_code == 200 and answer.json == TAGGED["FLAC LYRICS as LRC"][2]
    # Only the lyrics were read: what version 1 read already is as it was.
    assert (await api.get(f"/play/{clip['id']}")).json["genre"] == "Marked"
    again = subprocess.run([sys.executable, "-m", "mosic", "migrate"], capture_output=True,
                           text=True, env={**mosic_env(api.settings), "PATH": "/usr/bin:/bin"},
                           timeout=120, check=False)  # fmt: skip
    assert again.returncode == 0 and "existing clip" not in again.stderr
    assert lyrics_rows(api.settings, clip["id"]) == 1


# -- a library's .lrc sidecars, a real server, real clients ------------------------------------

NODE_TIMEOUT_S = 60
SIDECAR = "[la:en]\n[00:00.20]From the sidecar\n[00:00.80]Second\n"


@pytest.fixture
def music(tmp_path):
    root = tmp_path / "library" / "Music"
    make_clip(root / "Band/Album/01 Side.mp3", "mp3", freq=710, title="Side", artist="Band")
    (root / "Band/Album/01 Side.lrc").write_text(SIDECAR, encoding="utf-8")
    flac = make_clip(root / "Band/Album/02 Tag.flac", "flac", freq=720, title="Tag", artist="Band")
    tag_lyrics(flac, "flac", text=LRC)
    make_clip(root / "Band/Album/03 Bare.mp3", "mp3", freq=730, title="Bare", artist="Band")
    return root


def by_title(server) -> dict[str, str]:
    listed = server.get("/play").json()
    return {clip["title"]: clip["id"] for clip in listed}


def run_node(server, songs: list[str], artist: str, title: str) -> dict:
    result = subprocess.run(
        [NODE, str(JS_CLIENT / "lyrics.mjs")], capture_output=True, text=True,
        timeout=NODE_TIMEOUT_S, check=False,
        env={"MOSIC_URL": server.base, "MOSIC_KEY": server.api_key, "PATH": "/usr/bin:/bin",
             "MOSIC_SONGS": json.dumps(songs), "MOSIC_ARTIST": artist, "MOSIC_TITLE": title},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


async def test_a_library_sidecar_and_tags_through_real_clients(tmp_path, music, pg):  # noqa: F811
    with serve(tmp_path, music, pg, "--workers", "2") as server:
        scanned(server)
        sylt = tag_lyrics(make_clip(tmp_path / "up.mp3", "mp3", freq=740, title="Up",
                                    artist="Band"), "mp3", timed=[("Sent", 300)])  # fmt: skip
        server.upload(sylt, "audio/mpeg")
        ids = by_title(server)
        side = server.get(f"/play/{ids['Side']}/lyrics")
        assert side.status_code == 200, side.text
        assert side.json() == {
            "synced": True,
            "lang": "en",
            "lines": [
                {"start_ms": 200, "text": "From the sidecar"},
                {"start_ms": 800, "text": "Second"},
            ],
        }
        assert server.get(f"/play/{ids['Bare']}/lyrics").status_code == 404
        await assert_py_opensonic(server, ids)
        seen = run_node(server, [ids["Tag"], ids["Bare"], "nope"], "BAND", "side")
        assert ["songLyrics", [1]] in seen["extensions"]
        [tag] = seen["bySong"][ids["Tag"]]
        assert (tag["lang"], tag["offset"], tag["synced"]) == ("de", 500, True)
        assert [(x["start"], x["value"]) for x in tag["line"]] == [
            (1000, "Eins"),
            (2250, "Zwei"),
            (4500, "Zwei"),
        ]
        assert seen["bySong"][ids["Bare"]] == [] and seen["bySong"]["nope"] == NOT_FOUND
        assert seen["byName"] == {"artist": "Band", "title": "Side",
                                  "value": "From the sidecar\nSecond"}  # fmt: skip
        # Before any file changes: a change starts a scan of its folder, which would read the
        # clips again at its own time, racing the backfill's rewind of their read version.
        assert_the_next_scan_backfills(server, pg, ids)
        assert_sidecar_is_read_when_asked(server, music, ids)


async def assert_py_opensonic(server, ids: dict[str, str]) -> None:
    url = urlsplit(server.base)
    conn = AsyncConnection(f"{url.scheme}://{url.hostname}", port=url.port,
                           api_key=server.api_key)  # fmt: skip
    try:
        [side] = await conn.get_lyrics_by_song_id(ids["Side"])
        assert (side.lang, side.synced, side.display_title) == ("en", True, "Side")
        assert [(x.start, x.value) for x in side.line] == [(200, "From the sidecar"),
                                                           (800, "Second")]  # fmt: skip
        [up] = await conn.get_lyrics_by_song_id(ids["Up"])
        assert (up.lang, [(x.start, x.value) for x in up.line]) == ("eng", [(300, "Sent")])
        assert await conn.get_lyrics_by_song_id(ids["Bare"]) == []
        found = await conn.get_lyrics(artist="band", title="TAG")
        assert (found.artist, found.title, found.value) == ("Band", "Tag", "Eins\nZwei\nZwei")
        assert (await conn.get_lyrics(artist="band", title="bare")).value == ""
        with pytest.raises(errors.SonicError):
            await conn.get_lyrics_by_song_id("0" * 32)
    finally:
        await conn.cleanup()


def assert_sidecar_is_read_when_asked(server, music, ids) -> None:
    """An edited .lrc is what the next ask sees, with no scan (editing it changes nothing
    the scan compares); a removed one is simply no lyrics."""
    sidecar = music / "Band/Album/01 Side.lrc"
    sidecar.write_text("Now plain words\n", encoding="utf-8")
    changed = server.get(f"/play/{ids['Side']}/lyrics").json()
    assert changed == {"synced": False, "lang": None,
                       "lines": [{"start_ms": None, "text": "Now plain words"}]}  # fmt: skip
    sidecar.unlink()
    assert server.get(f"/play/{ids['Side']}/lyrics").status_code == 404


def execute(data_dir, postgres, statement: str) -> None:
    db = make_sync_database(Settings(data_dir=data_dir, postgres=postgres))
    try:
        db.execute_sql(statement)
    finally:
        db.close()


def assert_the_next_scan_backfills(server, postgres, ids) -> None:
    """A library clip read by an older release (no lyrics kept) is read again by the next
    scan, though its file did not change."""
    for statement in ("DELETE FROM clip_lyrics",
                      "UPDATE clip SET media_version = 1 WHERE source = 'library'"):  # fmt: skip
        execute(server.data_dir, postgres, statement)
    assert server.get(f"/play/{ids['Tag']}/lyrics").status_code == 404
    status = rescan(server)
    assert status["updated"] == 0 and status["failed"] == 0
    answer = server.get(f"/play/{ids['Tag']}/lyrics")
    assert answer.status_code == 200 and answer.json()["lines"][0] == {
        "start_ms": 500,
        "text": "Eins",
    }
    versions = query(server.data_dir, postgres, "SELECT DISTINCT media_version FROM clip")
    assert versions == [(MEDIA_VERSION,)]
