"""Uploading clips: every supported format, tags, duplicates, and the ugly cases."""

from __future__ import annotations

import io
import uuid
import wave

import pytest

from tests.support.audio import CONTENT_TYPES, FORMATS
from tests.support.forms import multipart


@pytest.mark.parametrize("fmt", FORMATS)
async def test_every_supported_format_uploads_with_duration_and_tags(api, clip_file, fmt):
    path = clip_file(
        fmt,
        seconds=1.5,
        title=f"Tone {fmt}",
        artist="Sine Band",
        album="Tests",
        comment="made by ffmpeg",
    )
    resp = await api.upload(path.read_bytes(), filename=f"whatever.{fmt}")
    assert resp.status_code == 201, resp.text
    clip = resp.json
    assert clip["title"] == f"Tone {fmt}"
    assert clip["artist"] == "Sine Band"
    assert clip["album"] == "Tests"
    assert clip["description"] == "made by ffmpeg"
    assert clip["duration"] == pytest.approx(1.5, abs=0.15)
    assert clip["content_type"] == CONTENT_TYPES[fmt]
    assert clip["size"] == path.stat().st_size
    assert clip["play_count"] == 0
    assert resp.headers["Location"] == f"/play/{clip['id']}"
    assert clip["audio_url"] == f"/play/{clip['id']}/stream"
    assert clip["stream_url"].startswith(f"/play/{clip['id']}/stream?expires=")
    [stored] = api.stored_files()
    assert stored.read_bytes() == path.read_bytes()

    fetched = await api.get(f"/play/{clip['id']}")
    assert fetched.status_code == 200
    # The loudness is measured after the 201 (api.upload waits for it): the clip then has
    # the figures its 201 lacked, and nothing else changed.
    assert clip["replay_gain"]["track_peak"] is None
    assert fetched.json["replay_gain"]["track_peak"] is not None
    later = ("stream_url", "replay_gain")
    assert {k: v for k, v in fetched.json.items() if k not in later} == {
        k: v for k, v in clip.items() if k not in later
    }


async def test_form_fields_win_over_tags_and_tags_over_file_name(api, clip_file):
    tagged = clip_file("mp3", title="Tag Title", comment="Tag comment")
    resp = await api.upload(
        tagged.read_bytes(), filename="name.mp3", title="Form Title", description="Form description"
    )
    assert resp.status_code == 201
    assert resp.json["title"] == "Form Title"
    assert resp.json["description"] == "Form description"

    other = clip_file("ogg", freq=550, title="Only Tags")
    resp = await api.upload(other.read_bytes(), filename="ignored.ogg")
    assert resp.json["title"] == "Only Tags"

    untagged = clip_file("flac", freq=660)
    resp = await api.upload(untagged.read_bytes(), filename="C:\\Music\\Dawn Chorus.flac")
    assert resp.status_code == 201
    assert resp.json["title"] == "Dawn Chorus"
    assert resp.json["artist"] is None


async def test_post_play_with_multipart_is_an_upload(api, clip_file):
    path = clip_file("opus", freq=500)
    resp = await api.upload(path.read_bytes(), filename="x.opus", path="/play", title="Via /play")
    assert resp.status_code == 201, resp.text
    assert resp.json["title"] == "Via /play"
    assert resp.json["content_type"] == "audio/ogg"


async def test_the_same_bytes_twice_is_a_409_naming_the_existing_clip(api, clip_file):
    data = clip_file("mp3", freq=700).read_bytes()
    first = await api.upload(data, title="First")
    second = await api.upload(data, title="Second")
    assert second.status_code == 409
    assert second.json["existing_id"] == first.json["id"]
    assert first.json["id"] in second.json["description"]
    assert len(api.stored_files()) == 1
    listing = await api.get("/play")
    assert listing.headers["X-Total-Count"] == "1"


def _png() -> bytes:
    # A real 1x1 PNG: signature, IHDR, IDAT, IEND.
    import struct
    import zlib

    def chunk(kind, data):
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(b"\x00\x00"))
        + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize(
    "data, filename",
    [
        (b"This is a plain text file, not a song.\n" * 20, "song.mp3"),
        (_png(), "cover.mp3"),
        (b"ID3\x03\x00\x00\x00\x00\x00\x0a" + b"\x00" * 64, "tags-only.mp3"),
        (b"RIFF\x24\x00\x00\x00WAVEfmt ", "truncated.wav"),
    ],
)
async def test_bytes_that_are_not_audio_are_415_whatever_the_declared_type(api, data, filename):
    resp = await api.upload(data, filename=filename, content_type="audio/mpeg")
    assert resp.status_code == 415, resp.text
    assert "audio" in resp.json["description"]
    assert api.media_files() == []
    assert (await api.get("/play")).json == []


async def test_a_wav_with_no_samples_is_refused(api):
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
    resp = await api.upload(buf.getvalue(), filename="silence.wav")
    assert resp.status_code == 415
    assert api.media_files() == []


@pytest.mark.parametrize(
    "body, ctype, reason",
    [
        (b"not a multipart body at all", "multipart/form-data; boundary=xyz", "malformed"),
        (
            b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="a.mp3"\r\n\r\nabc',
            "multipart/form-data; boundary=xyz",
            "truncated",
        ),
        (b"--xyz--\r\n", "multipart/form-data", "no boundary"),
    ],
)
async def test_malformed_multipart_is_400(api, body, ctype, reason):
    resp = await api.post("/play/upload", body=body, headers={"Content-Type": ctype})
    assert resp.status_code == 400, (reason, resp.text)
    assert resp.json["description"]
    assert api.media_files() == []


async def test_missing_empty_or_doubled_file_part_is_400(api, clip_file):
    body, ctype = multipart({"title": "No file"})
    resp = await api.post("/play/upload", body=body, headers={"Content-Type": ctype})
    assert resp.status_code == 400
    assert "'file'" in resp.json["description"]

    resp = await api.upload(b"", filename="empty.mp3")
    assert resp.status_code == 400
    assert "empty" in resp.json["description"]

    data = clip_file("mp3", freq=880).read_bytes()
    boundary = "twofiles"
    one, _ = multipart(files={"file": ("a.mp3", data, "audio/mpeg")}, boundary=boundary)
    two = one.replace(f"--{boundary}--\r\n".encode(), b"") + one
    resp = await api.post(
        "/play/upload",
        body=two,
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert resp.status_code == 400
    assert "exactly one" in resp.json["description"]
    assert api.media_files() == []


async def test_upload_needs_multipart(api):
    resp = await api.post("/play/upload", json={"title": "x"})
    assert resp.status_code == 415


@pytest.mark.parametrize(
    "filename",
    [
        "../../../../etc/passwd.mp3",
        "..\\..\\windows\\evil.mp3",
        "/absolute/path.mp3",
        "....//....//x.mp3",
        "nul\x00byte.mp3",
    ],
)
async def test_path_traversal_file_names_never_leave_the_media_store(api, clip_file, filename):
    data = clip_file("mp3", freq=900).read_bytes()
    resp = await api.upload(data, filename=filename)
    assert resp.status_code in (201, 400), resp.text
    for path in api.media_files():
        assert path.resolve().is_relative_to(api.media_dir.resolve())
        assert path.name.split(".")[0] != "passwd"
    if resp.status_code == 201:
        [stored] = api.stored_files()
        assert len(stored.stem) == 64 and stored.suffix == ".mp3"


async def test_very_long_and_non_ascii_titles(api, clip_file):
    data = clip_file("mp3", freq=1000).read_bytes()
    resp = await api.upload(data, title="x" * 201)
    assert resp.status_code == 400
    assert "200" in resp.json["description"]
    assert api.media_files() == []

    title = "Vögel im Morgengrauen — 夜明けの鳥 🐦"
    resp = await api.upload(data, title=title, description="Ünïcödé ✓")
    assert resp.status_code == 201
    assert resp.json["title"] == title
    found = await api.get("/play", params={"q": "VÖGEL"})
    assert [c["id"] for c in found.json] == [resp.json["id"]]


async def test_unauthenticated_upload_is_401_and_stores_nothing(api, clip_file):
    data = clip_file("mp3", freq=1100).read_bytes()
    body, ctype = multipart(files={"file": ("a.mp3", data, "audio/mpeg")})
    for key in (None, "wrong-key"):
        resp = await api.post("/play/upload", body=body, headers={"Content-Type": ctype}, key=key)
        assert resp.status_code == 401
        assert "X-API-Key" in resp.headers["WWW-Authenticate"]
    assert api.media_files() == []


async def test_ids_are_uuids(api, clip_file):
    resp = await api.upload(clip_file("wav", freq=1200).read_bytes(), filename="a.wav")
    assert uuid.UUID(resp.json["id"])
