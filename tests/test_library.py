"""A library with full tags, filters, covers and waveforms: what a player app reads."""

from __future__ import annotations

import shutil

import pytest

from tests.conftest import API_KEY
from tests.support.audio import FORMATS
from tests.support.database import migrate
from tests.support.tagging import tag_fully
from tests.test_operate import run_mosic

# (sample rate, channels) the fixture files are encoded with (tests/support/audio.py).
STREAMS = {
    "mp3": (22050, 1),
    "ogg": (22050, 1),
    "opus": (48000, 1),
    "flac": (22050, 1),
    "wav": (22050, 1),
    "m4a": (22050, 1),
}
FULL_TAGS = {
    "track": "3/12",
    "disc": "2/2",
    "date": "2021-05-04",
    # A control character, as broken taggers leave: cleaned away like every text from a file.
    "genre": "Free\x07 Jazz",
    "album_artist": "Various Artists",
}


def tagged(clip_file, tmp_path, fmt, name="tagged", **extra):
    source = clip_file(fmt, title=f"Tagged {fmt}", artist="Ann Artist", album="First Album")
    path = tmp_path / f"{name}.{fmt}"
    shutil.copy(source, path)
    return tag_fully(path, fmt, **{**FULL_TAGS, **extra})


@pytest.mark.parametrize("fmt", FORMATS)
async def test_every_format_gives_its_full_tags_and_stream_facts(api, clip_file, tmp_path, fmt):
    path = tagged(clip_file, tmp_path, fmt)
    resp = await api.upload(path.read_bytes(), path.name)
    assert resp.status_code == 201, resp.text
    clip = resp.json
    assert (clip["track"], clip["disc"], clip["year"]) == (3, 2, 2021)
    assert clip["genre"] == "Free Jazz"
    assert clip["album_artist"] == "Various Artists"
    assert (clip["sample_rate"], clip["channels"]) == STREAMS[fmt]
    # Encoded at 16-32 kbit/s; containers and headers add a little on a one-second file.
    assert 8 <= clip["bitrate"] <= 400, clip["bitrate"]
    if fmt == "wav":
        assert clip["bitrate"] == 353  # 22050 Hz x 16 bits x 1 channel
    assert (await api.get(f"/play/{clip['id']}")).json == clip


async def test_a_file_without_tags_has_null_tags_but_stream_facts(api, clip_file):
    resp = await api.upload(clip_file("flac").read_bytes(), "plain.flac")
    clip = resp.json
    assert [clip[k] for k in ("track", "disc", "year", "genre", "album_artist")] == [None] * 5
    assert (clip["sample_rate"], clip["channels"]) == (22050, 1)


@pytest.mark.parametrize(
    ("track", "date", "want"),
    [("7", "1999", (7, 1999)), ("x/12", "May 2021", (None, None)), ("0", "0000", (None, None))],
)
async def test_numbers_are_read_from_the_start_of_the_tag(api, clip_file, tmp_path, track, date,
                                                          want):  # fmt: skip
    path = tagged(clip_file, tmp_path, "ogg", track=track, date=date)
    clip = (await api.upload(path.read_bytes(), path.name)).json
    assert (clip["track"], clip["year"]) == want


async def _add(api, title, **tags):
    resp = await api.add_external(title=title, **tags)
    assert resp.status_code == 201, resp.text
    return resp.json["id"]


async def test_list_filters_by_genre_artist_album_and_year(api, clip_file, tmp_path):
    jazz = (await api.upload(tagged(clip_file, tmp_path, "mp3").read_bytes(), "a.mp3")).json
    rock_path = tagged(clip_file, tmp_path, "flac", name="rock", genre="Rock", date="1999")
    rock = (await api.upload(rock_path.read_bytes(), "b.flac")).json
    remote = await _add(api, "Remote", artist="ÉDITH Piaf", album="Live")

    async def ids(**query):
        resp = await api.get("/play", params=query)
        assert resp.status_code == 200, resp.text
        assert resp.headers["X-Total-Count"] == str(len(resp.json))
        return {clip["id"] for clip in resp.json}

    assert await ids(genre="free jazz") == {jazz["id"]}
    assert await ids(genre="ROCK") == {rock["id"]}
    assert await ids(genre="Jazz") == set()  # exact, not a substring
    assert await ids(year="1999") == {rock["id"]}
    assert await ids(year="2021", genre="Free Jazz") == {jazz["id"]}
    assert await ids(artist="ann artist") == {jazz["id"], rock["id"]}
    assert await ids(artist="édith piaf") == {remote}  # beyond ASCII, on both databases
    assert await ids(album="live", artist="Édith Piaf") == {remote}
    page = await api.get("/play", params={"artist": "Ann Artist", "limit": "1"})
    assert "artist=Ann+Artist" in page.headers["Link"]


@pytest.mark.parametrize(
    ("query", "name"),
    [
        ({"year": "nineteen"}, "year"),
        ({"year": "0"}, "year"),
        ({"year": "10000"}, "year"),
        ({"genre": "x" * 501}, "genre"),
        ({"artist": "a\x00b"}, "artist"),
        ({"album": "y" * 501}, "album"),
    ],
)
async def test_bad_filters_are_400_naming_the_parameter(api, query, name):
    resp = await api.get("/play", params=query)
    assert resp.status_code == 400
    assert f"'{name}'" in resp.json["description"]


def mosic_env(settings) -> dict[str, str]:
    """The environment that points a ``mosic`` command at the test's data and database."""
    env = {"MOSIC_DATA_DIR": str(settings.data_dir), "MOSIC_API_KEY": API_KEY}
    pg = settings.postgres
    if pg is not None:
        password = f":{pg.password}" if pg.password else ""
        env["MOSIC_DATABASE_URL_OVERRIDE"] = (
            f"postgresql://{pg.user}{password}@{pg.host}:{pg.port}/{pg.name}"
        )
    return env


TAG_COLUMNS = ("track", "disc", "year", "genre", "album_artist", "bitrate", "sample_rate",
               "channels")  # fmt: skip


async def test_migrate_reads_the_tags_of_clips_added_before_them(api, clip_file, tmp_path):
    good = (await api.upload(tagged(clip_file, tmp_path, "opus").read_bytes(), "a.opus")).json
    gone = (await api.upload(clip_file("wav", seconds=0.5).read_bytes(), "b.wav")).json
    remote = await _add(api, "Remote", artist="Zed")
    # As the rows were before migration 0002: no tags, not yet read.
    nulls = ", ".join(f"{c} = NULL" for c in (*TAG_COLUMNS, "artist_key", "media_version"))
    migrate(api.settings, then=f"UPDATE clip SET {nulls}")  # noqa: S608 - our own names
    assert (await api.get(f"/play/{good['id']}")).json["genre"] is None
    [wav] = [p for p in api.stored_files() if p.suffix == ".wav"]
    wav.unlink()  # an unreadable file: its tags stay null, and migrate still succeeds

    first = run_mosic("migrate", env=mosic_env(api.settings))
    assert first.returncode == 0, first.stderr
    assert "read the tags of 3 existing clip(s)" in first.stderr
    again = run_mosic("migrate", env=mosic_env(api.settings))
    assert again.returncode == 0, again.stderr
    assert "existing clip" not in again.stderr  # idempotent: nothing left to read

    read = (await api.get(f"/play/{good['id']}")).json
    assert {k: read[k] for k in TAG_COLUMNS} == {k: good[k] for k in TAG_COLUMNS}
    assert read["genre"] == "Free Jazz"
    assert (await api.get(f"/play/{gone['id']}")).json["sample_rate"] is None
    assert {c["id"] for c in (await api.get("/play", params={"artist": "zed"})).json} == {remote}
