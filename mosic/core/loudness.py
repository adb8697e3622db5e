"""Loudness measured from decoded audio: EBU R128 integrated loudness and true peak.

The measure is FFmpeg's own ``ebur128`` filter (ITU-R BS.1770: K-weighting, 400 ms blocks
every 100 ms, the absolute gate at -70 LUFS and the relative one 10 LU under the ungated
mean; the true peak over audio oversampled to 192 kHz), in a libavfilter graph that is fed
the very frames the waveform's peaks are drawn from (``waveform.decode``): the audio is
decoded once for both. The filter wants 48 kHz doubles; libavfilter converts each clip's
frames to that as they go in, as ``ffmpeg -af ebur128`` does. Every channel is measured
with the standard's weights (surround channels +1.5 dB, LFE none).

The filter writes its running figures into the metadata of each 100 ms frame it passes on;
the last such frame holds the clip's. They are text with three decimals, so a true peak is
known to 0.0005 of full scale. Each frame also holds the loudness of the 400 ms block that
ends with it: from those, the time the integrated loudness stands for (its blocks that
passed both gates, ``gated_seconds``), which weighs the track in its album's loudness.

Nothing to integrate: audio shorter than one 400 ms block, or under the absolute gate all
through (silence), has no integrated loudness (``integrated`` None); audio shorter than
100 ms has no true peak either. A clip whose frames change their rate or channels half way
(rare streams) is not measured at all.
"""

from __future__ import annotations

import array
import collections
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction

import av
import av.filter
import numpy as np

log = logging.getLogger(__name__)

# The filter's absolute gate, and what it reports as integrated loudness before any block
# passed it: a figure at or under this is "nothing measured".
ABSOLUTE_GATE_LUFS = -70.0
# The relative gate: blocks this far under the mean of those past the absolute gate.
RELATIVE_GATE_LU = 10.0
BLOCK_STEP_S = 0.1  # a block ends every 100 ms
# Frame logging off: the figures come from the frames' metadata, not from the log.
_EBUR128 = "peak=true:metadata=1:framelog=quiet"
_INTEGRATED = "lavfi.r128.I"
_MOMENTARY = "lavfi.r128.M"
_TRUE_PEAK_PREFIX = "lavfi.r128.true_peaks_ch"
# The filter's last frame may be a partial 100 ms one, without figures: the one before has.
_KEPT_FRAMES = 2


@dataclass(frozen=True)
class Loudness:
    """A clip's measured loudness: integrated (LUFS), true peak (linear, 1.0 = full scale)
    and the seconds of blocks the integrated loudness is made of; each None when the audio
    was too short or too quiet to have one."""

    integrated: float | None
    true_peak: float | None
    gated_seconds: float | None = None


class LoudnessMeter:
    """Measures the frames it is given (``tap``), then ``result``. Never raises for the
    audio: a graph FFmpeg refuses leaves the clip unmeasured (``result`` None)."""

    def __init__(self) -> None:
        self._graph: av.filter.Graph | None = None
        self._source = None
        self._sink = None
        self._kind: tuple | None = None
        self._failed = False
        self._last: collections.deque[av.AudioFrame] = collections.deque(maxlen=_KEPT_FRAMES)
        self._blocks = array.array("d")  # each 400 ms block's loudness, every 100 ms

    def tap(self, frames: Iterable[av.AudioFrame]) -> Iterator[av.AudioFrame]:
        """The frames, unchanged, each measured on its way through."""
        for frame in frames:
            self.add(frame)
            yield frame

    def add(self, frame: av.AudioFrame) -> None:
        if self._failed:
            return
        try:
            if self._graph is None:
                self._start(frame)
            elif _kind(frame) != self._kind:
                self._fail("its frames changed rate or channels")
                return
            self._source.push(frame)
            self._drain()
        except (av.FFmpegError, ValueError) as exc:
            self._fail(str(exc))

    def result(self) -> Loudness | None:
        """The clip's loudness, once every frame went in; None when it could not be
        measured."""
        if self._graph is None or self._failed:
            return None
        try:
            self._source.push(None)
            self._drain()
        except (av.FFmpegError, ValueError) as exc:
            self._fail(str(exc))
            return None
        return _figures(self._last, np.frombuffer(self._blocks, dtype=np.float64))

    def _start(self, frame: av.AudioFrame) -> None:
        self._kind = _kind(frame)
        graph = av.filter.Graph()
        self._source = graph.add_abuffer(
            format=frame.format.name,
            sample_rate=frame.sample_rate,
            layout=frame.layout.name,
            channels=frame.layout.nb_channels,
            time_base=frame.time_base or Fraction(1, frame.sample_rate),
        )
        meter = graph.add("ebur128", _EBUR128)
        self._sink = graph.add("abuffersink")
        self._source.link_to(meter)
        meter.link_to(self._sink)
        graph.configure()
        self._graph = graph

    def _drain(self) -> None:
        while True:
            try:
                frame = self._sink.pull()
            except (av.BlockingIOError, av.EOFError):
                return
            self._last.append(frame)
            block = frame.metadata.get(_MOMENTARY)
            if block is not None:
                self._blocks.append(float(block))

    def _fail(self, why: str) -> None:
        log.warning("loudness not measured: %s", why)
        self._failed = True
        self._last.clear()


def _kind(frame: av.AudioFrame) -> tuple:
    return frame.format.name, frame.sample_rate, frame.layout.name


def _figures(frames: Iterable[av.AudioFrame], blocks: np.ndarray) -> Loudness:
    """The figures of the last frame that carries them (none: too short to measure)."""
    for frame in reversed(list(frames)):
        metadata = frame.metadata
        if _INTEGRATED not in metadata:
            continue
        integrated = float(metadata[_INTEGRATED])
        peaks = [float(v) for k, v in metadata.items() if k.startswith(_TRUE_PEAK_PREFIX)]
        if integrated <= ABSOLUTE_GATE_LUFS:
            return Loudness(None, max(peaks) if peaks else None)
        return Loudness(integrated, max(peaks) if peaks else None, gated_seconds(blocks))
    return Loudness(None, None)


def gated_seconds(blocks: np.ndarray) -> float | None:
    """The time of the blocks (their loudness, one every 100 ms) that pass BS.1770's gates:
    the absolute one, and the relative one under the mean power of those past it."""
    loud = blocks[blocks > ABSOLUTE_GATE_LUFS]
    if not len(loud):
        return None
    # The -0.691 dB of the loudness formula cancels between the blocks and their mean.
    relative = 10 * np.log10(np.mean(10 ** (loud / 10))) - RELATIVE_GATE_LU
    return round(float(np.count_nonzero(loud >= relative)) * BLOCK_STEP_S, 1)
