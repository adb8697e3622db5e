"""ReplayGain figures: a clip's track and album gain (dB) and peak (linear), as ReplayGain
2.0 has them (reference -18 LUFS), read from its tags when present, else measured
(``mosic.core.loudness``), and the album's combined over its tracks.

Tags win, figure by figure: ``REPLAYGAIN_TRACK_GAIN``, ``_TRACK_PEAK``, ``_ALBUM_GAIN``,
``_ALBUM_PEAK`` (ID3 ``TXXX``, Vorbis comments, MP4 ``----:com.apple.iTunes:replaygain_*``),
and in Opus ``R128_TRACK_GAIN`` / ``R128_ALBUM_GAIN`` (Q7.8 dB to reach -23 LUFS, the EBU's
reference: +5 dB to reach ReplayGain's -18). A file whose tags hold its track gain and peak
is not measured; one whose tags hold the gain only (Opus R128 has no peak) is measured for
its peak. A file's own album tags win over the album gain Mosic combines.

The columns (migration 0011): ``track_gain_db``, ``track_peak``, ``album_gain_db``,
``album_peak``; ``gated_seconds``, what a measured track weighs in its album
(``album_figures``); ``album_gain_tagged`` when the album figures are the file's own;
``gain_source`` says where the track's figures came from: ``tags``, ``measured`` (the gain
still null for silence or audio shorter than one 400 ms block), ``none`` (no audio, or
audio FFmpeg cannot decode); null while they are still to be read (``PENDING``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass

from mosic.core.loudness import Loudness

REFERENCE_LUFS = -18.0  # ReplayGain 2.0
R128_REFERENCE_LUFS = -23.0  # EBU R128, what Opus's R128_* gains reach
R128_SCALE = 256  # Q7.8: the tag's integer is 1/256 dB
# Gains past this are not what any tagger meant (a misread, or junk); they are ignored.
GAIN_LIMIT_DB = 64.0
# Peaks above full scale are real (float files, lossy encoders' overshoot), not this much.
PEAK_LIMIT = 100.0
GAIN_DECIMALS = 2
PEAK_DECIMALS = 6
TAGS, MEASURED, NONE = "tags", "measured", "none"
# Columns of a clip whose audio is new (a changed file): everything to be read again.
PENDING = {"track_gain_db": None, "track_peak": None, "gated_seconds": None,
           "album_gain_tagged": None, "gain_source": None}  # fmt: skip
# Every column, as a new row without figures has them: rows inserted together must all
# name the same columns.
UNREAD = {**PENDING, "album_gain_db": None, "album_peak": None}
_NUMBER = re.compile(r"\s*([+-]?(?:\d+(?:\.\d*)?|\.\d+))\s*(?:db)?\s*$", re.IGNORECASE)
# Tag names, lower case, as every format's reader hands them over.
TRACK_GAIN, TRACK_PEAK = "replaygain_track_gain", "replaygain_track_peak"
ALBUM_GAIN, ALBUM_PEAK = "replaygain_album_gain", "replaygain_album_peak"
R128_TRACK, R128_ALBUM = "r128_track_gain", "r128_album_gain"
TAG_NAMES = (TRACK_GAIN, TRACK_PEAK, ALBUM_GAIN, ALBUM_PEAK, R128_TRACK, R128_ALBUM)


@dataclass(frozen=True)
class ReplayGain:
    """The four figures, each None when unknown (the REST ``replay_gain`` object)."""

    track_gain_db: float | None = None
    track_peak: float | None = None
    album_gain_db: float | None = None
    album_peak: float | None = None

    @property
    def needs_measure(self) -> bool:
        """Whether the audio must be measured: the tags lack the track's gain or peak."""
        return self.track_gain_db is None or self.track_peak is None


NO_TAGS = ReplayGain()


def from_tags(texts: dict[str, str], *, r128: bool = False) -> ReplayGain:
    """The figures of a file's tags (``texts``: lower-case names of ``TAG_NAMES`` to their
    text); ``r128`` for Ogg Opus, whose R128 gains win over ReplayGain tags there."""
    track_gain, album_gain = _gain(texts.get(TRACK_GAIN)), _gain(texts.get(ALBUM_GAIN))
    if r128:
        track_gain = _r128(texts.get(R128_TRACK), track_gain)
        album_gain = _r128(texts.get(R128_ALBUM), album_gain)
    return ReplayGain(
        track_gain, _peak(texts.get(TRACK_PEAK)), album_gain, _peak(texts.get(ALBUM_PEAK))
    )


def _number(text: str | None) -> float | None:
    match = _NUMBER.match(text or "")
    if match is None:
        return None
    value = float(match.group(1))
    return value if math.isfinite(value) else None


def _gain(text: str | None) -> float | None:
    return _bounded(_number(text))


def _bounded(gain: float | None) -> float | None:
    if gain is None or abs(gain) > GAIN_LIMIT_DB:
        return None
    return round(gain, GAIN_DECIMALS)


def _peak(text: str | None) -> float | None:
    value = _number(text)
    if value is None or not 0 <= value <= PEAK_LIMIT:
        return None
    return round(value, PEAK_DECIMALS)


def _r128(text: str | None, otherwise: float | None) -> float | None:
    """An Opus R128 gain (a whole number of 1/256 dB to -23 LUFS) as a gain to -18 LUFS;
    ``otherwise`` when there is none, or it is no such number."""
    value = _number(text)
    if value is None or value != int(value):
        return otherwise
    return _bounded(value / R128_SCALE + REFERENCE_LUFS - R128_REFERENCE_LUFS)


def tag_columns(tags: ReplayGain) -> dict:
    """The columns a file's tags settle (nothing for a figure they lack): its track's, when
    the tags hold both gain and peak; its album's as its own, when they hold the album
    gain."""
    columns = {}
    if tags.track_gain_db is not None:
        columns["track_gain_db"] = tags.track_gain_db
    if tags.track_peak is not None:
        columns["track_peak"] = tags.track_peak
    if not tags.needs_measure:
        columns["gain_source"] = TAGS
    if tags.album_gain_db is not None:
        columns.update(
            album_gain_db=tags.album_gain_db, album_peak=tags.album_peak, album_gain_tagged=True
        )
    return columns


def measured_columns(loudness: Loudness | None) -> dict:
    """The track's columns from a measure (None: the audio could not be measured)."""
    if loudness is None:
        return {"gain_source": NONE}
    peak = loudness.true_peak
    return {
        "track_gain_db": gain_of(loudness.integrated),
        "track_peak": None if peak is None else round(peak, PEAK_DECIMALS),
        "gated_seconds": loudness.gated_seconds,
        "gain_source": MEASURED,
    }


def settle(tags: ReplayGain, columns: dict) -> dict:
    """``columns`` (a measure's, and any others) with the tags' figures over the measured
    ones; the source is the tags' when the gain is theirs."""
    settled = {**columns, **tag_columns(tags)}
    if tags.track_gain_db is not None:
        settled["gain_source"] = TAGS
    return settled


def gain_of(integrated: float | None) -> float | None:
    """The ReplayGain 2.0 gain of an integrated loudness (LUFS)."""
    if integrated is None:
        return None
    return round(REFERENCE_LUFS - integrated, GAIN_DECIMALS)


def album_figures(tracks: Iterable[tuple[float | None, float | None, float | None]]):
    """An album's (gain, peak) from its tracks' (seconds, gain, peak): the loudness of the
    album played through is the mean of the tracks' loudness powers, each weighed by the
    time its loudness stands for (its gated seconds when measured, else its duration), so
    a track's silences weigh nothing, as BS.1770's gates leave them out of the album played
    through. (Only the album's own relative gate is not applied: a track more than 10 LU
    under the album's mean still counts; BS.1770 would drop it.) The peak is the highest.
    Tracks without a gain (silent, too short) add nothing; (None, None) when none has one."""
    power = seconds = 0.0
    peak = None
    for weight, gain, track_peak in tracks:
        if track_peak is not None:
            peak = track_peak if peak is None else max(peak, track_peak)
        if gain is None or not weight or weight <= 0:
            continue
        power += weight * 10 ** ((REFERENCE_LUFS - gain) / 10)
        seconds += weight
    if not seconds:
        return None, None
    return gain_of(10 * math.log10(power / seconds)), peak
