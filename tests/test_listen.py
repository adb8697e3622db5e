"""Listening: streaming with ranges and validators, counting plays, signed links."""

from __future__ import annotations

import asyncio
import datetime as dt
import email.utils
from urllib.parse import parse_qs, urlsplit

import falcon.testing
import pytest

from mosic.app import create_app
from tests.support.audio import make_wav_of_size


@pytest.fixture
async def song(api, clip_file):
    """A real 3-second WAV (about 130 kB: long enough for probes and seeks)."""
    path = clip_file("wav", seconds=3.0, freq=523, title="Song")
    resp = await api.upload(path.read_bytes(), filename="song.wav")
    assert resp.status_code == 201
    return resp.json | {"bytes": path.read_bytes()}


async def plays(api, clip) -> int:
    return (await api.get(f"/play/{clip['id']}/stats")).json["play_count"]


def stream(clip) -> str:
    return f"/play/{clip['id']}/stream"


async def test_full_get_sends_every_byte_with_all_headers_and_counts_one_play(api, song):
    resp = await api.get(stream(song))
    assert resp.status_code == 200
    assert resp.content == song["bytes"]
    assert resp.headers["Accept-Ranges"] == "bytes"
    assert resp.headers["Content-Type"] == "audio/wav"
    assert resp.headers["Content-Length"] == str(len(song["bytes"]))
    assert resp.headers["ETag"].startswith('"')
    last_modified = email.utils.parsedate_to_datetime(resp.headers["Last-Modified"])
    assert abs(last_modified - dt.datetime.now(dt.UTC)) < dt.timedelta(minutes=5)
    assert await plays(api, song) == 1
    stats = (await api.get(f"/play/{song['id']}/stats")).json
    assert stats["last_played_at"].endswith("Z")


@pytest.mark.parametrize(
    "header, start, end",
    [
        ("bytes=0-99", 0, 99),
        ("bytes=1000-1999", 1000, 1999),
        ("bytes=100-", 100, None),
        ("bytes=-500", -500, None),
        ("bytes=5-2000000000", 5, None),
        ("bytes=-999999999", 0, None),
        ("bytes=10-19, 30-39", 10, 19),
    ],
)
async def test_ranges_are_206_with_exact_bytes(api, song, header, start, end):
    data = song["bytes"]
    size = len(data)
    resp = await api.get(stream(song), headers={"Range": header})
    assert resp.status_code == 206, resp.text
    expected = data[start:] if end is None else data[start : end + 1]
    assert resp.content == expected
    first = start % size if start >= 0 else size + start
    last = first + len(expected) - 1
    assert resp.headers["Content-Range"] == f"bytes {first}-{last}/{size}"
    assert resp.headers["Content-Length"] == str(len(expected))
    assert resp.headers["Accept-Ranges"] == "bytes"


@pytest.mark.parametrize("header", ["bytes=999999999-", "bytes=-0", "bytes=999999999-999999999"])
async def test_unsatisfiable_range_is_416_with_the_size(api, song, header):
    resp = await api.get(stream(song), headers={"Range": header})
    assert resp.status_code == 416
    assert resp.headers["Content-Range"] == f"bytes */{len(song['bytes'])}"
    assert await plays(api, song) == 0


@pytest.mark.parametrize(
    "header",
    [
        "bytes=abc",
        "bytes=5-1",
        "items=0-10",
        "bytes",
        "bytes=",
        "bytes=-",
        "bytes=1-2-3",
        "bytes=0-10,",
        "\u00e9=0-1",
    ],
)
async def test_invalid_range_header_is_ignored(api, song, header):
    resp = await api.get(stream(song), headers={"Range": header})
    assert resp.status_code == 200
    assert resp.content == song["bytes"]


async def test_head_has_the_headers_and_no_body_and_never_counts(api, song):
    get = await api.get(stream(song), headers={"Range": "bytes=0-9"})
    resp = await api.head(stream(song), headers={"Range": "bytes=0-9"})
    assert resp.status_code == 206
    assert resp.content == b""
    for name in (
        "Content-Type",
        "Content-Length",
        "Content-Range",
        "ETag",
        "Last-Modified",
        "Accept-Ranges",
    ):
        assert resp.headers[name] == get.headers[name]
    full = await api.head(stream(song))
    assert full.status_code == 200
    assert full.headers["Content-Length"] == str(len(song["bytes"]))
    assert await plays(api, song) == 0


async def test_conditional_requests(api, song):
    first = await api.get(stream(song))
    etag, modified = first.headers["ETag"], first.headers["Last-Modified"]

    for headers in (
        {"If-None-Match": etag},
        {"If-None-Match": f'"other", W/{etag}'},
        {"If-None-Match": "*"},
        {"If-Modified-Since": modified},
    ):
        resp = await api.get(stream(song), headers=headers)
        assert resp.status_code == 304, headers
        assert resp.content == b""
        assert resp.headers["ETag"] == etag

    changed = await api.get(stream(song), headers={"If-None-Match": '"not-it"'})
    assert changed.status_code == 200
    older = email.utils.format_datetime(dt.datetime(2000, 1, 1, tzinfo=dt.UTC), usegmt=True)
    assert (await api.get(stream(song), headers={"If-Modified-Since": older})).status_code == 200
    garbage = await api.get(stream(song), headers={"If-Modified-Since": "yesterday-ish"})
    assert garbage.status_code == 200
    # If-None-Match wins over If-Modified-Since (RFC 9110 13.2.2).
    both = await api.get(
        stream(song), headers={"If-None-Match": '"x"', "If-Modified-Since": modified}
    )
    assert both.status_code == 200
    # 304s never count: the first GET and three 200s did.
    assert await plays(api, song) == 5


async def test_if_range(api, song):
    first = await api.head(stream(song))
    etag, modified = first.headers["ETag"], first.headers["Last-Modified"]
    for validator in (etag, modified):
        resp = await api.get(stream(song), headers={"Range": "bytes=10-19", "If-Range": validator})
        assert resp.status_code == 206
        assert resp.content == song["bytes"][10:20]
    for stale in ('"stale"', f"W/{etag}", "Sat, 01 Jan 2000 00:00:00 GMT"):
        resp = await api.get(stream(song), headers={"Range": "bytes=10-19", "If-Range": stale})
        assert resp.status_code == 200
        assert resp.content == song["bytes"]


async def test_play_counting_rules(api, song):
    size = len(song["bytes"])
    assert size > 65535 * 2
    cases = [
        ({}, 1, "a plain GET"),
        ({"Range": "bytes=0-"}, 1, "a range from the start"),
        ({"Range": "bytes=0-1"}, 0, "Safari's probe"),
        ({"Range": "bytes=0-65534"}, 0, "a probe ending just before byte 65535"),
        ({"Range": "bytes=0-65535"}, 1, "a range from 0 reaching byte 65535"),
        ({"Range": "bytes=4096-"}, 0, "a seek"),
        ({"Range": "bytes=-1000"}, 0, "a suffix range"),
        ({"Range": f"bytes=0-{size - 1}"}, 1, "the whole file as a range"),
        ({"Range": "bytes=99999999-"}, 0, "a failed (416) request"),
        ({"Range": "garbage"}, 1, "an ignored Range header (a full GET)"),
    ]
    expected = 0
    for headers, counted, what in cases:
        await api.get(stream(song), headers=headers)
        expected += counted
        assert await plays(api, song) == expected, what
    await api.head(stream(song))
    assert await plays(api, song) == expected, "HEAD"


async def test_a_tiny_file_read_whole_by_a_short_range_counts(api, clip_file):
    tiny = clip_file("opus", seconds=0.5, freq=990)
    assert tiny.stat().st_size < 65535
    clip = (await api.upload(tiny.read_bytes(), filename="t.opus")).json
    await api.get(stream(clip), headers={"Range": f"bytes=0-{tiny.stat().st_size - 1}"})
    assert await plays(api, clip) == 1
    await api.get(stream(clip), headers={"Range": "bytes=0-1"})
    assert await plays(api, clip) == 1


async def test_listing_shows_play_counts(api, song):
    for _ in range(3):
        await api.get(stream(song))
    listing = await api.get("/play", params={"sort": "-play_count"})
    assert listing.json[0]["id"] == song["id"]
    assert listing.json[0]["play_count"] == 3


async def test_metadata_only_clip_redirects_and_counts(api):
    clip = (await api.add_external(audio_url="https://cdn.example.com/x.ogg")).json
    resp = await api.get(stream(clip))
    assert resp.status_code in (302, 307)
    assert resp.headers["Location"] == "https://cdn.example.com/x.ogg"
    assert await plays(api, clip) == 1
    assert (await api.head(stream(clip))).status_code in (302, 307)
    for header in ("bytes=0-1", "bytes=5000-", "bytes=-100", "bytes=-0"):
        resp = await api.get(stream(clip), headers={"Range": header})
        assert resp.status_code in (302, 307)
    assert await plays(api, clip) == 1
    await api.get(stream(clip), headers={"Range": "bytes=0-"})
    assert await plays(api, clip) == 2


async def test_stream_url_opens_without_a_key(api, song):
    resp = await api.get(song["stream_url"], key=None)
    assert resp.status_code == 200
    assert resp.content == song["bytes"]
    ranged = await api.get(song["stream_url"], key=None, headers={"Range": "bytes=-10"})
    assert ranged.content == song["bytes"][-10:]
    assert await plays(api, song) == 1
    # Only the stream: the signature opens no other route.
    query = urlsplit(song["stream_url"]).query
    meta = await api.get(f"/play/{song['id']}", key=None, query_string=query)
    assert meta.status_code == 401


async def test_tampered_expired_and_other_clip_signatures_are_refused(api, song, clip_file):
    other = (await api.upload(clip_file("mp3", freq=777).read_bytes())).json
    parts = urlsplit(song["stream_url"])
    q = {k: v[0] for k, v in parse_qs(parts.query).items()}

    def attempt(path, **changes):
        query = "&".join(f"{k}={v}" for k, v in (q | changes).items())
        return api.get(path, key=None, query_string=query)

    tampered_sig = q["sig"][:-1] + ("0" if q["sig"][-1] != "0" else "1")
    for resp in (
        await attempt(parts.path, sig=tampered_sig),
        await attempt(parts.path, expires=str(int(q["expires"]) + 3600)),
        await attempt(stream(other)),
        await attempt(parts.path, sig=""),
        await attempt(parts.path, expires="soon"),
        await attempt(parts.path, sig="%C3%A9%C3%A9"),
    ):
        assert resp.status_code in (401, 403), resp.text
        assert resp.json["description"]

    expired_signer = api.settings.replace(signed_url_ttl=1)
    from mosic.core.signing import Signer

    secret = (api.settings.data_dir / "signing_secret").read_text().strip()
    old = Signer(secret, expired_signer.signed_url_ttl).query(song["id"], now=0)
    resp = await api.get(stream(song), key=None, query_string=old)
    assert resp.status_code == 403
    assert "expired" in resp.json["description"]
    assert await plays(api, song) == 0


async def test_a_missing_audio_file_is_a_clear_404_not_a_crash(api, song):
    api.lose_stored_media()
    resp = await api.get(stream(song))
    assert resp.status_code == 404
    assert "audio file is gone" in resp.json["description"]
    assert await plays(api, song) == 0


class HangsUp:
    """A listener who hangs up once ``after`` bytes of the body came, as uvicorn shows it to
    the app: ``http.disconnect`` from ``receive`` once the loop has run the hang-up, and a
    ``send`` that returns at once from then on. ``wasted``: body bytes sent after it."""

    def __init__(self, app, after: int) -> None:
        self.app, self.after = app, after
        self.received = self.wasted = 0

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        gone = asyncio.Event()

        async def receive_until_gone():
            event = await receive()
            if event["type"] == "http.disconnect":
                await gone.wait()
            return event

        async def send_until_gone(message) -> None:
            if gone.is_set():
                self.wasted += len(message.get("body", b""))
                return
            await send(message)
            self.received += len(message.get("body", b""))
            if self.received >= self.after:
                gone.set()

        await self.app(scope, receive_until_gone, send_until_gone)


async def test_a_stream_stops_soon_after_its_listener_leaves_while_its_socket_kept_up(
    api, settings, tmp_path
):
    big = make_wav_of_size(tmp_path / "big.wav", 16 * 1024 * 1024)
    clip = (await api.upload(big.read_bytes(), filename="big.wav")).json
    listener = HangsUp(create_app(settings), after=1024 * 1024)
    async with falcon.testing.ASGIConductor(listener) as conductor:
        await conductor.get(stream(clip), headers={"X-API-Key": settings.api_key})
    assert listener.received >= 1024 * 1024
    # Reading on for a MiB or two until the loop runs the hang-up is the price of not
    # turning the loop after every chunk; reading to the end of the file is the bug.
    assert listener.wasted < 4 * 1024 * 1024
