"""The subtle rules as pure functions: Range parsing, play counting, validators, signing."""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from mosic.core import waveform
from mosic.core.plays import PROBE_END_BEFORE, counts_as_play
from mosic.core.signing import (
    COVER,
    EXPIRY_STEP_S,
    STREAM,
    BadSignature,
    ExpiredSignature,
    Signer,
)
from mosic.media import local
from mosic.media.ranges import (
    ByteRange,
    RangeNotSatisfiable,
    not_modified,
    parse_range,
    range_applies,
)

SIZE = 1000


@pytest.mark.parametrize(
    "header, expected",
    [
        (None, None),
        ("", None),
        ("bytes=0-0", ByteRange(0, 0)),
        ("bytes=0-999", ByteRange(0, 999)),
        ("bytes=0-5000", ByteRange(0, 999)),
        ("bytes=500-", ByteRange(500, 999)),
        ("bytes=-1", ByteRange(999, 999)),
        ("bytes=-5000", ByteRange(0, 999)),
        ("BYTES = 1-2", ByteRange(1, 2)),
        ("bytes= 3 - 4 ", ByteRange(3, 4)),
        ("bytes=1-2,5-6", ByteRange(1, 2)),
        ("bytes=5-1", None),
        ("bytes=x-1", None),
        ("pages=0-1", None),
        ("bytes=--1", None),
        ("bytes=-", None),
        ("bytes 0-1", None),
        ("bytes=1-2,junk", None),
    ],
)
def test_parse_range(header, expected):
    assert parse_range(header, SIZE) == expected


@pytest.mark.parametrize("header", ["bytes=1000-", "bytes=1000-2000", "bytes=-0"])
def test_unsatisfiable_ranges(header):
    with pytest.raises(RangeNotSatisfiable):
        parse_range(header, SIZE)


def test_first_unsatisfiable_of_several_is_unsatisfiable():
    with pytest.raises(RangeNotSatisfiable):
        parse_range("bytes=5000-,0-1", SIZE)


BIG = 10_000_000


@pytest.mark.parametrize(
    "method, rng, size, counts",
    [
        ("GET", None, BIG, True),
        ("HEAD", None, BIG, False),
        ("GET", ByteRange(0, BIG - 1), BIG, True),
        ("GET", ByteRange(0, 1), BIG, False),
        ("GET", ByteRange(0, PROBE_END_BEFORE - 1), BIG, False),
        ("GET", ByteRange(0, PROBE_END_BEFORE), BIG, True),
        ("GET", ByteRange(1, BIG - 1), BIG, False),
        ("GET", ByteRange(0, 99), 100, True),  # a short range that is the whole file
        ("GET", ByteRange(0, 1), 100, False),
        ("POST", None, BIG, False),
    ],
)
def test_counts_as_play(method, rng, size, counts):
    assert counts_as_play(method, rng, size) is counts


@pytest.mark.parametrize(("start_s", "counts"), [(0.0, True), (0.5, False), (30.0, False)])
def test_a_transcode_started_later_is_a_seek(start_s, counts):
    assert counts_as_play("GET", None, BIG, start_s) is counts


MODIFIED = dt.datetime(2026, 11, 25, 14, 0, 0, 500_000)
ETAG = '"abc"'


@pytest.mark.parametrize(
    "inm, ims, expected",
    [
        (None, None, False),
        ('"abc"', None, True),
        ('W/"abc"', None, True),
        ('"x", "abc"', None, True),
        ("*", None, True),
        ('"x"', None, False),
        ('"x"', "Wed, 25 Nov 2026 14:00:00 GMT", False),  # If-None-Match decides alone
        (None, "Wed, 25 Nov 2026 14:00:00 GMT", True),
        (None, "Wed, 25 Nov 2026 15:00:00 GMT", True),
        (None, "Wed, 25 Nov 2026 13:59:59 GMT", False),
        (None, "not a date", False),
    ],
)
def test_not_modified(inm, ims, expected):
    assert not_modified(inm, ims, ETAG, MODIFIED) is expected


@pytest.mark.parametrize(
    "if_range, expected",
    [
        (None, True),
        ('"abc"', True),
        ('W/"abc"', False),
        ('"old"', False),
        ("Wed, 25 Nov 2026 14:00:00 GMT", True),
        ("Wed, 25 Nov 2026 14:00:01 GMT", False),
        ("garbage", False),
    ],
)
def test_range_applies(if_range, expected):
    assert range_applies(if_range, ETAG, MODIFIED) is expected


def test_signer_round_trip_and_refusals():
    signer = Signer("s3cret", ttl=60)
    expires, sig = signer.sign("clip-a", now=1000)
    assert expires == 1060
    signer.verify("clip-a", str(expires), sig, now=1059)
    with pytest.raises(ExpiredSignature):
        signer.verify("clip-a", str(expires), sig, now=1061)
    with pytest.raises(BadSignature):
        signer.verify("clip-b", str(expires), sig, now=1000)
    with pytest.raises(BadSignature):
        signer.verify("clip-a", str(expires + 1), sig, now=1000)
    with pytest.raises(BadSignature):
        Signer("other", ttl=60).verify("clip-a", str(expires), sig, now=1000)
    for bad_expiry in (None, "", "soon", "1e3"):
        with pytest.raises(BadSignature):
            signer.verify("clip-a", bad_expiry, sig, now=1000)
    with pytest.raises(BadSignature):
        signer.verify("clip-a", str(expires), "ü" * 64, now=1000)


def test_a_signature_names_its_resource():
    signer = Signer("s3cret", ttl=60)
    expires, cover_sig = signer.sign("clip-a", now=1000, resource=COVER)
    signer.verify("clip-a", str(expires), cover_sig, now=1000, resource=COVER)
    with pytest.raises(BadSignature, match="stream"):
        signer.verify("clip-a", str(expires), cover_sig, now=1000)  # the stream, by default
    _, stream_sig = signer.sign("clip-a", now=1000)
    assert stream_sig == signer.sign("clip-a", now=1000, resource=STREAM)[1]
    with pytest.raises(BadSignature, match="cover"):
        signer.verify("clip-a", str(expires), stream_sig, now=1000, resource=COVER)


def test_a_link_made_for_a_user_opens_as_that_user_alone():
    signer = Signer("s3cret", ttl=60)
    expires, sig = signer.sign("clip-a", now=1000, user_id=7)
    signer.verify("clip-a", str(expires), sig, now=1000, user_id=7)
    for other in (None, 8, 77):  # without its user, or as another, it is no link
        with pytest.raises(BadSignature):
            signer.verify("clip-a", str(expires), sig, now=1000, user_id=other)
    old = signer.sign("clip-a", now=1000)[1]  # made before links named their user
    signer.verify("clip-a", str(expires), old, now=1000)
    with pytest.raises(BadSignature):
        signer.verify("clip-a", str(expires), old, now=1000, user_id=7)
    # The memo keeps each user's link apart, and the link says whose it is.
    sevens = signer.for_user(7).query("clip-a", now=1000)
    assert sevens == f"expires={expires}&u=7&sig={sig}"
    assert signer.for_user(8).query("clip-a", now=1000) != sevens
    assert signer.for_user(None).query("clip-a", now=1000) == f"expires={expires}&sig={old}"


@pytest.mark.parametrize("samples", [1, 5, 999, 1000, 1001, 22050, 88200, 1_000_003, 400_000_000])
@pytest.mark.parametrize("points", [1, 2, 999, 1000, 4321, 10000])
def test_waveform_resolution_fits_points_within_one_percent(samples, points):
    base = waveform.base_samples_per_pixel(samples)
    stored = math.ceil(samples / base)
    assert stored <= waveform.MAX_BASE_PIXELS
    zeros = np.zeros(stored, dtype=np.int8)
    peaks = waveform.Peaks(44100, base, zeros, zeros).resample(points)
    assert min(points, stored * base) * 0.99 <= peaks.length <= points
    # The points span the clip as players compute it, to 1% or, for a handful of samples,
    # to the last point's overhang.
    drawn = peaks.length * peaks.samples_per_pixel * 44100 / peaks.sample_rate
    assert abs(drawn - stored * base) <= max(0.01 * stored * base, peaks.samples_per_pixel)


# -- reading stored files: chunk sizes shared by the streams, page-cache reads ---------------


def test_each_stream_reads_a_share_of_the_read_ahead_within_bounds():
    read_ahead = local.ReadAhead(total=3 * 1024 * 1024)
    sizes = {}
    for streams in (0, 1, 16, 200):
        read_ahead.streams = streams
        sizes[streams] = read_ahead.chunk_size()
    assert sizes == {
        0: local.MAX_CHUNK_BYTES,
        1: local.MAX_CHUNK_BYTES,
        16: 192 * 1024,
        200: local.MIN_CHUNK_BYTES,
    }


async def test_a_stream_counts_while_it_reads_and_gives_the_bytes_back(tmp_path):
    data = os.urandom(3 * local.MAX_CHUNK_BYTES + 123)
    (tmp_path / "ab").mkdir()
    (tmp_path / "ab" / "abc.mp3").write_bytes(data)
    read_ahead = local.ReadAhead()
    store = local.LocalStore(tmp_path, read_ahead)
    whole = await store.open("abc.mp3")
    chunks = whole.chunks(5, len(data) - 5)
    first = await anext(chunks)
    assert read_ahead.streams == 1
    await chunks.aclose()  # a listener who left
    assert read_ahead.streams == 0
    media = await store.open("abc.mp3")
    assert b"".join([c async for c in media.chunks(7, len(data) - 9)]) == data[7:-2]
    assert first == data[5 : 5 + len(first)] and read_ahead.streams == 0


MIB = 1024 * 1024


class CountingExecutor(ThreadPoolExecutor):
    """The loop's default executor, counting the work handed to its threads."""

    handed = 0

    def submit(self, fn, /, *args, **kwargs):
        self.handed += 1
        return super().submit(fn, *args, **kwargs)


async def test_a_file_opened_lately_opens_on_the_loop_and_a_vanished_one_is_seen_at_once(
    tmp_path,
):
    path = tmp_path / "f"
    path.write_bytes(b"x" * 10)
    executor = CountingExecutor(1)
    asyncio.get_running_loop().set_default_executor(executor)
    opens = local.WarmOpens(window_s=60)
    for _ in range(3):
        fd, size = await opens.open(str(path))
        os.close(fd)
        assert size == 10
    assert executor.handed == 1  # only the first: the path had not been opened lately
    path.unlink()
    with pytest.raises(FileNotFoundError):
        await opens.open(str(path))
    path.write_bytes(b"y" * 4)
    fd, size = await opens.open(str(path))  # after a miss the path counts as cold again
    os.close(fd)
    assert (size, executor.handed) == (4, 2)
    cold = local.WarmOpens(window_s=0)  # nothing stays warm: every open goes to a thread
    for _ in range(2):
        os.close((await cold.open(str(path)))[0])
    assert executor.handed == 4


@pytest.mark.skipif(local.RWF_NOWAIT is None, reason="RWF_NOWAIT is Linux's")
def test_a_page_cache_read_answers_none_when_the_bytes_would_wait_for_the_disk(tmp_path):
    path = tmp_path / "f"
    data = os.urandom(8 * MIB)
    path.write_bytes(data)
    fd = os.open(path, os.O_RDONLY)
    probe = local.ReadAhead().probe
    try:
        assert local.read_cached(fd, 4096, 100, probe) == data[100:4196]
        assert local.read_cached(fd, 8192, len(data) - 10, probe) == data[-10:]
        assert local.read_cached(fd, 10, len(data), probe) == b""
        assert local.read_cached(fd, 300_000, 5, probe) == data[5:300_005]
        # Clean pages dropped from the cache (the second half: the kernel drops whole
        # folios, which may be large): a read there would wait, so it is left to a thread,
        # and a chunk cached only at its start gives that start.
        os.fsync(fd)
        os.posix_fadvise(fd, 4 * MIB, 0, os.POSIX_FADV_DONTNEED)
        assert local.read_cached(fd, 4096, 7 * MIB, probe) is None
        start = 4 * MIB - 1000
        partly = local.read_cached(fd, MIB, start, probe)
        # (Readahead the probe started may have brought in more by now, never less.)
        assert partly == data[start : start + len(partly)] and 1000 <= len(partly) <= MIB
    finally:
        os.close(fd)


def test_long_lived_links_made_within_a_minute_are_the_same_link():
    signer = Signer("s3cret", ttl=6 * 3600)
    first = signer.query("clip-a", now=1_000_000)  # 16:40 past a whole minute
    assert signer.query("clip-a", now=1_000_019.9) == first
    expires, sig = signer.sign("clip-a", now=1_000_000)
    assert expires % EXPIRY_STEP_S == 0
    assert 6 * 3600 <= expires - 1_000_000 < 6 * 3600 + EXPIRY_STEP_S
    assert signer.query("clip-a", now=1_000_021) != first  # the next minute's link
    assert signer.query("clip-b", now=1_000_000) != first
    signer.verify("clip-a", str(expires), sig, now=expires)
    with pytest.raises(ExpiredSignature):
        signer.verify("clip-a", str(expires), sig, now=expires + 1)


def test_short_lived_links_keep_their_exact_second():
    assert Signer("s3cret", ttl=2).sign("clip-a", now=1_000_000.5)[0] == 1_000_002


def test_times_read_the_same_from_the_list_encoder_and_the_object_encoder():
    import orjson

    from mosic.api.shapes import ORJSON_TIMES, rfc3339

    for moment, text in (
        (dt.datetime(2026, 11, 25, 14, 0, 0), "2026-11-25T14:00:00Z"),
        (dt.datetime(2026, 11, 25, 14, 0, 0, 250000), "2026-11-25T14:00:00.250000Z"),
        (dt.datetime(999, 1, 2, 3, 4, 5, 6), "0999-01-02T03:04:05.000006Z"),
    ):
        assert rfc3339(moment) == text
        assert orjson.dumps([moment], option=ORJSON_TIMES) == f'["{text}"]'.encode()
