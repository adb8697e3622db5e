"""Transcoding over real HTTP against a real ``mosic serve``: a listener who reads slowly holds
a transcode open (the encoder waits for them), so the slot limit and the hang-up can be shown
without sleeps: ``MOSIC_TRANSCODE_MAX`` is 1, the second transcode is 503 with Retry-After, and
when the slow listener hangs up the encoder stops, drops its half-made rendition and frees the
slot."""

from __future__ import annotations

import shutil
import socket
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.conftest import BACKENDS
from tests.support.audio import make_clip, make_wav_of_size
from tests.support.measure import RssSampler, metric, rss_kib
from tests.support.server import mosic_serve, wait_for
from tests.test_e2e import db_settings

FFPROBE = shutil.which("ffprobe")
assert FFPROBE, "install Debian's ffmpeg package (ffprobe)"
FFPROBE = shutil.which("ffprobe")
assert FFPROBE, "install Debian's ffmpeg package (ffprobe)"
# About 7.5 minutes of 44.1 kHz mono: its 320 kbit/s MP3 (18 MB) is far more than the
# loopback socket buffers and the server's queue hold, so a listener who stops reading stops
# the encoder long before it could finish.
LONG_WAV_BYTES = 40 * 1024 * 1024
SLOW_RCVBUF = 4096
WAIT_S = 20
# A transcode holds a bounded queue of encoded pieces and FFmpeg's own buffers, whatever the
# length of the source (measured: about 1 MiB for the 40 MB source read to the end).
TRANSCODE_GROWTH_MAX_MIB = 16


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    data = tmp_path_factory.mktemp("transcode") / "data"
    with mosic_serve(data, MOSIC_TRANSCODE_MAX="1", metrics_port=True) as running:
        yield running


@pytest.fixture(scope="module")
def long_clip(server, tmp_path_factory) -> str:
    path = make_wav_of_size(tmp_path_factory.mktemp("long") / "long.wav", LONG_WAV_BYTES)
    return server.upload(path, "audio/wav")["id"]


@pytest.fixture(scope="module")
def short_clip(server, tmp_path_factory) -> str:
    path = make_clip(tmp_path_factory.mktemp("short") / "short.ogg", "ogg", seconds=3.0)
    return server.upload(path, "audio/ogg")["id"]


def part_files(server) -> list[Path]:
    return sorted((server.data_dir / "transcodes").glob("*.part"))


def active_transcodes(server) -> float:
    return metric(server.metrics(), "mosic_active_transcodes")


def transcodes(server, outcome: str) -> float:
    prefix = f'mosic_transcodes_total{{outcome="{outcome}"}} '
    [line] = [line for line in server.metrics().splitlines() if line.startswith(prefix)]
    return float(line.removeprefix(prefix))


def slow_listener(server, clip_id: str, query: str) -> tuple[socket.socket, bytes]:
    """A raw HTTP GET whose client has a tiny receive window and reads only the start."""
    host, port = server.base.removeprefix("http://").split(":")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SLOW_RCVBUF)
    sock.settimeout(WAIT_S)
    sock.connect((host, int(port)))
    sock.sendall(
        f"GET /play/{clip_id}/stream?{query} HTTP/1.1\r\nHost: x\r\n"
        f"X-API-Key: {server.api_key}\r\n\r\n".encode()
    )
    received = b""
    while b"\r\n\r\n" not in received or len(received.partition(b"\r\n\r\n")[2]) < 1024:
        chunk = sock.recv(4096)
        assert chunk, f"the server closed the stream early: {received[:300]!r}"
        received += chunk
    return sock, received


def test_a_slow_listener_holds_the_only_slot_and_a_hang_up_frees_it(server, long_clip, short_clip):
    sock, start = slow_listener(server, long_clip, "format=mp3&bitrate=320")
    head = start.partition(b"\r\n\r\n")[0].decode().lower()
    assert head.startswith("http/1.1 200")
    assert "content-length" not in head and "transfer-encoding: chunked" in head
    assert "accept-ranges: none" in head and "content-type: audio/mpeg" in head
    # Bytes arrived while the rendition is still being made.
    [part] = wait_for("the rendition's part file", lambda: part_files(server), WAIT_S)

    busy = server.get(f"/play/{short_clip}/stream", params={"format": "opus"})
    assert busy.status_code == 503
    assert int(busy.headers["Retry-After"]) > 0
    assert "MOSIC_TRANSCODE_MAX" in busy.json()["description"]
    # What needs no encoder still answers: the original, and a HEAD of a rendition.
    assert server.get(f"/play/{short_clip}/stream").status_code == 200
    head_only = httpx.head(
        f"{server.base}/play/{short_clip}/stream?format=opus", headers=server.headers, timeout=10
    )
    assert head_only.status_code == 200
    assert part.exists(), "the held transcode finished or died: the test proves nothing"
    assert active_transcodes(server) == 1
    assert transcodes(server, "busy") == 1

    sock.close()
    wait_for("the encoder to stop and drop its part file", lambda: not part.exists(), WAIT_S)
    assert not [p for p in (server.data_dir / "transcodes").iterdir() if p.suffix == ".mp3"]
    assert active_transcodes(server) == 0
    assert transcodes(server, "abandoned") == 1
    assert transcodes(server, "completed") == 0

    freed = server.get(f"/play/{short_clip}/stream", params={"format": "opus"})
    assert freed.status_code == 200, freed.text
    assert freed.content.startswith(b"OggS")
    assert part_files(server) == []
    assert transcodes(server, "completed") == 1


def test_a_listener_who_reads_to_the_end_leaves_a_cached_rendition(server, short_clip):
    first = server.get(f"/play/{short_clip}/stream", params={"format": "mp3", "bitrate": "64"})
    assert first.status_code == 200 and "content-length" not in first.headers
    again = server.get(
        f"/play/{short_clip}/stream",
        params={"format": "mp3", "bitrate": "64"},
        headers={"Range": "bytes=100-"},
    )
    assert again.status_code == 206
    assert again.content == first.content[100:]
    size = len(first.content)
    assert again.headers["Content-Range"] == f"bytes 100-{size - 1}/{size}"


def test_memory_stays_flat_transcoding_a_long_source_to_the_end(server, long_clip, short_clip):
    # FFmpeg's libraries are mapped on the first transcode: measure from after one.
    assert server.get(f"/play/{short_clip}/stream", params={"format": "opus"}).status_code == 200
    baseline = rss_kib(server.pid)
    assert baseline, "no VmRSS"
    with (
        RssSampler(server.pid) as rss,
        httpx.stream(
            "GET",
            f"{server.base}/play/{long_clip}/stream?format=opus&bitrate=32",
            headers=server.headers,
            timeout=120,
        ) as resp,
    ):
        assert resp.status_code == 200
        received = sum(len(chunk) for chunk in resp.iter_raw())
    # About 7.5 minutes at 32 kbit/s: the whole rendition arrived.
    assert received > 32_000 / 8 * 7 * 60
    growth_mib = rss.peak_mib()[0] - baseline / 1024
    assert growth_mib < TRANSCODE_GROWTH_MAX_MIB, f"server memory grew by {growth_mib:.0f} MiB"


@pytest.fixture(params=BACKENDS)
def workers(request, tmp_path):
    """Two gunicorn workers, as in the container, sharing one rendition cache."""
    with mosic_serve(tmp_path / "data", "--workers", "2", **db_settings(request)) as running:
        yield running


def test_two_workers_share_renditions_and_count_plays_by_the_rule(workers, tmp_path):
    clip = workers.upload(make_clip(tmp_path / "song.m4a", "m4a", seconds=10.0), "audio/mp4")
    url = f"/play/{clip['id']}/stream"
    first = workers.get(url, params={"format": "opus", "bitrate": "64"})
    assert first.status_code == 200 and "content-length" not in first.headers
    saved = tmp_path / "first.opus"
    saved.write_bytes(first.content)
    probed = subprocess.run(
        [FFPROBE, "-v", "error", "-show_entries", "stream=codec_name", "-of", "csv=p=0", saved],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    assert probed == "opus"
    # A new connection each time, so both workers answer some: all from the one cache.
    for _ in range(4):
        again = workers.get(url, params={"format": "opus", "bitrate": "64"})
        assert again.headers["content-length"] == str(len(first.content))
        assert again.content == first.content
    seek = workers.get(
        url, params={"format": "opus", "bitrate": "64"}, headers={"Range": "bytes=500-"}
    )
    assert seek.status_code == 206 and seek.content == first.content[500:]
    assert workers.get(f"/play/{clip['id']}/stats").json()["play_count"] == 5  # not the seek
