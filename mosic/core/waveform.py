"""Waveform peaks: computed once per clip from its decoded audio, served at any resolution.

When a clip is added, its audio is decoded (PyAV's FFmpeg), mixed to mono, and reduced to the
minimum and maximum of every block of ``base_samples_per_pixel`` samples: 256 at the file's own
rate, finer for short clips so that every resolution a client may ask for is drawn from at
least ten stored blocks a point, and coarser for very long ones so that the stored peaks stay
under ``MAX_BASE_PIXELS``. They are kept as an audiowaveform ``.dat`` file (version 2, 8 bits).
The mono mix is FFmpeg's resampler's, to the bit: one or two channels are mixed in numpy, the
decoded frames gathered into batches first (``_mono``); more channels by the resampler itself.

A request for ``points`` picks ``samples_per_pixel = ceil(samples / points)``, so ``length`` is at
most ``points`` and, once a clip has a hundred samples a point, within 1% of it. For shorter
clips, where rounding up would cost more than 1% of the points, ``length`` is exactly
``min(points, samples)``, each point spans ``samples / length`` samples, ``samples_per_pixel``
is that rounded down, and ``sample_rate`` is the rate the points are drawn at (the file's rate
scaled by the same factor), so ``index * samples_per_pixel / sample_rate`` is still the time of
each point and ``length * samples_per_pixel / sample_rate`` the duration, as players compute
them. Each point is the min and max of the stored blocks its span of samples starts in.

The same pass measures the clip's loudness (``mosic.core.loudness``) when asked: every
decoded frame, all its channels, goes through FFmpeg's EBU R128 meter on its way to the mono
mix, so the audio is decoded once for both (``decode``).

Decoding holds the GIL for its Python-side frame handling, so at most
``DECODE_CONCURRENCY`` run at once, never on the event loop: an upload's (peaks of audio up
to five minutes, before its 201) in a worker thread, a stored file's (``MediaStore.inspect``:
the loudness and long audio's peaks after the 201) in the store's low-priority worker process
on the disk, in a thread on S3.

A clip's peaks are stored in the media store named by its audio's hash (``blob_name``), so
identical audio shares them; ``Waveforms`` draws, keeps and reads them back.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import struct
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

import av
import numpy as np

from mosic.core import replay_gain
from mosic.core.loudness import Loudness, LoudnessMeter
from mosic.media.storage import MediaMissing, MediaStore
from mosic.persistence.models import WholeClip

log = logging.getLogger(__name__)

BASE_SAMPLES_PER_PIXEL = 256
# Stored peaks for a clip shorter than this many blocks of 256 use finer blocks, down to one
# sample: POINTS_MAX points at ten blocks each.
MIN_BASE_PIXELS = 100_000
# About 2.4 hours at 256 samples a block and 48 kHz; longer clips get coarser blocks, so a
# stored waveform never passes 8 MiB.
MAX_BASE_PIXELS = 4 * 1024 * 1024
POINTS_MAX = 10_000
DEFAULT_POINTS = 1000
# Decoded frames (4096 samples or fewer) are mixed and reduced this many samples or more at a
# time: numpy's cost per call, not per sample, is most of what one frame at a time pays. Not
# many more: measured, the arrays of 65,536-sample stereo batches kept coming from malloc as
# fresh pages, whose faults cost more than the fewer calls saved.
BATCH_SAMPLES = 16_384
# PCM demuxers (WAV, W64) cut 4,096-sample packets by default, so a long WAV made tens of
# thousands of frames, each with its Python around it; 64 KiB packets make eight times fewer
# (larger ones cost more in fresh pages than they saved). Other formats ignore the option.
DEMUXER_OPTIONS = {"max_size": "65536"}
# What FFmpeg's resampler weighs each channel with when it mixes one or two to mono, and so
# what the peaks always were: stereo at -3 dB a channel (its matrix is not normalised for
# float output), so a loud stereo file peaks above full scale and clips.
_MONO_WEIGHT = {1: 1.0, 2: math.sqrt(0.5)}
# How many clips are decoded at once in this process: two keep one core for the server.
DECODE_CONCURRENCY = 2
# ``length`` must be at least this share of min(points, samples).
LENGTH_TOLERANCE = 0.99
DAT_VERSION = 2
DAT_FLAG_8_BIT = 1
_DAT_HEADER = struct.Struct("<iIiiIi")  # version, flags, rate, samples/pixel, length, channels
WAVEFORM_SUFFIX = ".dat"  # the audiowaveform binary format
WAVEFORM_CONTENT_TYPE = "application/octet-stream"  # the format has no registered type


class NoWaveform(Exception):
    """The clip has no waveform: it is metadata-only, or its audio could not be decoded."""


class Undecodable(Exception):
    """The audio could not be decoded (mutagen read its tags, FFmpeg cannot play it)."""


@dataclass(frozen=True)
class Peaks:
    sample_rate: int
    samples_per_pixel: int
    mins: np.ndarray  # int8, one per pixel
    maxs: np.ndarray

    @property
    def length(self) -> int:
        return len(self.mins)

    @property
    def samples(self) -> int:
        # The last block may be partial; the error is under one block, a few milliseconds.
        return self.length * self.samples_per_pixel

    def to_dat(self) -> bytes:
        """The audiowaveform binary format, version 2, 8-bit, one channel."""
        header = _DAT_HEADER.pack(
            DAT_VERSION, DAT_FLAG_8_BIT, self.sample_rate, self.samples_per_pixel, self.length, 1
        )
        return header + _interleave(self.mins, self.maxs).tobytes()

    def to_json(self) -> dict:
        """The audiowaveform JSON format, version 2, as peaks.js and waveform-data read."""
        return {
            "version": DAT_VERSION,
            "channels": 1,
            "sample_rate": self.sample_rate,
            "samples_per_pixel": self.samples_per_pixel,
            "bits": 8,
            "length": self.length,
            "data": _interleave(self.mins, self.maxs).tolist(),
        }

    @classmethod
    def from_dat(cls, data: bytes) -> Peaks:
        version, _, rate, spp, length, _ = _DAT_HEADER.unpack_from(data)
        values = np.frombuffer(data, dtype=np.int8, offset=_DAT_HEADER.size, count=2 * length)
        return cls(rate, spp, values[0::2], values[1::2])

    def resample(self, points: int) -> Peaks:
        """The peaks at the resolution that fits ``points`` (module docstring)."""
        samples = self.samples
        target = min(points, samples)
        spp = max(1, math.ceil(samples / points))
        length, rate, span = math.ceil(samples / spp), self.sample_rate, float(spp)
        if length < target * LENGTH_TOLERANCE:
            length = target
            spp = samples // length
            span = samples / length
            # The rate these points are drawn at: time = index * spp / rate stays true.
            rate = round(self.sample_rate * length * spp / samples)
        starts = (np.arange(length) * span // self.samples_per_pixel).astype(np.int64)
        starts = np.minimum(starts, self.length - 1)
        return Peaks(
            rate,
            spp,
            np.minimum.reduceat(self.mins, starts),
            np.maximum.reduceat(self.maxs, starts),
        )


def _interleave(mins: np.ndarray, maxs: np.ndarray) -> np.ndarray:
    pairs = np.empty(2 * len(mins), dtype=np.int8)
    pairs[0::2], pairs[1::2] = mins, maxs
    return pairs


def base_samples_per_pixel(samples: int) -> int:
    spp = min(BASE_SAMPLES_PER_PIXEL, max(1, samples // MIN_BASE_PIXELS))
    return max(spp, math.ceil(samples / MAX_BASE_PIXELS))


@dataclass(frozen=True)
class Decoded:
    """What one decoding pass gives: the peaks, and the loudness when it was measured
    (None when not asked for, or when FFmpeg's meter could not take the audio)."""

    peaks: Peaks
    loudness: Loudness | None = None


def decode(fileobj: BinaryIO, *, measure: bool = True) -> Decoded:
    """Decode ``fileobj`` once: its stored peaks, and its loudness when ``measure``; raises
    ``Undecodable``. Blocking: run it in a thread (as ``Waveforms.keep`` does)."""
    meter = LoudnessMeter() if measure else None
    try:
        with av.open(fileobj, mode="r") as container:
            stream = container.streams.audio[0]
            if stream.codec_context is None:  # a codec this FFmpeg build does not have
                raise Undecodable("the audio's codec cannot be decoded")
            rate = stream.codec_context.sample_rate
            spp = base_samples_per_pixel(_expected_samples(container, stream, rate))
            reducer = _BlockReducer(spp)
            frames = container.decode(stream)
            if meter is not None:
                frames = meter.tap(frames)
            for batch, kind in _batches(_one_or_two_channels(frames, rate)):
                reducer.add(*_mono(batch, kind))
    except (av.FFmpegError, IndexError, ValueError) as exc:
        raise Undecodable(f"the audio could not be decoded: {exc}") from None
    mins, maxs = reducer.finish()
    if not len(mins):
        raise Undecodable("the audio decoded to no samples")
    return Decoded(Peaks(rate, spp, mins, maxs), meter.result() if meter is not None else None)


def compute_peaks(fileobj: BinaryIO) -> Peaks:
    """Decode ``fileobj`` to mono and reduce it to stored peaks (no loudness); raises
    ``Undecodable``. Blocking."""
    return decode(fileobj, measure=False).peaks


def _expected_samples(container, stream, rate: int) -> int:
    if stream.duration is not None and stream.time_base is not None:
        return int(stream.duration * stream.time_base * rate)
    if container.duration is not None:
        return int(container.duration / av.time_base * rate)
    return 0


def _one_or_two_channels(frames: Iterable[av.AudioFrame], rate: int) -> Iterator[Kinded]:
    """The frames with their kind, those of more than two channels mixed to mono by FFmpeg's
    resampler: it weighs surround channels by their position (centre, sides, no LFE), which
    is not worth copying for the few such uploads."""
    resampler = None
    for frame in frames:
        # Read once a frame: PyAV makes a new object for each ``format`` and ``layout``.
        kind = frame.format.name, frame.layout.nb_channels
        if kind[1] in _MONO_WEIGHT:
            yield frame, kind
            continue
        resampler = resampler or av.AudioResampler(format="flt", layout="mono", rate=rate)
        for mixed in resampler.resample(frame):
            yield mixed, _RESAMPLED
    if resampler is not None:
        for mixed in resampler.resample(None):
            yield mixed, _RESAMPLED


Kind = tuple[str, int]  # sample format, channels
Kinded = tuple[av.AudioFrame, Kind]
_RESAMPLED = ("flt", 1)


def _batches(frames: Iterable[Kinded]) -> Iterator[tuple[list[av.AudioFrame], Kind]]:
    """The frames in runs of at least ``BATCH_SAMPLES`` samples (fewer at the end), each of
    one sample format and channel count, so that a run is mixed and reduced in one go."""
    batch: list[av.AudioFrame] = []
    samples, current = 0, _RESAMPLED
    for frame, kind in frames:
        if batch and kind != current:
            yield batch, current
            batch, samples = [], 0
        current = kind
        batch.append(frame)
        samples += frame.samples
        if samples >= BATCH_SAMPLES:
            yield batch, current
            batch, samples = [], 0
    if batch:
        yield batch, current


def _samples(frames: list[av.AudioFrame], kind: Kind) -> np.ndarray:
    """The frames' samples as one array, a row per plane (as ``AudioFrame.to_ndarray``,
    without its cost a frame): each plane's buffer seen as numbers, then joined."""
    name, channels = kind
    planar = name.endswith("p")
    dtype = _DTYPES[name.removesuffix("p")]
    rows = [
        [np.frombuffer(plane, dtype, count=frame.samples * (1 if planar else channels))
         for plane in frame.planes]
        for frame in frames
    ]  # fmt: skip
    joined = [np.concatenate(row) for row in zip(*rows, strict=True)]
    # One plane (packed, or mono) is already the array: a view of it, not a copy.
    return joined[0][np.newaxis] if len(joined) == 1 else np.vstack(joined)


_DTYPES = {"u8": np.uint8, "s16": np.int16, "s32": np.int32, "s64": np.int64,
           "flt": np.float32, "dbl": np.float64}  # fmt: skip


def _mono(frames: list[av.AudioFrame], kind: Kind) -> tuple[np.ndarray, Scale]:
    """Frames of one sample format and one or two channels, mixed to mono as FFmpeg's
    resampler mixes them (the same roundings, to the last bit but where it rounds a stereo
    sum differently): the sum of the channels, and the scaling that makes it float32 from
    -1 to 1. Every step of that scaling is monotonic, so the reducer takes the extremes of
    the sum first and scales only those: for 8- and 16-bit audio the sum stays in integers
    (exact, as the float32 sum would be), the cheap common case of a WAV upload."""
    name, channels = kind
    samples = _samples(frames, kind)
    number, bits = samples.dtype.kind, 8 * samples.dtype.itemsize  # "i", "u" or "f"
    if not name.endswith("p"):
        # Packed formats come as one row of interleaved samples.
        samples = samples.reshape(-1, channels).T
    if channels == 1:
        mixed = samples[0]
    elif number in "iu" and bits <= 16:
        mixed = samples[0].astype(np.int32) + samples[1]
    else:
        # To float32 before mixing, as the resampler converts before it mixes.
        values = samples.astype(np.float32, copy=False)
        mixed = values[0] + values[1]
    offset = 2.0 ** (bits - 1) * channels if number == "u" else 0.0  # unsigned: silence is 128
    factor = _MONO_WEIGHT[channels] * (1.0 if number == "f" else 2.0 ** (1 - bits))
    return mixed, functools.partial(_full_scale, offset=offset, factor=factor)


Scale = Callable[[np.ndarray], np.ndarray]


def _full_scale(mixed: np.ndarray, *, offset: float, factor: float) -> np.ndarray:
    values = mixed.astype(np.float32)
    if offset:
        values -= offset
    values *= factor
    return values


class _BlockReducer:
    """Min and max of every ``size`` samples, fed chunk by chunk (memory stays flat)."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._carry = np.empty(0, dtype=np.float32)  # full scale, fewer than ``size``
        # Bytes, not a list of small arrays: a long file makes tens of thousands of them,
        # and their headers outweighed the peaks (+27 MiB of RSS for a 1 GiB upload).
        self._mins = bytearray()
        self._maxs = bytearray()

    def add(self, mixed: np.ndarray, scale: Scale) -> None:
        if len(self._carry):
            # The block begun in the previous batch, finished at full scale.
            head = scale(mixed[: self._size - len(self._carry)])
            self._carry = np.concatenate((self._carry, head))
            mixed = mixed[len(head) :]
            if len(self._carry) < self._size:
                return
            self._keep(self._carry[None].min(axis=1), self._carry[None].max(axis=1))
        whole = len(mixed) // self._size * self._size
        if whole:
            blocks = mixed[:whole].reshape(-1, self._size)
            self._keep(scale(blocks.min(axis=1)), scale(blocks.max(axis=1)))
        self._carry = scale(mixed[whole:])

    def _keep(self, mins: np.ndarray, maxs: np.ndarray) -> None:
        self._mins += _to_int8(mins).tobytes()
        self._maxs += _to_int8(maxs).tobytes()

    def finish(self) -> tuple[np.ndarray, np.ndarray]:
        if len(self._carry):
            self._keep(self._carry[None].min(axis=1), self._carry[None].max(axis=1))
            self._carry = self._carry[:0]
        return (
            np.frombuffer(self._mins, dtype=np.int8),
            np.frombuffer(self._maxs, dtype=np.int8),
        )


def _to_int8(values: np.ndarray) -> np.ndarray:
    # Full scale (-1.0 .. 1.0) onto the 8-bit range, as audiowaveform maps 16-bit samples.
    scaled = np.round(values * 128)
    return np.minimum(np.maximum(scaled, -128, out=scaled), 127, out=scaled).astype(np.int8)


def blob_name(sha256: str) -> str:
    """The name the peaks of the audio with this hash are stored under."""
    return f"{sha256}{WAVEFORM_SUFFIX}"


class Waveforms:
    """Draws clips' peaks (and measures their loudness) off the event loop, at most
    ``concurrency`` at once, keeps the peaks in the media store and reads them back."""

    def __init__(self, *, store: MediaStore, concurrency: int = DECODE_CONCURRENCY) -> None:
        self._store = store
        self._slots = asyncio.Semaphore(concurrency)

    async def get(self, clip: WholeClip) -> Peaks:
        """The clip's stored peaks, at full resolution; raises ``NoWaveform``."""
        if clip.waveform_name is None:
            raise NoWaveform(clip.id)
        try:
            return Peaks.from_dat(await self._store.get(clip.waveform_name))
        except MediaMissing:
            raise NoWaveform(clip.id) from None

    async def keep(self, sha256: str, inspect, *, measure: bool = False) -> dict:
        """Compute and store the peaks of the audio ``inspect`` reads, and measure its
        loudness in the same pass when ``measure``; the columns that name the peaks and
        hold the measured figures (``replay_gain.measured_columns``), or only the figures'
        "none" when the audio cannot be decoded."""
        decoded = await self.draw(inspect, measure=measure)
        columns = replay_gain.measured_columns(decoded and decoded.loudness) if measure else {}
        if decoded is None:
            return columns
        name = blob_name(sha256)
        await self._store.put(name, decoded.peaks.to_dat(), content_type=WAVEFORM_CONTENT_TYPE)
        return {**columns, "waveform_name": name}

    async def draw(
        self,
        inspect: Callable[[Callable[[BinaryIO], Decoded]], Awaitable[Decoded]],
        *,
        measure: bool,
    ) -> Decoded | None:
        """One decoding pass over the audio that ``inspect`` (``Incoming.inspect`` or a
        stored file's) hands to a reader in a thread; None when it cannot be decoded."""
        async with self._slots:
            try:
                return await inspect(functools.partial(decode, measure=measure))
            except Undecodable as exc:
                log.warning("no waveform: %s", exc)
                return None
