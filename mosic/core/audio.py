"""Audio metadata: is this audio, how long is it, what do its tags say.

mutagen identifies the format from the bytes (it never sees the client's file name, so a text
file called ``song.mp3`` is still a text file). Blocking: storage runs it in a thread.
"""

from __future__ import annotations

import base64
import math
import re
import struct
from dataclasses import dataclass
from typing import BinaryIO

import av
import mutagen
from mutagen.aac import AAC
from mutagen.aiff import AIFF
from mutagen.flac import FLAC
from mutagen.flac import Picture as FLACPicture
from mutagen.mp3 import MP3
from mutagen.mp4 import MP4
from mutagen.oggflac import OggFLAC
from mutagen.oggopus import OggOpus
from mutagen.oggvorbis import OggVorbis
from mutagen.wave import WAVE

from mosic.core import lrc, replay_gain
from mosic.core.replay_gain import ReplayGain

# What we accept, with the Content-Type and file extension we serve it under. Browsers play
# Ogg Vorbis and Ogg Opus from "audio/ogg", which is why mutagen's own MIME names are not used.
FORMATS: dict[type, tuple[str, str]] = {
    MP3: ("audio/mpeg", ".mp3"),
    OggVorbis: ("audio/ogg", ".ogg"),
    OggOpus: ("audio/ogg", ".opus"),
    OggFLAC: ("audio/ogg", ".oga"),
    FLAC: ("audio/flac", ".flac"),
    WAVE: ("audio/wav", ".wav"),
    AIFF: ("audio/aiff", ".aiff"),
    MP4: ("audio/mp4", ".m4a"),
    AAC: ("audio/aac", ".aac"),
}
_OPTIONS = list(FORMATS)

# Tag keys per tagging scheme: ID3 frames, Vorbis comments, MP4 atoms. Values are read as
# text; numbers ("3/12", "2021-05-04") are parsed from the text afterwards.
_ID3 = {
    "title": "TIT2",
    "artist": "TPE1",
    "album": "TALB",
    "album_artist": "TPE2",
    "genre": "TCON",
    "track": "TRCK",
    "disc": "TPOS",
    "year": "TDRC",
}
_MP4 = {
    "title": "\xa9nam",
    "artist": "\xa9ART",
    "album": "\xa9alb",
    "comment": "\xa9cmt",
    "album_artist": "aART",
    "genre": "\xa9gen",
    "year": "\xa9day",
}
_MP4_PAIRS = {"track": "trkn", "disc": "disk"}  # (number, total) tuples
_VORBIS = {
    "title": ("title",),
    "artist": ("artist",),
    "album": ("album",),
    "comment": ("comment", "description"),
    "album_artist": ("albumartist", "album artist", "album_artist"),
    "genre": ("genre",),
    "track": ("tracknumber", "track"),
    "disc": ("discnumber", "disc"),
    "year": ("date", "year", "originaldate"),
}
TEXT_TAGS = ("title", "artist", "album", "comment", "album_artist", "genre")
NUMBER_TAGS = ("track", "disc", "year")
# Track and disc numbers and years past this are not numbers anyone tagged on purpose.
NUMBER_MAX = 9999
# Opus always decodes at 48 kHz, whatever rate the encoder was fed (RFC 7845, section 5.1).
OPUS_RATE = 48_000
_LEADING_NUMBER = re.compile(r"\s*(\d{1,9})")


# Embedded pictures past this are not cover art anyone meant to serve; they are ignored.
COVER_MAX_BYTES = 16 * 1024 * 1024
# Picture types of ID3 APIC and FLAC PICTURE: the front cover, then any other.
FRONT_COVER = 3
# What a picture's first bytes say it is: more trustworthy than the MIME type a tagger wrote.
_IMAGE_MAGIC = (
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"BM", "image/bmp"),
)


@dataclass(frozen=True)
class Picture:
    """An embedded picture: its bytes and the image type they are."""

    data: bytes
    mime: str


class NotAudio(Exception):
    """The bytes are not an audio format we can read."""


@dataclass(frozen=True)
class AudioInfo:
    duration: float
    content_type: str
    extension: str
    title: str | None = None
    artist: str | None = None
    album: str | None = None
    comment: str | None = None
    album_artist: str | None = None
    genre: str | None = None
    track: int | None = None
    disc: int | None = None
    year: int | None = None
    bitrate: int | None = None  # kbit/s
    sample_rate: int | None = None  # Hz
    channels: int | None = None
    cover: Picture | None = None
    lyrics: tuple[lrc.Lyrics, ...] = ()  # synced ones first
    replay_gain: ReplayGain = replay_gain.NO_TAGS


def probe(fileobj: BinaryIO) -> AudioInfo:
    """Read a seekable binary file; raises ``NotAudio`` when it is not audio we serve."""
    try:
        audio = mutagen.File(fileobj, options=_OPTIONS)
    except (mutagen.MutagenError, ValueError, OverflowError, EOFError) as exc:
        raise NotAudio(f"the file could not be read as audio: {exc}") from None
    if audio is None:
        raise NotAudio("the file is not a supported audio format")
    length = getattr(audio.info, "length", None)
    if not isinstance(length, int | float) or not math.isfinite(length) or length <= 0:
        raise NotAudio("the file has no playable audio")
    content_type, extension = FORMATS[type(audio)]
    tags = _tags(audio)
    return AudioInfo(
        duration=round(float(length), 3),
        content_type=content_type,
        extension=extension,
        **{name: tags.get(name) for name in TEXT_TAGS},
        **{name: leading_number(tags.get(name)) for name in NUMBER_TAGS},
        **_stream_info(audio, fileobj, float(length)),
        cover=_cover(audio),
        lyrics=_lyrics(audio),
        replay_gain=replay_gain.from_tags(_gain_tags(audio), r128=isinstance(audio, OggOpus)),
    )


def image_type(data: bytes, declared: str | None = None) -> str | None:
    """The image type of ``data`` by its magic bytes (WebP too), else ``declared`` when that
    names an image; None when neither says it is an image."""
    for magic, mime in _IMAGE_MAGIC:
        if data.startswith(magic):
            return mime
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    declared = (declared or "").strip().lower()
    return declared if declared.startswith("image/") and len(declared) <= 100 else None


def _cover(audio) -> Picture | None:
    """The front cover (or else the first picture) embedded in the file, if any."""
    candidates = [p for p in _pictures(audio) if 0 < len(p[1]) <= COVER_MAX_BYTES]
    candidates.sort(key=lambda picture: picture[0] != FRONT_COVER)
    for _, data, declared in candidates:
        mime = image_type(data, declared)
        if mime is not None:
            return Picture(bytes(data), mime)
    return None


def _pictures(audio) -> list[tuple[int | None, bytes, str | None]]:
    """(picture type, bytes, declared MIME type) of every embedded picture."""
    tags = audio.tags
    if isinstance(audio, FLAC):  # PICTURE metadata blocks, beside the Vorbis comments
        return [(p.type, p.data, p.mime) for p in audio.pictures]
    if not tags:
        return []
    if isinstance(audio, MP4):
        return [(None, bytes(c), None) for c in tags.get("covr", [])]
    if hasattr(tags, "getall"):  # ID3 APIC frames
        return [(f.type, f.data, f.mime) for f in tags.getall("APIC")]
    found = []
    for encoded in tags.get("metadata_block_picture", []):  # Ogg: base64 FLAC blocks
        try:
            block = FLACPicture(base64.b64decode(encoded))
        except (ValueError, mutagen.MutagenError, struct.error):
            continue  # one broken picture never makes the audio unreadable
        found.append((block.type, block.data, block.mime))
    return found


# Lyrics tags: ID3 USLT (text) and SYLT (timed text), Vorbis comments, MP4's atom. Text may
# be LRC, which makes it synced (``lrc.parse``). SYLT's content types that are words sung:
# other (0, what many taggers write), lyrics (1) and transcription (2).
_VORBIS_LYRICS = ("lyrics", "unsyncedlyrics")
_MP4_LYRICS = "\xa9lyr"
_SYLT_WORDS = frozenset({0, 1, 2})
SYLT_MILLISECONDS = 2  # SYLT's time stamp format 2; 1 counts MPEG frames
# A file with more lyrics than this holds junk, not translations.
LYRICS_PER_FILE_MAX = 8


def _lyrics(audio) -> tuple[lrc.Lyrics, ...]:
    """Every lyrics tag of the file, parsed, synced ones first, each once."""
    tags = audio.tags
    if not tags:
        return ()
    if isinstance(audio, MP4):
        found = [lrc.parse(text) for text in tags.get(_MP4_LYRICS, []) if isinstance(text, str)]
    elif hasattr(tags, "getall"):  # ID3
        found = [lrc.parse(frame.text, frame.lang) for frame in tags.getall("USLT")]
        found += [_sylt(frame) for frame in tags.getall("SYLT") if frame.type in _SYLT_WORDS]
    else:  # Vorbis comments
        found = [lrc.parse(text) for key in _VORBIS_LYRICS for text in tags.get(key, [])]
    kept = list(dict.fromkeys(lyrics for lyrics in found if lyrics is not None))
    kept.sort(key=lambda lyrics: not lyrics.synced)
    return tuple(kept[:LYRICS_PER_FILE_MAX])


def _sylt(frame) -> lrc.Lyrics | None:
    if frame.format == SYLT_MILLISECONDS:
        return lrc.from_timed(frame.text, frame.lang)
    # Times in MPEG frames: the words, unsynced (a karaoke tagger's syllables joined).
    words = [str(text) for text, _ in frame.text]
    karaoke = any(word.startswith(("\n", "\r")) for word in words)
    return lrc.parse(("" if karaoke else "\n").join(words), frame.lang)


# MP4 keeps ReplayGain in freeform atoms of iTunes' namespace, named in any case.
_MP4_FREEFORM = "----:com.apple.itunes:"


def _gain_tags(audio) -> dict[str, str]:
    """The file's ReplayGain and R128 tags (``replay_gain.TAG_NAMES``), by lower-case name:
    ID3 ``TXXX`` descriptions, MP4 freeform atoms, Vorbis comments."""
    tags = audio.tags
    if not tags:
        return {}
    if isinstance(audio, MP4):
        found = {}
        for key, values in tags.items():
            name = key.lower().removeprefix(_MP4_FREEFORM)
            if name in replay_gain.TAG_NAMES and values:
                found[name] = bytes(values[0]).decode("utf-8", "replace")
        return found
    if hasattr(tags, "getall"):  # ID3
        frames = ((frame.desc.lower(), _first(frame)) for frame in tags.getall("TXXX"))
        return {name: text for name, text in frames if name in replay_gain.TAG_NAMES and text}
    found = {name: _first(tags.get(name)) for name in replay_gain.TAG_NAMES}
    return {name: text for name, text in found.items() if text}


def leading_number(text: str | None) -> int | None:
    """The number a tag starts with: 3 from "3/12", 2021 from "2021-05-04"; None for text
    that does not start with one, or for zero and absurd values."""
    match = _LEADING_NUMBER.match(text or "")
    if match is None:
        return None
    value = int(match.group(1))
    return value if 0 < value <= NUMBER_MAX else None


def _stream_info(audio, fileobj: BinaryIO, length: float) -> dict[str, int | None]:
    info = audio.info
    bitrate = getattr(info, "bitrate", None) or None
    if bitrate is None:  # Opus and some Ogg files carry none: the average over the file
        fileobj.seek(0, 2)
        bitrate = fileobj.tell() * 8 / length
    rate = OPUS_RATE if isinstance(audio, OggOpus) else getattr(info, "sample_rate", None)
    channels = getattr(info, "channels", None)
    if isinstance(audio, MP4):
        # mutagen reads the MP4 sample entry, which ffmpeg and others fill with 2 channels
        # for mono AAC; the decoder's configuration is the truth.
        rate, channels = _decoder_format(fileobj) or (rate, channels)
    return {
        "bitrate": round(bitrate / 1000) or None,
        "sample_rate": int(rate) if rate else None,
        "channels": int(channels) if channels else None,
    }


def _first(value) -> str | None:
    if isinstance(value, list | tuple):
        value = value[0] if value else None
    if value is None:
        return None
    text = getattr(value, "text", value)
    if isinstance(text, list | tuple):
        text = text[0] if text else None
    text = str(text).strip() if text is not None else ""
    return text or None


def _decoder_format(fileobj: BinaryIO) -> tuple[int, int] | None:
    """(sample rate, channels) as the decoder (PyAV's FFmpeg) configures itself, or None."""
    fileobj.seek(0)
    try:
        with av.open(fileobj, mode="r") as container:
            codec = container.streams.audio[0].codec_context
            return (codec.sample_rate, codec.channels) if codec is not None else None
    except (av.FFmpegError, IndexError):
        return None


def _tags(audio) -> dict[str, str | None]:
    tags = audio.tags
    if not tags:
        return {}
    if isinstance(audio, MP4):
        found = {name: _first(tags.get(key)) for name, key in _MP4.items()}
        for name, key in _MP4_PAIRS.items():
            pair = tags.get(key)
            found[name] = str(pair[0][0]) if pair and pair[0] else None
        return found
    if hasattr(tags, "getall"):  # ID3, used by MP3, WAV and AIFF
        found = {name: _first(tags.get(key)) for name, key in _ID3.items()}
        genre = tags.get("TCON")
        # TCON may hold ID3v1 numbers such as "(17)"; mutagen names them ("Rock").
        found["genre"] = genre.genres[0] if genre is not None and genre.genres else None
        found["year"] = found["year"] or _first(tags.get("TYER"))
        comments = [c for c in tags.getall("COMM") if c.desc == ""] or tags.getall("COMM")
        found["comment"] = _first(comments)
        return found
    # Vorbis comments (Ogg, FLAC): keys are case-insensitive lists of strings.
    return {
        name: next((v for v in (_first(tags.get(k)) for k in keys) if v), None)
        for name, keys in _VORBIS.items()
    }
