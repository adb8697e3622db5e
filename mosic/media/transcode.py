"""Transcoding: stored audio re-encoded as Ogg Opus or MP3, produced while it is listened to.

PyAV (FFmpeg) decodes and encodes in one dedicated thread per transcode, never on the event
loop and never in the default executor (whose threads the source reads themselves need). At
most ``max_running`` transcodes run at once in a process; beyond that ``TranscoderBusy``.

The source is read through the storage interface: ``MediaReader`` is a seekable file object
over ``StoredMedia.chunks``. Sequential reads follow one ``chunks`` iteration; a seek (the MP4
demuxer jumps to an index at the end, the MP3 one looks for a trailing tag) opens the media
again at the new offset. So any backend works and nothing is spooled to local disk.

The encoded bytes go to a bounded queue that the response drains, so a slow listener slows the
encoder instead of filling memory, and to the rendition cache's part file, published when the
encoding completes. A listener who leaves stops the encoder at its next frame and the part file
is dropped: finishing renditions nobody hears would let hang-ups spend the CPU.

**Starting later** (``start_s``, a player seeking in a transcode): the source is sought to the
packet at or before that time, the frames before it are dropped and the one that straddles it
is cut, sample-exact, so the output lasts the source's duration less ``start_s``. Such a
transcode is never cached: it is not the rendition (whose file name and ETag say "the whole
song"), and players seek to any tenth of a second, so keeping each one would fill the cache
with pieces nobody asks for twice and push out the whole renditions that are. An offset at or
past the end gives no bytes at all: the song is over.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import av
import numpy

from mosic.media.renditions import PendingRendition, RenditionCache
from mosic.media.storage import StoredMedia
from mosic.observability.metrics import Metrics, TranscodeOutcome

log = logging.getLogger(__name__)

BITRATE_MIN_KBPS = 32
BITRATE_MAX_KBPS = 320
# libopus refuses more than this per channel, so a mono source asked for more is encoded as
# stereo (two copies of its one channel cost Opus little; the bitrate is what was asked).
OPUS_MAX_KBPS_PER_CHANNEL = 256
# Encoded bytes are handed to the response in pieces of about this size (the muxers write a
# few hundred bytes at a time; one hop to the event loop per packet would be wasteful) ...
EMIT_BYTES = 32 * 1024
# ... through a queue of at most this many pieces: the memory one transcode may hold.
QUEUE_PIECES = 8
# How often a thread waiting on the event loop looks whether it was told to stop.
STOP_POLL_S = 0.25
# Same source, same settings, same bytes (no random Ogg serial, no version strings), so a
# rendition made again after eviction keeps its ETag honest.
BITEXACT = {"fflags": "+bitexact"}
# The latest a transcode may start, in seconds (11.5 days: beyond any recording, and far from
# where a timestamp in the source's time base could overflow).
OFFSET_MAX_S = 1_000_000


@dataclass(frozen=True)
class Format:
    name: str
    codec: str
    muxer: str
    content_type: str
    extension: str
    default_kbps: int
    sample_rate: int
    options: tuple[tuple[str, str], ...] = ()


# Constrained VBR: Opus' quality where the music allows, the asked bitrate on average.
OPUS_OPTIONS = (("vbr", "constrained"),)
FORMATS = {
    "opus": Format("opus", "libopus", "ogg", "audio/ogg", ".opus", 96, 48000, OPUS_OPTIONS),
    # 44.1 kHz is MPEG-1 Layer III, the one that allows every bitrate from 32 to 320 kbit/s.
    "mp3": Format("mp3", "libmp3lame", "mp3", "audio/mpeg", ".mp3", 128, 44100),
}


@dataclass(frozen=True)
class Rendition:
    format: Format
    kbps: int

    @property
    def tag(self) -> str:
        return f"{self.format.name}-{self.kbps}"

    def file_name(self, source_sha256: str) -> str:
        return f"{source_sha256}-{self.tag}{self.format.extension}"


def start_offset(raw: str) -> float:
    """Where a transcode is asked to start, in seconds (``"30"``, ``"12.5"``); ``ValueError``
    saying what is wrong when it is not a number from 0 to ``OFFSET_MAX_S``."""
    try:
        seconds = float(raw)
    except ValueError:
        raise ValueError(f"must be a number of seconds, got {raw!r}") from None
    if not 0 <= seconds <= OFFSET_MAX_S:  # also NaN
        raise ValueError(f"must be between 0 and {OFFSET_MAX_S} seconds, got {raw!r}")
    return seconds


class TranscoderBusy(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"{limit} transcodes are already running")
        self.limit = limit


class TranscodeFailed(Exception):
    """The source could not be decoded (nothing was sent yet)."""


class Stopped(Exception):
    """The transcode was told to stop (its listener left)."""


def _wait(future, stopped: threading.Event):
    while True:
        try:
            return future.result(timeout=STOP_POLL_S)
        except TimeoutError:
            if stopped.is_set():
                future.cancel()
                raise Stopped from None


class MediaReader(io.RawIOBase):
    """A seekable binary file over stored media, read from a worker thread: each read or
    reopen runs on the event loop, where the storage's coroutines live."""

    def __init__(
        self,
        media: StoredMedia,
        reopen: Callable[[], Awaitable[StoredMedia]],
        loop: asyncio.AbstractEventLoop,
        stopped: threading.Event,
    ) -> None:
        self._first: StoredMedia | None = media
        self._reopen = reopen
        self._size = media.size
        self._loop = loop
        self._stopped = stopped
        self._pos = 0
        self._chunks: AsyncIterator[bytes] | None = None
        # The chunk being read and how far into it: slicing a view copies only what is read.
        self._buffer = memoryview(b"")
        self._taken = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        target = max(0, base + offset)
        ahead = target - self._pos
        if 0 <= ahead <= len(self._buffer) - self._taken:
            self._taken += ahead  # within the chunk at hand
        else:
            self._drop()
        self._pos = target
        return target

    def read(self, size: int = -1) -> bytes:
        if self._pos >= self._size:
            return b""
        if self._taken == len(self._buffer):
            if self._chunks is None:
                self._chunks = self._call(self._open_at(self._pos))
            self._buffer, self._taken = memoryview(self._call(self._next())), 0
            if not self._buffer:
                return b""
        left = len(self._buffer) - self._taken
        size = left if size is None or size < 0 else min(size, left)
        data = bytes(self._buffer[self._taken : self._taken + size])
        self._taken += size
        self._pos += size
        return data

    def close(self) -> None:
        if not self.closed:
            self._drop()
            if self._first is not None:
                self._call(self._first.close())
        super().close()

    async def _open_at(self, position: int) -> AsyncIterator[bytes]:
        media, self._first = self._first, None
        if media is None:
            media = await self._reopen()
        return aiter(media.chunks(position, self._size - position))

    async def _next(self) -> bytes:
        return await anext(self._chunks, b"")

    def _drop(self) -> None:
        self._buffer, self._taken = memoryview(b""), 0
        chunks, self._chunks = self._chunks, None
        if chunks is not None:
            self._call(chunks.aclose())  # closes the media (``chunks`` ends)

    def _call(self, coro) -> Any:
        return _wait(asyncio.run_coroutine_threadsafe(coro, self._loop), self._stopped)


def _layout(source_channels: int, rendition: Rendition) -> str:
    mono_fits = rendition.format.name != "opus" or rendition.kbps <= OPUS_MAX_KBPS_PER_CHANNEL
    return "mono" if source_channels == 1 and mono_fits else "stereo"


def encode(
    source, sink, rendition: Rendition, stopped: threading.Event, start_s: float = 0.0
) -> None:
    """Decode ``source`` (a readable, seekable binary file) from ``start_s`` seconds and write
    ``rendition`` to ``sink`` (an object with ``write``, not seekable), progressively;
    blocking. Raises ``Stopped`` when ``stopped`` is set, ``TranscodeFailed`` when the source
    is not decodable audio."""
    try:
        with av.open(source, "r") as inp:
            audio = inp.streams.audio[0] if inp.streams.audio else None
            if audio is None or audio.codec_context is None:
                raise TranscodeFailed("the file has no audio stream FFmpeg can decode")
            frames = _frames_from(inp, audio, start_s) if start_s > 0 else inp.decode(audio)
            _encode_stream(frames, audio, sink, rendition, stopped)
    except av.FFmpegError as exc:
        raise TranscodeFailed(f"FFmpeg could not transcode the audio: {exc}") from None


def _frames_from(inp, audio, start_s: float) -> Iterator[av.AudioFrame]:
    """The stream's decoded frames from ``start_s`` seconds into it: sought to the packet at
    or before, then the frames that end before ``start_s`` dropped and the one across it cut.
    A source that cannot seek is decoded from its start, to the same frames."""
    time_base = audio.time_base
    origin = audio.start_time * time_base if audio.start_time is not None else 0
    clock = 0.0  # where a frame without a timestamp starts: where the last one ended
    try:
        inp.seek(int((origin + start_s) / time_base), stream=audio, backward=True)
        clock = start_s  # not before; a frame without a timestamp is taken as at the offset
    except av.FFmpegError as exc:
        log.info("seeking the source failed (%s); decoding it from the start", exc)
    frames = inp.decode(audio)
    for frame in frames:
        begins = float(frame.time - origin) if frame.time is not None else clock
        clock = begins + frame.samples / frame.sample_rate
        early = round((start_s - begins) * frame.sample_rate)
        if early >= frame.samples:
            continue  # ends before the offset (or less than a sample after it)
        yield _without_first(frame, early) if early > 0 else frame
        yield from frames
        return


def _without_first(frame: av.AudioFrame, samples: int) -> av.AudioFrame:
    """``frame`` less its first ``samples`` samples."""
    data = frame.to_ndarray()
    # Planar: one row per channel; packed: one row of interleaved samples.
    per_sample = 1 if frame.format.is_planar else len(frame.layout.channels)
    kept = numpy.ascontiguousarray(data[:, samples * per_sample :])
    cut = av.AudioFrame.from_ndarray(kept, format=frame.format.name, layout=frame.layout.name)
    cut.sample_rate = frame.sample_rate
    return cut


def _encode_stream(
    frames: Iterable[av.AudioFrame], audio, sink, rendition: Rendition, stopped: threading.Event
) -> None:
    fmt = rendition.format
    with av.open(sink, "w", format=fmt.muxer, options=BITEXACT) as out:
        layout = _layout(audio.codec_context.channels, rendition)
        stream = out.add_stream(fmt.codec, rate=fmt.sample_rate, layout=layout)
        stream.bit_rate = rendition.kbps * 1000
        stream.codec_context.options = dict(fmt.options)
        stream.codec_context.flags |= av.codec.context.Flags.bitexact
        for frame in frames:
            if stopped.is_set():
                raise Stopped
            frame.pts = None  # the encoder's own timeline, gapless
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)


_END = object()


class Transcode:
    """One running transcode: its encoder thread and the bounded queue that thread fills."""

    def __init__(
        self,
        reader: MediaReader,
        rendition: Rendition,
        keep: Callable[[], PendingRendition] | None,
        loop: asyncio.AbstractEventLoop,
        stopped: threading.Event,
        start_s: float = 0.0,
    ) -> None:
        self._reader = reader
        self._rendition = rendition
        self._keep = keep  # None: not cached
        self._start_s = start_s
        self._pending: PendingRendition | None = None
        self._loop = loop
        self._stopped = stopped
        self._queue: asyncio.Queue = asyncio.Queue(QUEUE_PIECES)
        self._piece = bytearray()
        self._first: bytes | None = None

    # -- in the encoder thread ---------------------------------------------------------------
    def write(self, data: bytes) -> int:
        """PyAV's sink."""
        if self._stopped.is_set():
            return len(data)  # the trailer of an abandoned file goes nowhere
        if self._pending is not None:
            self._pending.write(data)
        self._piece += data
        if len(self._piece) >= EMIT_BYTES:
            self._emit_piece()
        return len(data)

    def _emit_piece(self) -> None:
        if self._piece:
            piece, self._piece = bytes(self._piece), bytearray()
            self._emit(piece)

    def _emit(self, item) -> None:
        _wait(asyncio.run_coroutine_threadsafe(self._queue.put(item), self._loop), self._stopped)

    def run(self, finished: Callable[[TranscodeOutcome], None]) -> None:
        """The thread's work. The clean-up and ``finished`` (freeing the slot) come before the
        listener hears the end, so whoever sees a stream end sees the slot free and the
        rendition cached or nothing left behind; an abandoned part file goes last of all, so
        once it is gone the slot is free."""
        last: object = _END
        outcome = TranscodeOutcome.FAILED
        try:
            self._encode_and_keep()
            outcome = TranscodeOutcome.COMPLETED
        except Stopped:
            last, outcome = None, TranscodeOutcome.ABANDONED
        except TranscodeFailed as exc:
            last = exc
        except Exception as exc:
            log.exception("transcode to %s failed", self._rendition.tag)
            last = TranscodeFailed(str(exc))
        finally:
            self._close_reader()
            finished(outcome)
            if self._pending is not None:
                self._pending.discard()
        if last is not None and not self._stopped.is_set():
            with contextlib.suppress(Stopped):
                self._emit(last)

    def _encode_and_keep(self) -> None:
        try:
            self._pending = self._keep() if self._keep is not None else None
        except OSError as exc:
            log.warning("the %s rendition will not be cached: %s", self._rendition.tag, exc)
        encode(self._reader, self, self._rendition, self._stopped, self._start_s)
        self._emit_piece()
        if self._pending is not None:
            self._pending.commit()
            self._pending = None

    def _close_reader(self) -> None:
        try:
            self._reader.close()
        except Stopped:
            pass
        except Exception:
            log.exception("closing the transcode's source failed")

    # -- on the event loop -------------------------------------------------------------------
    async def begin(self) -> None:
        """Wait for the first bytes; raises ``TranscodeFailed`` when there will be none."""
        item = await self._queue.get()
        if isinstance(item, TranscodeFailed):
            raise item
        self._first = b"" if item is _END else item
        if item is _END:
            self._queue.put_nowait(_END)

    async def chunks(self) -> AsyncIterator[bytes]:
        """The encoded bytes as they come; leaving the iteration early stops the encoder."""
        try:
            if self._first:
                yield self._first
            while (item := await self._queue.get()) is not _END:
                if isinstance(item, TranscodeFailed):
                    log.warning("transcode to %s ended early: %s", self._rendition.tag, item)
                    return
                yield item
        finally:
            self.stop()

    def stop(self) -> None:
        self._stopped.set()


class Transcoder:
    """Starts transcodes, at most ``max_running`` at once, and keeps what they finish."""

    def __init__(self, *, cache: RenditionCache, max_running: int, metrics: Metrics) -> None:
        self._cache = cache
        self._max = max_running
        self._slots = threading.BoundedSemaphore(max_running) if max_running else None
        self._metrics = metrics

    async def cached(self, source_sha256: str, rendition: Rendition) -> StoredMedia | None:
        return await self._cache.open(rendition.file_name(source_sha256))

    async def start(
        self,
        source_sha256: str,
        media: StoredMedia,
        reopen: Callable[[], Awaitable[StoredMedia]],
        rendition: Rendition,
        start_s: float = 0.0,
    ) -> Transcode:
        """Start transcoding ``media`` (which this now owns) from ``start_s`` seconds into it,
        and wait for its first bytes; only a transcode from the start is cached. Raises
        ``TranscoderBusy`` or ``TranscodeFailed``."""
        if self._slots is None or not self._slots.acquire(blocking=False):
            await media.close()
            self._metrics.transcode_refused()
            raise TranscoderBusy(self._max)
        self._metrics.transcode_started()
        loop = asyncio.get_running_loop()
        stopped = threading.Event()
        reader = MediaReader(media, reopen, loop, stopped)
        name = rendition.file_name(source_sha256)
        keep = (lambda: self._cache.begin(name)) if start_s == 0 else None
        transcode = Transcode(reader, rendition, keep, loop, stopped, start_s)
        threading.Thread(
            target=transcode.run,
            args=(self._finished,),
            name=f"transcode-{rendition.tag}",
            daemon=True,
        ).start()
        try:
            await transcode.begin()
        except BaseException:
            transcode.stop()
            raise
        return transcode

    def _finished(self, outcome: TranscodeOutcome) -> None:
        self._slots.release()
        self._metrics.transcode_finished(outcome)
