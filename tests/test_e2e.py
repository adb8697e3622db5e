"""End to end: a real ``mosic serve`` (gunicorn with two uvicorn workers, as in the container)
on SQLite and on PostgreSQL, driven over real HTTP by webtest, httpx, raw sockets, and
clients no one here wrote (ffprobe, ffmpeg)."""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest
import webtest

from tests.conftest import BACKENDS
from tests.support.audio import make_clip, make_wav_of_size
from tests.support.forms import multipart
from tests.support.measure import RssSampler, metric, rss_kib
from tests.support.server import mosic_serve, wait_for

WORKERS = ("--workers", "2")
FFPROBE, FFMPEG = shutil.which("ffprobe"), shutil.which("ffmpeg")
assert FFPROBE and FFMPEG, "install Debian's ffmpeg package (ffmpeg, ffprobe)"


def db_settings(request) -> dict[str, str]:
    if request.param != "postgresql":
        return {}
    pg = request.getfixturevalue("fresh_postgres_db")
    return {
        "MOSIC_DB_HOST": pg.host,
        "MOSIC_DB_PORT": str(pg.port),
        "MOSIC_DB_USER": pg.user,
        "MOSIC_DB_NAME": pg.name,
    }


@pytest.fixture(params=BACKENDS)
def server(request, tmp_path):
    with mosic_serve(
        tmp_path / "data", *WORKERS, metrics_port=True, **db_settings(request)
    ) as running:
        yield running


@pytest.fixture
def web(server) -> webtest.TestApp:
    return webtest.TestApp(server.base, extra_environ={"HTTP_X_API_KEY": server.api_key})


def media_files(server) -> list[Path]:
    return [p for p in (server.data_dir / "media").rglob("*") if p.is_file()]


def total(server) -> int:
    return int(server.get("/play").headers["X-Total-Count"])


def test_upload_browse_listen_and_delete_over_http(server, web, tmp_path):
    song = make_clip(
        tmp_path / "birds.mp3", "mp3", seconds=2.0, title="Morning Birds", artist="Field Recordings"
    )
    created = web.post(
        "/play/upload",
        params={"description": "Recorded at dawn"},
        upload_files=[("file", "birds.mp3", song.read_bytes())],
        status=201,
    )
    clip = created.json
    assert clip["title"] == "Morning Birds"
    assert clip["artist"] == "Field Recordings"
    assert clip["description"] == "Recorded at dawn"
    assert created.headers["Location"].endswith(f"/play/{clip['id']}")

    listing = web.get("/play", params={"q": "birds"})
    assert [c["id"] for c in listing.json] == [clip["id"]]
    assert listing.headers["X-Total-Count"] == "1"

    data = song.read_bytes()
    part = web.get(f"/play/{clip['id']}/stream", headers={"Range": "bytes=100-199"}, status=206)
    assert part.body == data[100:200]
    assert part.headers["Content-Range"] == f"bytes 100-199/{len(data)}"
    whole = web.get(f"/play/{clip['id']}/stream", status=200)
    assert whole.body == data
    assert whole.headers["Content-Type"] == "audio/mpeg"

    browser = webtest.TestApp(server.base)  # no key, as an <audio> element
    assert browser.get(clip["stream_url"], status=200).body == data
    browser.get(f"/play/{clip['id']}/stream", status=401)
    stats = web.get(f"/play/{clip['id']}/stats").json
    assert stats["song_id"] == clip["id"]
    assert stats["play_count"] == 2

    web.patch_json(f"/play/{clip['id']}", {"title": "Dawn"}, status=200)
    assert web.get(f"/play/{clip['id']}").json["title"] == "Dawn"
    web.delete(f"/play/{clip['id']}", status=204)
    web.get(f"/play/{clip['id']}", status=404)
    assert media_files(server) == []


def test_concurrent_listeners_never_lose_a_play(server, tmp_path):
    song = make_clip(tmp_path / "tone.ogg", "ogg", seconds=1.0)
    clip_id = server.upload(song, "audio/ogg")["id"]
    listeners = 500

    async def listen_all() -> list[int]:
        # Each listener on a connection of its own, as 500 browsers would be.
        limits = httpx.Limits(max_connections=100, max_keepalive_connections=0)
        headers = {"X-API-Key": server.api_key}
        async with httpx.AsyncClient(
            base_url=server.base, limits=limits, headers=headers, timeout=60
        ) as client:

            async def listen() -> int:
                resp = await client.get(f"/play/{clip_id}/stream")
                assert resp.content == song.read_bytes()
                return resp.status_code

            return await asyncio.gather(*(listen() for _ in range(listeners)))

    statuses = asyncio.run(listen_all())
    assert statuses == [200] * listeners
    assert server.get(f"/play/{clip_id}/stats").json()["play_count"] == listeners
    assert metric(server.metrics(), "mosic_plays_total") == listeners


def test_real_players_probe_and_seek_through_the_signed_link(server, tmp_path):
    song = make_clip(tmp_path / "long.mp3", "mp3", seconds=20.0, title="Long")
    clip = server.upload(song, "audio/mpeg")
    url = server.base + clip["stream_url"]

    probe = subprocess.run(
        [
            FFPROBE,
            "-v",
            "error",
            "-show_entries",
            "format=duration:stream=codec_name",
            "-of",
            "json",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    info = json.loads(probe.stdout)
    assert info["streams"][0]["codec_name"] == "mp3"
    assert float(info["format"]["duration"]) == pytest.approx(20.0, abs=0.5)

    before = server.output().count("GET /play/{clip_id}/stream 206")
    seek = subprocess.run(
        [FFMPEG, "-v", "error", "-ss", "15", "-i", url, "-t", "1", "-f", "null", "-"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert seek.returncode == 0, seek.stderr
    # ffmpeg seeks into an HTTP file by asking for a byte range from the middle.
    wait_for(
        "the seek's range request in the access log",
        lambda: server.output().count("GET /play/{clip_id}/stream 206") > before,
        10,
    )
    assert clip["stream_url"].split("sig=")[1] not in server.output()


def raw_request(server, head: str, body: bytes = b"", *, read_reply: bool = True) -> str:
    host, port = server.base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(head.encode() + b"\r\n" + body)
        if not read_reply:
            return ""
        reply = b""
        while b"\r\n\r\n" not in reply:
            chunk = sock.recv(65536)
            if not chunk:
                break
            reply += chunk
        return reply.decode("latin-1")


def upload_head(server, ctype: str, length: int) -> str:
    return (
        f"POST /play/upload HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-Key: {server.api_key}\r\n"
        f"Content-Type: {ctype}\r\nContent-Length: {length}\r\n"
    )


def test_oversize_upload_is_refused_from_content_length_before_the_body(server):
    # A terabyte announced, the first 64 KiB sent: the answer comes at once, without the
    # server waiting for (or storing) the rest. (Falcon reads one body event before any
    # responder runs, which is what curl's "Expect: 100-continue" provides.)
    head = upload_head(server, "multipart/form-data; boundary=x", 10**12)
    reply = raw_request(server, head, b"--x\r\n" + b"\0" * 65536)
    assert reply.startswith("HTTP/1.1 413"), reply
    assert media_files(server) == []


def test_an_upload_cut_off_midway_leaves_no_file_and_no_row(server, tmp_path):
    big = make_wav_of_size(tmp_path / "big.wav", 8 * 1024 * 1024)
    body, ctype = multipart(files={"file": ("big.wav", big.read_bytes(), "audio/wav")})
    raw_request(
        server, upload_head(server, ctype, len(body)), body[: len(body) // 2], read_reply=False
    )
    wait_for("the partial upload to be removed", lambda: media_files(server) == [], 15)
    assert total(server) == 0
    # The server is fine afterwards: the same file, sent whole, is taken.
    created = httpx.post(
        server.base + "/play/upload",
        content=body,
        timeout=60,
        headers={"X-API-Key": server.api_key, "Content-Type": ctype},
    )
    assert created.status_code == 201, created.text
    assert total(server) == 1


@pytest.fixture(params=BACKENDS)
def small_server(request, tmp_path):
    with mosic_serve(
        tmp_path / "data",
        *WORKERS,
        metrics_port=True,
        MOSIC_MAX_UPLOAD_MB="1",
        **db_settings(request),
    ) as running:
        yield running


def test_a_chunked_upload_past_the_limit_is_stopped_while_streaming(small_server, tmp_path):
    server = small_server
    big = make_wav_of_size(tmp_path / "big.wav", 3 * 1024 * 1024)
    body, ctype = multipart(files={"file": ("big.wav", big.read_bytes(), "audio/wav")})

    def chunks():  # no Content-Length: only counting while streaming can stop it
        for i in range(0, len(body), 256 * 1024):
            yield body[i : i + 256 * 1024]

    resp = httpx.post(
        server.base + "/play/upload",
        content=chunks(),
        timeout=60,
        headers={"X-API-Key": server.api_key, "Content-Type": ctype},
    )
    assert resp.status_code == 413
    assert "MOSIC_MAX_UPLOAD_MB" in resp.json()["description"]
    assert media_files(server) == []
    assert total(server) == 0
    assert 'mosic_uploads_total{outcome="too_large"} 1.0' in server.metrics()


def test_a_listener_who_leaves_frees_the_stream(server, tmp_path):
    big = make_wav_of_size(tmp_path / "big.wav", 64 * 1024 * 1024)
    clip_id = server.upload(big, "audio/wav")["id"]
    host, port = server.base.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    sock.sendall(
        f"GET /play/{clip_id}/stream HTTP/1.1\r\nHost: x\r\n"
        f"X-API-Key: {server.api_key}\r\n\r\n".encode()
    )
    received = 0
    while received < 1024 * 1024:
        received += len(sock.recv(65536))
    wait_for(
        "the stream to be active", lambda: metric(server.metrics(), "mosic_active_streams") == 1, 10
    )
    sock.close()
    wait_for("the stream to end", lambda: metric(server.metrics(), "mosic_active_streams") == 0, 10)
    sent = metric(server.metrics(), "mosic_stream_bytes_total")
    assert sent < 32 * 1024 * 1024, "the server kept reading after the listener left"


def test_memory_stays_flat_uploading_and_streaming_500_mb(tmp_path):
    size = 500 * 1024 * 1024
    big = make_wav_of_size(tmp_path / "big.wav", size)
    # One process, so its resident memory is the whole server's.
    with mosic_serve(tmp_path / "data", MOSIC_MAX_UPLOAD_MB="600") as server:

        async def listen() -> int:
            async with (
                httpx.AsyncClient(timeout=300) as client,
                client.stream(
                    "GET",
                    f"{server.base}/play/{clip_id}/stream",
                    headers={"X-API-Key": server.api_key},
                ) as resp,
            ):
                return sum([len(chunk) async for chunk in resp.aiter_raw()])

        async def listen_all() -> list[int]:
            return await asyncio.gather(*(listen() for _ in range(4)))

        baseline = rss_kib(server.pid)
        assert baseline, "no VmRSS"
        # VmRSS every 20 ms through the upload and then the streams: the peak of both.
        with RssSampler(server.pid) as rss:
            clip_id = server.upload(big, "audio/wav")["id"]
            assert asyncio.run(listen_all()) == [size] * 4
    growth_mib = rss.peak_mib()[0] - baseline / 1024
    assert growth_mib < 64, f"server memory grew by {growth_mib:.0f} MiB for a 500 MiB file"


def test_start_up_names_database_and_media_and_prints_a_generated_key_once(tmp_path):
    data = tmp_path / "data"
    with mosic_serve(data, api_key=None) as first:
        key = first.api_key
        out = first.output()
        assert out.count(key) == 1
        assert f"database: SQLite {data.resolve() / 'mosic.sqlite3'}" in out
        assert f"media directory: {data.resolve() / 'media'}" in out
        assert first.get("/play").status_code == 200
        time.sleep(0.1)
    with mosic_serve(data, api_key=None) as second:
        assert second.api_key == key
        assert key not in second.output()
