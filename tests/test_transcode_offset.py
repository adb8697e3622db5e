"""Seeking in a transcode: ``offset`` on the REST stream and ``timeOffset`` on Subsonic's
``stream`` (OpenSubsonic ``transcodeOffset``) start the transcode that many seconds into the
song. Real files read back by ffprobe; what counts (nothing: a seek); what is cached (never
the offset one); bad offsets."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest

from tests.conftest import API_KEY
from tests.test_listen_transcoded import cached_files, plays, probe, stream, upload

SONG_SECONDS = 60.0
OFFSET = 30
# ffprobe's duration of an encoded file: the encoder's padding, a frame's rounding.
DURATION_TOLERANCE = 0.5


@pytest.fixture
async def song(api, clip_file):
    return await upload(api, clip_file("flac", seconds=SONG_SECONDS, freq=330))


async def subsonic(api, method: str, **params):
    query = urlencode({"apiKey": API_KEY, "f": "json", "c": "seeker", **params})
    return await api.get(f"/rest/{method}", key=None, query_string=query)


def lasts(data: bytes, tmp_path, seconds: float, codec: str) -> None:
    found = probe(data, tmp_path)
    assert found["codec"] == codec
    assert abs(found["seconds"] - seconds) < DURATION_TOLERANCE, found


@pytest.mark.parametrize("fmt", ["opus", "mp3"])
async def test_a_rest_transcode_from_30_s_lasts_the_other_30_s(api, song, tmp_path, fmt):
    resp = await api.get(stream(song), query_string=f"format={fmt}&offset={OFFSET}")
    assert resp.status_code == 200, resp.text
    assert resp.headers["Accept-Ranges"] == "none"
    assert "Content-Length" not in resp.headers and "ETag" not in resp.headers
    lasts(resp.content, tmp_path, SONG_SECONDS - OFFSET, fmt)
    whole = await api.get(stream(song), query_string=f"format={fmt}")
    lasts(whole.content, tmp_path, SONG_SECONDS, fmt)


@pytest.mark.parametrize(("fmt", "codec"), [("opus", "opus"), ("mp3", "mp3"), (None, "mp3")])
async def test_a_subsonic_stream_with_time_offset_starts_there(api, song, tmp_path, fmt, codec):
    asked = {"format": fmt} if fmt else {}  # none: only a transcode can start later, so MP3
    resp = await subsonic(api, "stream", id=song["id"], timeOffset=str(OFFSET), **asked)
    assert resp.status_code == 200, resp.text
    lasts(resp.content, tmp_path, SONG_SECONDS - OFFSET, codec)
    # A seek within a listen: no new "now playing", no play, nothing cached.
    now = (await subsonic(api, "getNowPlaying")).json["subsonic-response"]["nowPlaying"]
    assert now.get("entry", []) == []
    assert await plays(api, song) == 0
    assert cached_files(api) == []


async def test_a_subsonic_raw_stream_is_the_original_whatever_the_offset(api, song, clip_file):
    resp = await subsonic(api, "stream", id=song["id"], format="raw", timeOffset="30")
    assert resp.status_code == 200
    assert resp.content == clip_file("flac", seconds=SONG_SECONDS, freq=330).read_bytes()


async def test_a_fractional_offset_is_honoured(api, song, tmp_path):
    resp = await api.get(stream(song), query_string="format=mp3&offset=45.5")
    lasts(resp.content, tmp_path, SONG_SECONDS - 45.5, "mp3")


async def test_a_rest_stream_from_an_offset_is_a_seek_and_counts_no_play(api, song):
    assert (await api.get(stream(song), query_string=f"format=mp3&offset={OFFSET}")).content
    assert await plays(api, song) == 0
    # The same stream from the start is a listen: the rule did not stop counting.
    assert (await api.get(stream(song), query_string="format=mp3&offset=0")).content
    assert await plays(api, song) == 1


async def test_an_offset_transcode_is_never_cached_nor_served_from_the_cache(api, song):
    q = "format=opus&bitrate=64"
    await api.get(stream(song), query_string=f"{q}&offset={OFFSET}")
    assert cached_files(api) == []  # not the rendition: nothing kept
    whole = await api.get(stream(song), query_string=q)
    [cached] = cached_files(api)
    assert cached.read_bytes() == whole.content

    seek = await api.get(stream(song), query_string=f"{q}&offset={OFFSET}")
    assert "Content-Length" not in seek.headers  # made, not the cached whole
    assert 0 < len(seek.content) < len(whole.content) * 0.6
    assert cached_files(api) == [cached]
    assert cached.read_bytes() == whole.content  # the whole rendition is untouched
    assert not list(api.settings.transcode_cache_dir.glob("*.part"))
    again = await api.get(stream(song), query_string=q)
    assert again.headers["Content-Length"] == str(len(whole.content))


@pytest.mark.parametrize("offset", ["60", "61.5", "3600"])
async def test_an_offset_at_or_past_the_end_is_an_empty_200(api, song, offset):
    """The song is over: players take an empty body as its end (a 416 would be an error)."""
    resp = await api.get(stream(song), query_string=f"format=opus&offset={offset}")
    assert resp.status_code == 200
    assert resp.content == b""
    assert await plays(api, song) == 0


async def test_a_head_with_an_offset_starts_nothing(api, song):
    resp = await api.head(stream(song), query_string=f"format=mp3&offset={OFFSET}")
    assert resp.status_code == 200
    assert resp.headers["Content-Type"] == "audio/mpeg"
    assert cached_files(api) == [] and await plays(api, song) == 0


async def test_the_signed_link_takes_an_offset(api, song, tmp_path):
    path, _, query = song["stream_url"].partition("?")
    resp = await api.get(path, query_string=f"{query}&format=mp3&offset={OFFSET}", key=None)
    assert resp.status_code == 200, resp.text
    lasts(resp.content, tmp_path, SONG_SECONDS - OFFSET, "mp3")


@pytest.mark.parametrize(
    ("query", "says"),
    [
        ("format=mp3&offset=-1", "between 0"),
        ("format=mp3&offset=abc", "number of seconds"),
        ("format=mp3&offset=nan", "between 0"),
        ("format=mp3&offset=inf", "between 0"),
        ("format=mp3&offset=1e9", "between 0"),
        ("offset=30", "needs 'format'"),
        ("format=raw&offset=30", "needs 'format'"),
    ],
)
async def test_a_bad_offset_is_400_saying_what_is_wrong(api, song, query, says):
    resp = await api.get(stream(song), query_string=query)
    assert resp.status_code == 400, resp.text
    assert "'offset'" in resp.json["description"] and says in resp.json["description"]
    assert await plays(api, song) == 0
    assert cached_files(api) == []


@pytest.mark.parametrize("offset", ["-5", "soon", "nan", "1e400"])
async def test_a_bad_time_offset_is_a_subsonic_error(api, song, offset):
    resp = await subsonic(api, "stream", id=song["id"], format="mp3", timeOffset=offset)
    assert resp.status_code == 200
    body = resp.json["subsonic-response"]
    assert body["status"] == "failed"
    assert body["error"]["code"] == 0
    assert "'timeOffset'" in body["error"]["message"]


async def test_transcode_offset_is_an_advertised_extension(api):
    resp = await subsonic(api, "getOpenSubsonicExtensions")
    extensions = resp.json["subsonic-response"]["openSubsonicExtensions"]
    assert {"name": "transcodeOffset", "versions": [1]} in extensions
