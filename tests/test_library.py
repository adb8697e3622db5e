"""A library with full tags, filters, covers and waveforms: what a player app reads."""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import struct
import subprocess
import tracemalloc

import numpy as np
import pytest

from mosic.core.catalogue import INLINE_PEAKS_MAX_SECONDS
from mosic.core.waveform import base_samples_per_pixel, compute_peaks
from tests.support.analysis import once_drawn
from tests.support.audio import (
    FORMATS,
    make_half_silent_clip,
    make_tones,
    make_wav_of_size,
    wav_bytes,
)
from tests.support.database import migrate, mosic_env
from tests.support.tagging import image, tag_fully, tag_replay_gain
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
    # Read back the same, but for the signed links, which are made anew per answer (their
    # expiry moves on with the clock).
    again = (await api.get(f"/play/{clip['id']}")).json
    assert unsigned(again) == {**unsigned(clip), "replay_gain": again["replay_gain"]}
    # Its loudness was measured after the 201 (api.upload waited for it).
    assert clip["replay_gain"]["track_peak"] is None
    assert again["replay_gain"]["track_peak"] is not None
    assert again["stream_url"].split("?")[0] == clip["stream_url"].split("?")[0]


def unsigned(clip: dict) -> dict:
    return {k: v for k, v in clip.items() if k not in ("stream_url", "cover_url")}


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


TAG_COLUMNS = ("track", "disc", "year", "genre", "album_artist", "bitrate", "sample_rate",
               "channels")  # fmt: skip


async def test_migrate_reads_the_tags_of_clips_added_before_them(api, clip_file, tmp_path):
    picture = image(tmp_path / "old", color="maroon")
    good_path = tagged(clip_file, tmp_path, "opus", picture=picture)
    good = (await api.upload(good_path.read_bytes(), "a.opus")).json
    gone = (await api.upload(clip_file("wav", seconds=0.5).read_bytes(), "b.wav")).json
    remote = await _add(api, "Remote", artist="Zed")
    # As the rows were before migration 0002: no tags, not yet read.
    nulls = ", ".join(
        f"{c} = NULL"
        for c in (
            *TAG_COLUMNS,
            "artist_key",
            "cover_name",
            "cover_type",
            "waveform_name",
            "media_version",
        )
    )
    migrate(api.settings, then=f"UPDATE clip SET {nulls}")  # noqa: S608 - our own names
    assert (await api.get(f"/play/{good['id']}")).json["genre"] is None
    for old in api.derived_files():
        old.unlink()  # as it was: no cover or peaks stored
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
    assert read["waveform_url"] == f"/play/{good['id']}/waveform"
    assert (await api.get(read["waveform_url"])).json["length"] > 0
    path, query = split(read["cover_url"])
    assert (await api.get(path, query_string=query, key=None)).content == picture.data
    assert (await api.get(f"/play/{gone['id']}")).json["sample_rate"] is None
    assert {c["id"] for c in (await api.get("/play", params={"artist": "zed"})).json} == {remote}


# -- covers ----------------------------------------------------------------------------------


def split(url: str) -> tuple[str, str]:
    path, _, query = url.partition("?")
    return path, query


@pytest.mark.parametrize(("fmt", "kind"), [(f, "jpeg") for f in FORMATS] + [("flac", "png")])
async def test_the_embedded_picture_is_the_cover(api, clip_file, tmp_path, fmt, kind):
    picture = image(tmp_path / "cover", color="teal", fmt=kind)
    path = tagged(clip_file, tmp_path, fmt, picture=picture)
    clip = (await api.upload(path.read_bytes(), path.name)).json
    cover, query = split(clip["cover_url"])
    assert cover == f"/play/{clip['id']}/cover"

    by_link = await api.get(cover, query_string=query, key=None)  # as an <img src> would
    assert by_link.status_code == 200, by_link.text
    assert by_link.content == picture.data
    assert by_link.headers["Content-Type"] == picture.mime
    assert by_link.headers["Content-Length"] == str(len(picture.data))
    etag = by_link.headers["ETag"]
    assert etag == f'"{hashlib.sha256(picture.data).hexdigest()[:32]}"'
    by_key = await api.get(cover)
    assert by_key.content == picture.data and by_key.headers["ETag"] == etag
    again = await api.get(cover, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    assert (await api.get(cover, headers={"If-None-Match": '"other"'})).status_code == 200


async def test_a_signature_opens_one_resource_of_one_clip(api, clip_file, tmp_path):
    path = tagged(clip_file, tmp_path, "mp3", picture=image(tmp_path / "c"))
    clip = (await api.upload(path.read_bytes(), path.name)).json
    other = (await api.upload(tagged(clip_file, tmp_path, "ogg", picture=image(tmp_path / "d"))
                              .read_bytes(), "o.ogg")).json  # fmt: skip
    stream, stream_query = split(clip["stream_url"])
    cover, cover_query = split(clip["cover_url"])
    assert (await api.get(stream, query_string=stream_query, key=None)).status_code == 200
    assert (await api.get(cover, query_string=stream_query, key=None)).status_code == 403
    assert (await api.get(stream, query_string=cover_query, key=None)).status_code == 403
    other_query = split(other["cover_url"])[1]
    assert (await api.get(cover, query_string=other_query, key=None)).status_code == 403
    assert (await api.get(cover, key=None)).status_code == 401


async def test_no_picture_means_no_cover(api, clip_file):
    clip = (await api.upload(clip_file("m4a").read_bytes(), "plain.m4a")).json
    assert clip["cover_url"] is None
    resp = await api.get(f"/play/{clip['id']}/cover")
    assert resp.status_code == 404
    assert "picture" in resp.json["description"]
    remote = (await api.add_external()).json
    assert remote["cover_url"] is None
    assert (await api.get(f"/play/{remote['id']}/cover")).status_code == 404


async def test_a_cover_is_stored_once_and_goes_with_its_last_clip(api, clip_file, tmp_path):
    picture = image(tmp_path / "shared", color="navy")
    first = tagged(clip_file, tmp_path, "mp3", name="one", picture=picture)
    second = tagged(clip_file, tmp_path, "flac", name="two", picture=picture)
    ids = [(await api.upload(p.read_bytes(), p.name)).json["id"] for p in (first, second)]
    covers = [p for p in api.derived_files() if p.suffix == ".jpg"]
    assert len(covers) == 1 and covers[0].read_bytes() == picture.data
    assert (await api.delete(f"/play/{ids[0]}")).status_code == 204
    assert covers[0].exists()
    assert (await api.get(f"/play/{ids[1]}/cover")).content == picture.data
    assert (await api.delete(f"/play/{ids[1]}")).status_code == 204
    assert api.stored_files() == api.derived_files() == []


async def test_a_refused_upload_leaves_no_cover_behind(api, clip_file, tmp_path):
    path = tagged(clip_file, tmp_path, "mp3", picture=image(tmp_path / "c", color="olive"))
    assert (await api.upload(path.read_bytes(), path.name)).status_code == 201
    before = api.media_files()
    duplicate = await api.upload(path.read_bytes(), "again.mp3")
    assert duplicate.status_code == 409
    assert api.media_files() == before


# -- waveforms -------------------------------------------------------------------------------

# Reads what the server produced with the npm package players use (peaks.js is built on it).
WAVEFORM_DATA_READER = r"""
const fs = require("fs");
const WaveformData = require("waveform-data");
const [jsonPath, datPath] = process.argv.slice(2);
const describe = (w) => ({
  length: w.length, channels: w.channels, sample_rate: w.sample_rate, scale: w.scale,
  duration: w.duration, min: w.channel(0).min_array(), max: w.channel(0).max_array(),
  resampled: w.resample({ width: 10 }).length,
});
const dat = fs.readFileSync(datPath);
console.log(JSON.stringify({
  json: describe(WaveformData.create(JSON.parse(fs.readFileSync(jsonPath, "utf8")))),
  dat: describe(WaveformData.create(dat.buffer.slice(dat.byteOffset, dat.byteOffset + dat.length))),
}));
"""


@pytest.fixture(scope="session")
def waveform_data(tmp_path_factory):
    """The npm package ``waveform-data``, installed into a temporary folder."""
    folder = tmp_path_factory.mktemp("waveform-data")
    subprocess.run(
        ["npm", "install", "--silent", "--no-audit", "--no-fund", "waveform-data@4"],
        cwd=folder, check=True, timeout=300, capture_output=True,
    )  # fmt: skip
    (folder / "read.js").write_text(WAVEFORM_DATA_READER)
    return folder


def half_silent(tmp_path, fmt):
    return make_half_silent_clip(tmp_path / f"half.{fmt}", fmt, seconds=4.0)


async def waveform(api, clip_id, **query):
    resp = await api.get(f"/play/{clip_id}/waveform", params=query)
    assert resp.status_code == 200, resp.text
    return resp


@pytest.mark.parametrize("fmt", FORMATS)
async def test_the_waveform_shows_the_silent_first_half(api, tmp_path, fmt):
    path = half_silent(tmp_path, fmt)
    clip = (await api.upload(path.read_bytes(), path.name)).json
    assert clip["waveform_url"] == f"/play/{clip['id']}/waveform"
    resp = await waveform(api, clip["id"], points="200")
    assert resp.headers["Content-Type"].startswith("application/json")
    body = resp.json
    assert {k: body[k] for k in ("version", "channels", "bits")} == {
        "version": 2, "channels": 1, "bits": 8,
    }  # fmt: skip
    assert body["sample_rate"] == STREAMS[fmt][0]
    assert 198 <= body["length"] <= 200 and len(body["data"]) == 2 * body["length"]
    assert all(-128 <= v <= 127 for v in body["data"])
    pairs = zip(body["data"][0::2], body["data"][1::2], strict=True)
    peaks = [max(abs(lo), abs(hi)) for lo, hi in pairs]
    # Clear of the edges: the switch at half-way, and encoder padding at the end.
    quiet, loud = peaks[: len(peaks) * 45 // 100], peaks[len(peaks) * 55 // 100 : -5]
    # The tone is 1/8 of full scale: 16 of 128. Lossy codecs leave a trace of noise at most.
    assert max(quiet) <= 1, quiet
    assert min(loud) >= 12, loud
    # The time of each point is right: the tone starts half-way.
    onset = next(i for i, p in enumerate(peaks) if p >= 8)
    seconds = onset * body["samples_per_pixel"] / body["sample_rate"]
    assert 1.9 <= seconds <= 2.1, seconds


def computed_peaks(path):
    with path.open("rb") as audio:
        return compute_peaks(audio)


def decoded_by_ffmpeg(path):
    """The whole file decoded by the ffmpeg command, mixed to mono by its own downmix: float32
    samples, full scale -1 to 1."""
    command = ["ffmpeg", "-nostdin", "-loglevel", "error", "-i", str(path),
               "-ac", "1", "-f", "f32le", "-"]  # fmt: skip
    raw = subprocess.run(command, capture_output=True, check=True, timeout=60).stdout
    return np.frombuffer(raw, dtype=np.float32)


def reference_peaks(samples, size):
    """The peaks by their definition, all at once: the min and max of every ``size`` samples,
    full scale onto -128..127."""
    starts = np.arange(0, len(samples), size)
    extremes = np.minimum.reduceat(samples, starts), np.maximum.reduceat(samples, starts)
    return [np.clip(np.round(values * 128), -128, 127).astype(np.int8) for values in extremes]


# Every sample format the decoders give: WAV s16, u8 and s32, FLAC s16 (packed); MP3, Vorbis,
# Opus and AAC float (planar). Mono, and stereo with different channels; and 5.1, which the
# decoder hands to FFmpeg's own resampler to mix.
PEAK_CASES = [
    *((fmt, channels, None) for fmt in FORMATS for channels in (1, 2)),
    *(("wav", channels, codec) for codec in ("pcm_u8", "pcm_s32le") for channels in (1, 2)),
    ("flac", 6, None),
]


@pytest.mark.parametrize(("fmt", "channels", "codec"), PEAK_CASES)
def test_peaks_are_min_and_max_of_every_block_of_ffmpegs_mono_mix(tmp_path, fmt, channels, codec):
    path = make_tones(tmp_path / f"tones.{fmt}", fmt, channels=channels, codec=codec)
    peaks = computed_peaks(path)
    samples = decoded_by_ffmpeg(path)
    size = base_samples_per_pixel(len(samples))
    # Blocks of several samples, so that blocks straddle frames and batches.
    assert peaks.samples_per_pixel == size > 1
    mins, maxs = reference_peaks(samples, size)
    assert peaks.length == len(mins)
    for got, want in ((peaks.mins, mins), (peaks.maxs, maxs)):
        off = np.abs(got.astype(np.int16) - want)
        # One step at most, where this ffmpeg's decoder or its mix rounds a sample the other
        # way across a half step; and that rarely.
        assert off.max() <= 1 and np.count_nonzero(off) <= len(off) // 1000, np.flatnonzero(off)


def test_stereo_peaks_are_ffmpegs_downmix_not_the_mean(tmp_path):
    # Left at 0.5 and right at 0.3 of full scale, summed at -3 dB each as FFmpeg mixes stereo
    # to mono: (0.5 + 0.3) * sqrt(1/2) = 0.566, 72 of 128. Their mean would peak at 51, the
    # left channel alone at 64.
    peaks = computed_peaks(make_tones(tmp_path / "tones.wav", "wav", channels=2))
    assert (peaks.mins.min(), peaks.maxs.max()) == (-72, 72)


def test_peaks_of_a_long_clip_are_computed_in_little_memory(tmp_path):
    # 21 million samples: 80 MiB as float32 if they were ever all held at once.
    path = make_wav_of_size(tmp_path / "long.wav", 40 * 1024 * 1024)
    tracemalloc.start()
    try:
        peaks = computed_peaks(path)
        _, most = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert most < 4 * 1024 * 1024, most
    samples = (40 * 1024 * 1024 - 44) // 2
    assert peaks.length == math.ceil(samples / peaks.samples_per_pixel)
    # Every block but the short last one spans whole periods of the tone, 8000 of 32768: 31.
    assert set(peaks.maxs[:-1].tolist()) == {31} and set(peaks.mins[:-1].tolist()) == {-31}


@pytest.mark.parametrize("tagged", [False, True], ids=["measured", "tagged"])
async def test_a_long_upload_gets_its_peaks_after_its_201_with_its_loudness(api, tmp_path, tagged):
    """Over five minutes, the 201 waits for the bytes alone: the peaks follow, drawn in the
    pass that measures the loudness (if the tags lack it), and are the file's peaks;
    meanwhile the clip has none, and the figures its tags hold."""
    seconds = INLINE_PEAKS_MAX_SECONDS + 10  # make_wav_of_size: 16-bit mono at 44.1 kHz
    path = make_wav_of_size(tmp_path / "long.wav", 44 + seconds * 44_100 * 2)
    if tagged:
        tag_replay_gain(path, "wav", {"REPLAYGAIN_TRACK_GAIN": "-1.00 dB",
                                      "REPLAYGAIN_TRACK_PEAK": "0.5"})  # fmt: skip
    created = await api.upload(path.read_bytes(), "long.wav", content_type="audio/wav",
                               measured=False)  # fmt: skip
    assert created.status_code == 201, created.text
    assert created.json["waveform_url"] is None
    assert created.json["replay_gain"]["track_peak"] == (0.5 if tagged else None)
    clip = await once_drawn(api, created.json["id"])
    assert clip["waveform_url"] == f"/play/{clip['id']}/waveform"
    body = (await waveform(api, clip["id"], points="700")).json
    assert body == computed_peaks(path).resample(700).to_json()
    gain = clip["replay_gain"]
    if tagged:
        assert (gain["track_gain_db"], gain["track_peak"]) == (-1.0, 0.5)
    else:  # make_wav_of_size's tone peaks at 8000 of 32768: measured
        assert gain["track_peak"] == pytest.approx(8000 / 32768, abs=0.01)


@pytest.mark.parametrize("points", [1, 7, 333, 1000, 4321, 10000])
async def test_length_is_at_most_points_and_within_one_percent(api, tmp_path, points):
    clip = (await api.upload(half_silent(tmp_path, "flac").read_bytes(), "h.flac")).json
    body = (await waveform(api, clip["id"], points=str(points))).json
    samples = 4 * 22050
    assert min(points, samples) * 0.99 <= body["length"] <= points
    # However the points were fitted, they span the whole clip, as players compute it.
    duration = body["length"] * body["samples_per_pixel"] / body["sample_rate"]
    assert abs(duration - 4.0) < 0.01, body["sample_rate"]
    default = (await waveform(api, clip["id"])).json
    assert 990 <= default["length"] <= 1000


async def test_a_clip_shorter_than_the_points_gives_every_sample(api):
    clip = (await api.upload(wav_bytes(11, frames=3000), "short.wav")).json
    body = (await waveform(api, clip["id"], points="10000")).json
    assert (body["samples_per_pixel"], body["length"]) == (1, 3000)


async def test_dat_is_the_same_peaks_in_the_binary_format(api, tmp_path):
    clip = (await api.upload(half_silent(tmp_path, "ogg").read_bytes(), "h.ogg")).json
    body = (await waveform(api, clip["id"], points="500")).json
    dat = await waveform(api, clip["id"], points="500", format="dat")
    assert dat.headers["Content-Type"] == "application/octet-stream"
    header = struct.unpack("<iIiiIi", dat.content[:24])
    assert header == (2, 1, body["sample_rate"], body["samples_per_pixel"], body["length"], 1)
    assert list(struct.unpack(f"<{2 * body['length']}b", dat.content[24:])) == body["data"]


async def test_waveform_validators_and_errors(api, tmp_path):
    clip = (await api.upload(half_silent(tmp_path, "mp3").read_bytes(), "h.mp3")).json
    first = await waveform(api, clip["id"], points="300")
    etag = first.headers["ETag"]
    again = await api.get(clip["waveform_url"], params={"points": "300"},
                          headers={"If-None-Match": etag})  # fmt: skip
    assert again.status_code == 304 and again.content == b""
    other = await waveform(api, clip["id"], points="301")
    assert other.headers["ETag"] != etag
    for bad in ("0", "10001", "many", "-5"):
        resp = await api.get(clip["waveform_url"], params={"points": bad})
        assert resp.status_code == 400 and "'points'" in resp.json["description"]
    resp = await api.get(clip["waveform_url"], params={"format": "png"})
    assert resp.status_code == 400 and "'format'" in resp.json["description"]
    remote = (await api.add_external()).json
    assert remote["waveform_url"] is None
    assert (await api.get(f"/play/{remote['id']}/waveform")).status_code == 404
    assert (await api.get(clip["waveform_url"], key=None)).status_code == 401


async def test_waveform_data_reads_what_the_server_made(api, tmp_path, waveform_data):
    clip = (await api.upload(half_silent(tmp_path, "wav").read_bytes(), "h.wav")).json
    body = (await waveform(api, clip["id"], points="120")).json
    (tmp_path / "w.json").write_text(json.dumps(body))
    dat = await waveform(api, clip["id"], points="120", format="dat")
    (tmp_path / "w.dat").write_bytes(dat.content)
    result = subprocess.run(
        ["node", str(waveform_data / "read.js"), str(tmp_path / "w.json"), str(tmp_path / "w.dat")],
        cwd=waveform_data, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    read = json.loads(result.stdout)
    for kind in ("json", "dat"):
        seen = read[kind]
        assert seen["length"] == body["length"] and seen["channels"] == 1
        assert (seen["sample_rate"], seen["scale"]) == (22050, body["samples_per_pixel"])
        assert seen["min"] == body["data"][0::2] and seen["max"] == body["data"][1::2]
        assert abs(seen["duration"] - 4.0) < 0.05
        assert seen["resampled"] == 10
