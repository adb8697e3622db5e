"""Whether a client plays a song's file as it is or needs it transcoded, and to what: the rule
behind OpenSubsonic's ``getTranscodeDecision`` (extension ``transcoding``), from the
capabilities the client describes (its ``ClientInfo``).

Direct play when one of the client's direct-play profiles takes the file's container, codec
and channels over HTTP, within its ``maxAudioBitrate``, and the file meets every *required*
limitation of the codec's profile (a figure Mosic does not know is taken as met). Otherwise the
first transcoding profile, in the client's order, that asks for a format Mosic makes (MP3, or
Opus in Ogg) over HTTP; HLS is never offered. Its bitrate is ``maxTranscodingAudioBitrate``
(else the format's default), held under ``maxAudioBitrate`` and the codec profile's
``audioBitrate`` limit, within 32-320 kbit/s. The decision's ``params`` (the
``transcodeParams`` handed back to ``getTranscodeStream``) is ``raw`` or ``<format>-<kbps>``:
stateless, so it stays valid as long as the server runs this code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import PurePosixPath

from mosic.media import transcode
from mosic.media.transcode import Rendition

HTTP = "http"
RAW = "raw"
# Mosic's renditions are mono or stereo.
MAX_CHANNELS = 2
# A file suffix's container and codec, as clients name them (and other names they use).
SUFFIXES = {
    "mp3": ("mp3", "mp3", {"mp3", "mpeg"}),
    "ogg": ("ogg", "vorbis", {"ogg", "oga"}),
    "oga": ("ogg", "vorbis", {"ogg", "oga"}),
    "opus": ("ogg", "opus", {"ogg", "opus"}),
    "flac": ("flac", "flac", {"flac"}),
    "wav": ("wav", "pcm", {"wav", "wave"}),
    "aif": ("aiff", "pcm", {"aiff", "aif"}),
    "aiff": ("aiff", "pcm", {"aiff", "aif"}),
    "m4a": ("mp4", "aac", {"mp4", "m4a"}),
    "aac": ("aac", "aac", {"aac", "adts"}),
}
# What a transcoding profile's (container, codec) names, in Mosic's formats.
MADE = {("mp3", "mp3"): "mp3", ("ogg", "opus"): "opus", ("opus", "opus"): "opus"}
OUTPUT_CONTAINER = {"mp3": "mp3", "opus": "ogg"}


class BadClientInfo(ValueError):
    """The client's capabilities are not the shape OpenSubsonic describes."""


@dataclass(frozen=True)
class Stream:
    """OpenSubsonic's ``StreamDetails``: bitrate in bit/s; None where unknown."""

    container: str
    codec: str
    channels: int | None = None
    bitrate: int | None = None
    sample_rate: int | None = None
    protocol: str = HTTP
    names: frozenset[str] = frozenset()  # what clients may call the container

    def details(self) -> dict:
        found = {
            "protocol": self.protocol,
            "container": self.container,
            "codec": self.codec,
            "audioChannels": self.channels,
            "audioBitrate": self.bitrate,
            "audioSamplerate": self.sample_rate,
        }
        return {k: v for k, v in found.items() if v is not None}


@dataclass(frozen=True)
class Decision:
    direct: bool
    rendition: Rendition | None = None
    reasons: list[str] = field(default_factory=list)
    error: str = ""

    @property
    def params(self) -> str | None:
        if self.direct:
            return RAW
        return self.rendition.tag if self.rendition else None


def source_stream(suffix: str, channels, kbps, sample_rate) -> Stream:
    """A stored file's stream, from its suffix and what its tags said (``kbps``)."""
    suffix = suffix.lower().lstrip(".")
    container, codec, names = SUFFIXES.get(suffix, (suffix, suffix, {suffix}))
    bitrate = kbps * 1000 if kbps else None
    return Stream(container, codec, channels, bitrate, sample_rate, names=frozenset(names))


def suffix_of(file_name: str | None) -> str:
    return PurePosixPath(file_name or "").suffix


def decide(info: dict, source: Stream) -> Decision:
    """The decision for ``source`` given the client's ``info``; ``BadClientInfo`` when
    ``info`` is not an object with lists where lists belong."""
    if not isinstance(info, dict):
        raise BadClientInfo("the body must be a JSON object (OpenSubsonic ClientInfo)")
    reasons = []
    for profile in _objects(info, "directPlayProfiles"):
        why = _not_direct(profile, info, source)
        if why is None:
            reasons = []
            break
        reasons.append(why)
    else:
        reasons = reasons or ["NoDirectPlayProfile"]
    renditions = (_rendition(profile, info) for profile in _objects(info, "transcodingProfiles"))
    rendition = next((r for r in renditions if r is not None), None)
    if not reasons or rendition is not None:
        return Decision(direct=not reasons, rendition=rendition, reasons=reasons)
    error = "no transcoding profile asks for a format Mosic makes (mp3, or opus in ogg, by http)"
    return Decision(direct=False, reasons=reasons, error=error)


def target_stream(rendition: Rendition, source: Stream) -> Stream:
    fmt = rendition.format
    channels = min(source.channels or MAX_CHANNELS, MAX_CHANNELS)
    container = OUTPUT_CONTAINER[fmt.name]
    return Stream(container, fmt.name, channels, rendition.kbps * 1000, fmt.sample_rate)


def rendition_of(params: str) -> Rendition | None:
    """The rendition a decision's ``params`` name (None for ``raw``); ``ValueError`` when
    they are not ones ``decide`` gives."""
    if params == RAW:
        return None
    name, _, kbps = params.partition("-")
    fmt = transcode.FORMATS.get(name)
    if fmt is None or not kbps.isdigit():
        raise ValueError(f"{params!r} is not a transcodeParams this server gave")
    low, high = transcode.BITRATE_MIN_KBPS, transcode.BITRATE_MAX_KBPS
    if not low <= int(kbps) <= high:
        raise ValueError(f"{params!r} is not a transcodeParams this server gave")
    return Rendition(fmt, int(kbps))


def _objects(info: dict, name: str) -> list[dict]:
    found = info.get(name) or []
    if not isinstance(found, list) or not all(isinstance(item, dict) for item in found):
        raise BadClientInfo(f"'{name}' must be a list of objects")
    return found


def _names(profile: dict, name: str) -> set[str]:
    found = profile.get(name) or []
    if isinstance(found, str):
        found = [found]
    if not isinstance(found, list):
        raise BadClientInfo(f"'{name}' must be a list of strings")
    return {str(item).lower() for item in found}


def _number(value) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _not_direct(profile: dict, info: dict, source: Stream) -> str | None:
    """Why ``profile`` does not play ``source`` as it is; None when it does."""
    containers = _names(profile, "containers")
    codecs = _names(profile, "audioCodecs")
    protocols = _names(profile, "protocols")
    max_channels = _number(profile.get("maxAudioChannels"))
    max_bitrate = _number(info.get("maxAudioBitrate"))
    if containers and not containers & (source.names | {source.container}):
        return "ContainerNotSupported"
    if codecs and source.codec not in codecs:
        return "AudioCodecNotSupported"
    if protocols and HTTP not in protocols:
        return "ProtocolNotSupported"
    if max_channels and source.channels and source.channels > max_channels:
        return "AudioChannelsNotSupported"
    if max_bitrate and source.bitrate and source.bitrate > max_bitrate:
        return "AudioBitrateNotSupported"
    return _unmet_limitation(info, source)


LIMITED = {
    "audiochannels": lambda s: s.channels,
    "audiobitrate": lambda s: s.bitrate,
    "audiosamplerate": lambda s: s.sample_rate,
}


def _unmet_limitation(info: dict, source: Stream) -> str | None:
    for codec_profile in _objects(info, "codecProfiles"):
        if str(codec_profile.get("name", "")).lower() != source.codec:
            continue
        for limit in _objects(codec_profile, "limitations"):
            name = str(limit.get("name", ""))
            figure = LIMITED.get(name.lower(), lambda s: None)(source)
            if limit.get("required") and not _meets(figure, limit):
                return f"{name[:1].upper()}{name[1:]}NotSupported"
    return None


def _meets(figure, limit: dict) -> bool:
    if figure is None:
        return True  # not known: not held against the file
    values = [_number(v) for v in _names(limit, "values")]
    values = [v for v in values if v is not None]
    if not values:
        return True
    comparison = str(limit.get("comparison", ""))
    checks = {
        "Equals": lambda: figure in values,
        "NotEquals": lambda: figure not in values,
        "LessThanEqual": lambda: figure <= values[0],
        "GreaterThanEqual": lambda: figure >= values[0],
    }
    return checks.get(comparison, lambda: True)()


def _rendition(profile: dict, info: dict) -> Rendition | None:
    """The rendition a transcoding profile asks for, if Mosic makes it."""
    protocol = str(profile.get("protocol") or HTTP).lower()
    key = (str(profile.get("container", "")).lower(), str(profile.get("audioCodec", "")).lower())
    name = MADE.get(key)
    if protocol != HTTP or name is None:
        return None
    fmt = transcode.FORMATS[name]
    wanted = _number(info.get("maxTranscodingAudioBitrate"))
    caps = [_number(info.get("maxAudioBitrate"))]
    caps += [_number(v) for v in _codec_bitrate_caps(info, name)]
    kbps = min([wanted / 1000 if wanted else fmt.default_kbps] + [c / 1000 for c in caps if c])
    kbps = max(transcode.BITRATE_MIN_KBPS, min(int(kbps), transcode.BITRATE_MAX_KBPS))
    return Rendition(fmt, kbps)


def _codec_bitrate_caps(info: dict, codec: str) -> list:
    caps = []
    for codec_profile in _objects(info, "codecProfiles"):
        if str(codec_profile.get("name", "")).lower() != codec:
            continue
        for limit in _objects(codec_profile, "limitations"):
            upper = limit.get("comparison") == "LessThanEqual"
            if str(limit.get("name", "")).lower() == "audiobitrate" and upper:
                caps += list(_names(limit, "values"))[:1]
    return caps
