"""Listening through nginx with the offload on: Mosic authorises and counts, nginx sends.

A real Debian nginx in front of a real ``mosic serve``, in each of the two shipped ways, on
SQLite and on PostgreSQL: deploy/nginx/mosic.conf with ``MOSIC_ACCEL_REDIRECT=/internal-media/``
(Mosic answers, nginx swaps in the file), and deploy/nginx/mosic-auth-request.conf with
``MOSIC_NGINX_AUTH_REQUEST=true`` (nginx asks Mosic first, then sends the file from its own
location, or passes the request on). Every answer is checked against the streaming contract,
and the play count after each kind of request. Local storage: with S3 Mosic redirects players
to the bucket, and no nginx sends bytes.
"""

from __future__ import annotations

import contextlib

import httpx
import pytest

from tests.conftest import postgres_database
from tests.support.audio import make_clip
from tests.support.measure import metric
from tests.support.nginx import OFFLOAD_PREFIX, SHIPPED, SHIPPED_AUTH_REQUEST, nginx_in_front
from tests.support.server import mosic_serve

MODES = {
    "accel": (SHIPPED, {"MOSIC_ACCEL_REDIRECT": OFFLOAD_PREFIX}),
    "auth_request": (SHIPPED_AUTH_REQUEST, {"MOSIC_NGINX_AUTH_REQUEST": "true"}),
}


def db_env(pg) -> dict[str, str]:
    if pg is None:
        return {}
    return {"MOSIC_DB_HOST": pg.host, "MOSIC_DB_PORT": str(pg.port), "MOSIC_DB_USER": pg.user,
            "MOSIC_DB_NAME": pg.name}  # fmt: skip


@pytest.fixture(scope="module", params=[(m, db) for m in MODES for db in ("sqlite", "postgresql")],
                ids=lambda p: f"{p[0]}-{p[1]}")  # fmt: skip
def front(request, tmp_path_factory):
    """(nginx's base URL, the Mosic server behind it, the mode)."""
    mode, database = request.param
    site, settings = MODES[mode]
    tmp = tmp_path_factory.mktemp("offload")
    with contextlib.ExitStack() as stack:
        pg = None
        if database == "postgresql":
            pg = stack.enter_context(postgres_database(request.getfixturevalue("postgres_url")))
        mosic = stack.enter_context(mosic_serve(tmp / "data", **settings, **db_env(pg)))
        base, _ = stack.enter_context(
            nginx_in_front(mosic.base, mosic.data_dir / "media", tmp / "nginx", site)
        )
        yield base, mosic, mode


@pytest.fixture(scope="module")
def song(front, tmp_path_factory):
    """(the clip, its bytes, Mosic's own validators for it, asked directly)."""
    base, mosic, _ = front
    path = make_clip(tmp_path_factory.mktemp("song") / "song.mp3", "mp3", seconds=3.0)
    clip = mosic.upload(path, "audio/mpeg")
    direct = httpx.head(mosic.base + clip["audio_url"], headers=mosic.headers, timeout=10)
    return clip, path.read_bytes(), direct.headers


def get(front, path: str, method: str = "GET", **headers: str) -> httpx.Response:
    base, mosic, _ = front
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


def sent_by_mosic(front) -> float:
    """Audio bytes Mosic itself has sent (offloaded ones are not among them)."""
    return metric(front[1].metrics(), "mosic_stream_bytes_total")


def test_a_plain_get_is_sent_by_nginx_and_counted_once(front, song):
    clip, data, direct = song
    before, mosic_sent = plays(front, clip), sent_by_mosic(front)
    resp = get(front, clip["audio_url"])
    assert resp.status_code == 200
    assert resp.content == data
    assert int(resp.headers["content-length"]) == len(data)
    check_validators(resp, direct)
    assert plays(front, clip) == before + 1
    # The signed link works through nginx too, and counts as well.
    base = front[0]
    signed = httpx.get(base + clip["stream_url"], timeout=10)
    assert signed.status_code == 200 and signed.content == data
    assert plays(front, clip) == before + 2
    assert sent_by_mosic(front) == mosic_sent  # nginx sent every byte


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
    stored = next((front[1].data_dir / "media").rglob("*.mp3"))
    assert get(front, OFFLOAD_PREFIX + stored.name).status_code == 404
    assert get(front, f"/{stored.parent.name}/{stored.name}").status_code == 404
    assert get(front, "/_mosic/decide").status_code == 404
    assert get(front, "/play").status_code == 200


def test_refusals_are_mosics_own_answers(front, song):
    """A request Mosic refuses gets Mosic's answer, body and all, through nginx, and is not
    counted; nor is a clip that does not exist."""
    clip, _, _ = song
    before = plays(front, clip)
    base = front[0]
    anonymous = httpx.get(base + clip["audio_url"], timeout=10)
    assert anonymous.status_code == 401
    assert anonymous.headers["content-type"] == "application/json"
    assert "API key" in anonymous.json()["description"]
    forged = httpx.get(base + clip["stream_url"].replace("sig=", "sig=0"), timeout=10)
    assert forged.status_code in (401, 403)
    assert get(front, "/play/00000000-0000-4000-8000-000000000000/stream").status_code == 404
    assert plays(front, clip) == before


def test_a_client_cannot_ask_nginxs_question(front, song):
    """The question's header from a client is dropped by nginx: the client gets the bytes
    (or Mosic's answer), never a decision naming the stored file."""
    clip, data, _ = song
    before = plays(front, clip)
    resp = get(front, clip["audio_url"], **{"X-Mosic-Decide": "1"})
    assert resp.status_code == 200 and resp.content == data
    assert "x-mosic-file" not in resp.headers
    assert plays(front, clip) == before + 1


def test_subsonic_stream_through_nginx(front, song):
    """Subsonic's stream through nginx: the bytes and ranges; it counts no play (Subsonic
    apps scrobble)."""
    clip, data, _ = song
    base, mosic, _ = front
    before = plays(front, clip)
    query = {"id": clip["id"], "apiKey": mosic.api_key, "v": "1.16.1", "c": "test"}
    resp = httpx.get(base + "/rest/stream", params=query, timeout=10)
    assert resp.status_code == 200 and resp.content == data
    assert resp.headers["content-type"] == "audio/mpeg"
    seek = httpx.get(base + "/rest/stream.view", params=query, headers={"Range": "bytes=10-19"})
    assert seek.status_code == 206 and seek.content == data[10:20]
    assert plays(front, clip) == before


def test_a_transcode_is_mosics_and_counted_once(front, song):
    clip, _, _ = song
    before = plays(front, clip)
    resp = get(front, clip["audio_url"] + "?format=opus&bitrate=32")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("audio/ogg")
    assert resp.content[:4] == b"OggS"
    assert plays(front, clip) == before + 1


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_nginx_asking_a_mosic_that_does_not_decide_still_streams(request, tmp_path, database):
    """The auth_request site in front of a Mosic without MOSIC_NGINX_AUTH_REQUEST: every
    question is passed back (204), Mosic sends the bytes itself, and counts each play once."""
    with contextlib.ExitStack() as stack:
        pg = None
        if database == "postgresql":
            pg = stack.enter_context(postgres_database(request.getfixturevalue("postgres_url")))
        mosic = stack.enter_context(mosic_serve(tmp_path / "data", **db_env(pg)))
        base, _ = stack.enter_context(
            nginx_in_front(mosic.base, mosic.data_dir / "media", tmp_path / "nginx",
                           SHIPPED_AUTH_REQUEST)
        )  # fmt: skip
        path = make_clip(tmp_path / "song.mp3", "mp3", seconds=2.0)
        clip = mosic.upload(path, "audio/mpeg")
        before = metric(mosic.metrics(), "mosic_stream_bytes_total")
        resp = httpx.get(base + clip["audio_url"], headers=mosic.headers, timeout=10)
        assert resp.status_code == 200 and resp.content == path.read_bytes()
        sent = metric(mosic.metrics(), "mosic_stream_bytes_total") - before
        assert sent == len(resp.content)  # Mosic sent them, not nginx
        stats = httpx.get(f"{mosic.base}/play/{clip['id']}/stats", headers=mosic.headers)
        assert stats.json()["play_count"] == 1
        asked = httpx.get(mosic.base + clip["audio_url"], headers={**mosic.headers,
                          "X-Mosic-Decide": "1"})  # fmt: skip
        assert asked.status_code == 204 and not asked.content
        assert "x-mosic-file" not in asked.headers
        assert "MOSIC_NGINX_AUTH_REQUEST is off" in mosic.log_tail()


def test_a_share_link_has_the_scheme_nginx_was_reached_by(front, song):
    """Behind nginx, a share's link is built from the scheme nginx sets, whatever a client
    claims: here plain http (behind TLS, https), never a client's own X-Forwarded-Proto."""
    base, mosic, _ = front
    clip, _, _ = song
    made = httpx.post(base + "/shares", json={"clip_ids": [clip["id"]]}, timeout=10,
                      headers={**mosic.headers, "X-Forwarded-Proto": "gopher"})  # fmt: skip
    assert made.status_code == 201, made.text
    assert made.json()["url"] == f"{base}/share/{made.json()['id']}"
