"""Listening to a transcoded stream (``?format=opus|mp3&bitrate=K``): real sources in every
format we store, the output read back by ffprobe, the rendition cache with ranges and LRU
eviction, the play-counting rule, and the bad requests. Slots and hang-ups over real HTTP are in
test_listen_transcoded_e2e."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import falcon.testing
import pytest

from mosic.app import create_app
from mosic.media.renditions import STALE_PART_S, RenditionCache
from tests.conftest import Api, media_dir
from tests.support.asgi import StaysConnected
from tests.support.audio import CONTENT_TYPES, FORMATS, undecodable_wav

FFPROBE = shutil.which("ffprobe")
assert FFPROBE, "install Debian's ffmpeg package (ffprobe)"
# Long enough for a container's overhead and an encoder's warm-up not to skew the bitrate.
SOURCE_SECONDS = 12.0
BITRATE_TOLERANCE = 0.10
CODECS = {"opus": "opus", "mp3": "mp3"}
MIME = {"opus": "audio/ogg", "mp3": "audio/mpeg"}


def probe(data: bytes, tmp_path: Path) -> dict:
    path = tmp_path / "probed"
    path.write_bytes(data)
    out = subprocess.run(
        [FFPROBE, "-v", "error", "-show_entries", "format=bit_rate,duration:stream=codec_name",
         "-of", "json", str(path)],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    found = json.loads(out)
    return {
        "codec": found["streams"][0]["codec_name"],
        "kbps": int(found["format"]["bit_rate"]) / 1000,
        "seconds": float(found["format"]["duration"]),
    }


async def upload(api, path: Path) -> dict:
    fmt = path.suffix.lstrip(".")
    resp = await api.upload(path.read_bytes(), filename=path.name, content_type=CONTENT_TYPES[fmt])
    assert resp.status_code == 201, resp.text
    return resp.json


def stream(clip: dict) -> str:
    return f"/play/{clip['id']}/stream"


async def plays(api, clip) -> int:
    return (await api.get(f"/play/{clip['id']}/stats")).json["play_count"]


def cached_files(api) -> list[Path]:
    return sorted(api.settings.transcode_cache_dir.iterdir())


@pytest.fixture
async def song(api, clip_file):
    return await upload(api, clip_file("flac", seconds=SOURCE_SECONDS, freq=330))


@pytest.mark.parametrize("source", FORMATS)
@pytest.mark.parametrize(("fmt", "kbps"), [("opus", None), ("mp3", None), ("opus", 32),
                                           ("mp3", 320)])  # fmt: skip
async def test_every_source_format_transcodes_to_the_asked_codec_and_bitrate(
    api, clip_file, tmp_path, source, fmt, kbps
):
    clip = await upload(api, clip_file(source, seconds=SOURCE_SECONDS, freq=440))
    query = f"format={fmt}" + (f"&bitrate={kbps}" if kbps else "")
    resp = await api.get(stream(clip), query_string=query)
    assert resp.status_code == 200, resp.text
    assert "Content-Length" not in resp.headers  # sent as it was made
    assert resp.headers["Accept-Ranges"] == "none"
    assert resp.headers["Content-Type"] == MIME[fmt]
    found = probe(resp.content, tmp_path)
    asked = kbps or {"opus": 96, "mp3": 128}[fmt]
    assert found["codec"] == CODECS[fmt]
    assert abs(found["kbps"] - asked) <= asked * BITRATE_TOLERANCE, found
    assert abs(found["seconds"] - SOURCE_SECONDS) < 0.2, found


async def test_a_finished_rendition_is_served_from_the_cache_with_ranges(api, song):
    first = await api.get(stream(song), query_string="format=opus&bitrate=64")
    assert first.status_code == 200 and "Content-Length" not in first.headers
    [cached] = cached_files(api)
    assert cached.read_bytes() == first.content

    again = await api.get(stream(song), query_string="format=opus&bitrate=64")
    assert again.status_code == 200
    assert again.content == first.content
    assert again.headers["Content-Length"] == str(len(first.content))
    assert again.headers["Accept-Ranges"] == "bytes"
    assert again.headers["Content-Type"] == "audio/ogg"
    etag = again.headers["ETag"]
    assert etag.endswith('-opus-64"') and etag != (await api.head(stream(song))).headers["ETag"]

    part = await api.get(
        stream(song), query_string="format=opus&bitrate=64", headers={"Range": "bytes=1000-4999"}
    )
    assert part.status_code == 206
    assert part.content == cached.read_bytes()[1000:5000]
    assert part.headers["Content-Range"] == f"bytes 1000-4999/{len(first.content)}"
    unchanged = await api.get(
        stream(song), query_string="format=opus&bitrate=64", headers={"If-None-Match": etag}
    )
    assert unchanged.status_code == 304
    assert cached_files(api) == [cached]  # nothing new was made
    assert not list(api.settings.transcode_cache_dir.glob("*.part"))


async def test_a_rendition_made_again_is_the_same_bytes_so_its_etag_holds(api, song):
    first = await api.get(stream(song), query_string="format=mp3")
    [cached] = cached_files(api)
    cached.unlink()  # as eviction would
    second = await api.get(stream(song), query_string="format=mp3")
    assert "Content-Length" not in second.headers  # made again, not served from a cache
    assert second.content == first.content


async def test_plays_count_by_the_same_rule_as_the_original(api, song):
    async def status(method: str = "GET", **headers) -> int:
        resp = await api.request(method, stream(song), query_string="format=mp3", headers=headers)
        return resp.status_code

    assert await status("HEAD") == 200
    assert cached_files(api) == []  # a HEAD starts no transcode
    assert await plays(api, song) == 0
    # Progressive: always from byte 0 to the end, so it counts, whatever Range was sent.
    assert await status(Range="bytes=0-1") == 200
    assert await plays(api, song) == 1
    # Cached: the original's rule, byte for byte.
    assert await status() == 200
    assert await plays(api, song) == 2
    assert await status(Range="bytes=0-1") == 206  # a probe
    assert await status(Range="bytes=5000-") == 206  # a seek
    assert await status("HEAD") == 200
    assert await plays(api, song) == 2
    assert await status(Range="bytes=0-") == 206
    assert await plays(api, song) == 3


async def test_the_signed_link_opens_renditions_too(api, song):
    path, _, query = song["stream_url"].partition("?")
    resp = await api.get(path, query_string=f"{query}&format=opus&bitrate=48", key=None)
    assert resp.status_code == 200, resp.text
    assert resp.headers["Content-Type"] == "audio/ogg"
    assert resp.content.startswith(b"OggS")


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ("format=flac", "'format'"),
        ("format=OPUS", "'format'"),
        ("format=opus&bitrate=31", "'bitrate'"),
        ("format=mp3&bitrate=321", "'bitrate'"),
        ("format=mp3&bitrate=high", "'bitrate'"),
        ("bitrate=128", "'bitrate'"),
        ("format=raw&bitrate=128", "'bitrate'"),
    ],
)
async def test_bad_format_or_bitrate_is_400_naming_it(api, song, query, named):
    resp = await api.get(stream(song), query_string=query)
    assert resp.status_code == 400
    assert named in resp.json["description"]
    assert await plays(api, song) == 0
    assert cached_files(api) == []


async def test_format_raw_is_the_original(api, song, clip_file):
    resp = await api.get(stream(song), query_string="format=raw")
    assert resp.status_code == 200
    assert resp.content == clip_file("flac", seconds=SOURCE_SECONDS, freq=330).read_bytes()


async def test_a_metadata_only_clip_has_nothing_to_transcode(api):
    clip = (await api.add_external()).json
    resp = await api.get(stream(clip), query_string="format=opus")
    assert resp.status_code == 404
    assert "metadata-only" in resp.json["description"]
    assert await plays(api, clip) == 0


async def test_audio_ffmpeg_cannot_decode_is_422_and_leaves_nothing(api):
    resp = await api.upload(undecodable_wav(), filename="odd.wav", content_type="audio/wav")
    assert resp.status_code == 201, resp.text
    clip = resp.json
    failed = await api.get(stream(clip), query_string="format=opus")
    assert failed.status_code == 422
    assert "original" in failed.json["description"]
    assert cached_files(api) == []
    assert await plays(api, clip) == 0
    assert (await api.get(stream(clip))).status_code == 200  # the original still plays


@pytest.fixture
async def small_cache_api(settings, request):
    """The app with a 1 MiB rendition cache."""
    settings = settings.replace(transcode_cache_mb=1)
    async with falcon.testing.ASGIConductor(StaysConnected(create_app(settings))) as conductor:
        s3 = request.getfixturevalue("s3_server") if settings.uses_s3 else None
        yield Api(conductor, settings, media_dir(settings, request), s3)


async def test_the_cache_keeps_under_its_limit_evicting_the_least_recently_used(
    small_cache_api, clip_file
):
    api = small_cache_api
    limit = api.settings.transcode_cache_bytes
    paths = [clip_file("wav", seconds=SOURCE_SECONDS, freq=f) for f in (200, 300, 400)]
    clips = [await upload(api, path) for path in paths]
    sources = [hashlib.sha256(path.read_bytes()).hexdigest() for path in paths]
    q = "format=mp3&bitrate=320"  # about 480 kB each: two fit in 1 MiB, three do not
    first, second, third = (stream(c) for c in clips)
    await api.get(first, query_string=q)
    await api.get(second, query_string=q)
    assert len(cached_files(api)) == 2
    assert (await api.get(first, query_string=q)).headers["Content-Length"]  # a hit: now newest
    await api.get(third, query_string=q)
    kept = cached_files(api)
    assert sum(p.stat().st_size for p in kept) <= limit
    assert {p.name.split("-")[0] for p in kept} == {sources[0], sources[2]}
    resp = await api.get(second, query_string=q)
    assert "Content-Length" not in resp.headers  # evicted, so made again


async def test_the_start_up_sweep_removes_only_stale_part_files(tmp_path):
    cache = RenditionCache(tmp_path, 1024)
    stale, fresh, done = (tmp_path / n for n in (".a-x.mp3.part", ".b-x.mp3.part", "x.mp3"))
    for path in (stale, fresh, done):
        path.write_bytes(b"x")
    now = stale.stat().st_mtime + STALE_PART_S + 1
    fresh_time = now - 10
    os.utime(fresh, (fresh_time, fresh_time))
    os.utime(done, (0, 0))
    assert await cache.sweep(now=now) == 1
    assert sorted(tmp_path.iterdir()) == sorted([fresh, done])
