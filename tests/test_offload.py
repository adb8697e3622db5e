"""Listening through nginx with the offload on: Mosic authorises and counts, nginx sends.

A real Debian nginx, configured with the shipped deploy/nginx/mosic.conf, in front of a real
``mosic serve`` started with ``MOSIC_ACCEL_REDIRECT=/internal-media/``. Every answer is
checked against the streaming contract, and the play count after each kind of request.
"""

from __future__ import annotations

import contextlib

import httpx
import pytest

from tests.support.audio import make_clip
from tests.support.nginx import OFFLOAD_PREFIX, nginx_in_front
from tests.support.server import mosic_serve


@pytest.fixture(scope="module")
def front(tmp_path_factory):
    """(nginx's base URL, the Mosic server behind it)."""
    tmp = tmp_path_factory.mktemp("offload")
    with contextlib.ExitStack() as stack:
        mosic = stack.enter_context(mosic_serve(tmp / "data", MOSIC_ACCEL_REDIRECT=OFFLOAD_PREFIX))
        base, _ = stack.enter_context(
            nginx_in_front(mosic.base, mosic.data_dir / "media", tmp / "nginx")
        )
        yield base, mosic


@pytest.fixture(scope="module")
def song(front, tmp_path_factory):
    """(the clip, its bytes, Mosic's own validators for it, asked directly)."""
    base, mosic = front
    path = make_clip(tmp_path_factory.mktemp("song") / "song.mp3", "mp3", seconds=3.0)
    clip = mosic.upload(path, "audio/mpeg")
    direct = httpx.head(mosic.base + clip["audio_url"], headers=mosic.headers, timeout=10)
    return clip, path.read_bytes(), direct.headers


def get(front, path: str, method: str = "GET", **headers: str) -> httpx.Response:
    base, mosic = front
    return httpx.request(method, base + path, headers={**mosic.headers, **headers}, timeout=10)


def plays(front, clip) -> int:
    return get(front, f"/play/{clip['id']}/stats").json()["play_count"]


def check_validators(resp: httpx.Response, direct) -> None:
    """The headers the contract asks of every stream answer, and Mosic's validators."""
    if resp.status_code != 206:
        assert resp.headers["accept-ranges"] == "bytes"
    assert resp.headers["content-type"] == "audio/mpeg"
    assert resp.headers["etag"] == direct["etag"]
    assert resp.headers["last-modified"] == direct["last-modified"]
    assert resp.headers["cache-control"] == direct["cache-control"]
    assert "x-accel-redirect" not in resp.headers


def test_a_plain_get_is_sent_by_nginx_and_counted_once(front, song):
    clip, data, direct = song
    before = plays(front, clip)
    resp = get(front, clip["audio_url"])
    assert resp.status_code == 200
    assert resp.content == data
    assert int(resp.headers["content-length"]) == len(data)
    check_validators(resp, direct)
    assert plays(front, clip) == before + 1
    # The signed link works through nginx too, and counts as well.
    base, _ = front
    signed = httpx.get(base + clip["stream_url"], timeout=10)
    assert signed.status_code == 200 and signed.content == data
    assert plays(front, clip) == before + 2


@pytest.mark.parametrize(
    ("header", "start", "end", "counts"),
    [
        ("bytes=100-199", 100, 199, False),  # a seek
        ("bytes=0-1", 0, 1, False),  # a probe
        ("bytes=-10", None, None, False),  # the last ten bytes
        ("bytes=0-", 0, None, True),  # a listen from byte 0
        ("bytes=0-9,20-29", 0, 9, False),  # several ranges: the first, as Mosic serves
    ],
)
def test_ranges_through_nginx(front, song, header, start, end, counts):
    clip, data, direct = song
    size = len(data)
    first = size - 10 if start is None else start
    last = size - 1 if end is None else end
    before = plays(front, clip)
    resp = get(front, clip["audio_url"], Range=header)
    assert resp.status_code == 206
    assert resp.headers["content-range"] == f"bytes {first}-{last}/{size}"
    assert resp.content == data[first : last + 1]
    check_validators(resp, direct)
    assert plays(front, clip) == before + (1 if counts else 0)


def test_conditions_and_head_through_nginx(front, song):
    clip, data, etag = song
    before = plays(front, clip)
    path = clip["audio_url"]
    full = get(front, path, "HEAD")
    assert full.status_code == 200 and full.content == b""
    assert int(full.headers["content-length"]) == len(data)
    check_validators(full, etag)
    assert get(front, path, **{"If-None-Match": etag["etag"]}).status_code == 304
    assert get(front, path, **{"If-Modified-Since": etag["last-modified"]}).status_code == 304
    unsatisfiable = get(front, path, Range=f"bytes={len(data)}-")
    assert unsatisfiable.status_code == 416
    assert unsatisfiable.headers["content-range"] == f"bytes */{len(data)}"
    assert get(front, path, Range="bytes=abc").status_code == 200  # ignored, whole file
    stale = get(front, path, Range="bytes=5-9", **{"If-Range": '"stale"'})
    assert stale.status_code == 200 and stale.content == data
    current = get(front, path, Range="bytes=5-9", **{"If-Range": etag["etag"]})
    assert current.status_code == 206 and current.content == data[5:10]
    # HEAD, 304, 416 and seeks never count; the ignored Range and the stale If-Range were
    # whole-file GETs, so they count.
    assert plays(front, clip) == before + 2


def test_the_internal_location_is_not_reachable_from_outside(front, song):
    name = next(p.name for p in (front[1].data_dir / "media").rglob("*.mp3"))
    assert get(front, OFFLOAD_PREFIX + name).status_code == 404
    assert get(front, "/play").status_code == 200
