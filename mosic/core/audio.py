"""Audio metadata: is this audio, how long is it, what do its tags say.

mutagen identifies the format from the bytes (it never sees the client's file name, so a text
file called ``song.mp3`` is still a text file). Blocking: storage runs it in a thread.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import BinaryIO

import mutagen
from mutagen.aac import AAC
from mutagen.aiff import AIFF
from mutagen.flac import FLAC
from mutagen.mp3 import MP3
from mutagen.mp4 import MP4
from mutagen.oggflac import OggFLAC
from mutagen.oggopus import OggOpus
from mutagen.oggvorbis import OggVorbis
from mutagen.wave import WAVE

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

# Tag keys per tagging scheme: ID3 frames, Vorbis comments, MP4 atoms.
_ID3 = {"title": "TIT2", "artist": "TPE1", "album": "TALB"}
_MP4 = {"title": "\xa9nam", "artist": "\xa9ART", "album": "\xa9alb", "comment": "\xa9cmt"}


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
    return AudioInfo(
        duration=round(float(length), 3),
        content_type=content_type,
        extension=extension,
        **_tags(audio),
    )


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


def _tags(audio) -> dict[str, str | None]:
    tags = audio.tags
    if not tags:
        return {}
    if isinstance(audio, MP4):
        return {name: _first(tags.get(key)) for name, key in _MP4.items()}
    if hasattr(tags, "getall"):  # ID3, used by MP3, WAV and AIFF
        found = {name: _first(tags.get(key)) for name, key in _ID3.items()}
        comments = [c for c in tags.getall("COMM") if c.desc == ""] or tags.getall("COMM")
        found["comment"] = _first(comments)
        return found
    # Vorbis comments (Ogg, FLAC): keys are case-insensitive lists of strings.
    return {
        "title": _first(tags.get("title")),
        "artist": _first(tags.get("artist")),
        "album": _first(tags.get("album")),
        "comment": _first(tags.get("comment") or tags.get("description")),
    }
