"""Full tags and embedded pictures written with mutagen, where each format keeps them.

=====  ==========================================  =====================================
fmt    track / disc / year / genre / album artist   picture
=====  ==========================================  =====================================
mp3    ID3v2.3 TRCK / TPOS / TYER / TCON / TPE2     APIC (front cover)
wav    the same, in the "id3 " chunk                APIC
ogg    Vorbis TRACKNUMBER / DISCNUMBER / DATE /     METADATA_BLOCK_PICTURE (base64 of a
opus   GENRE / ALBUMARTIST                           FLAC picture block)
flac   the same Vorbis comments                     a FLAC PICTURE metadata block
m4a    trkn / disk / ©day / ©gen / aART             covr
=====  ==========================================  =====================================

Pictures are real images made by ffmpeg (``image``), so what the server stores can be compared
byte for byte with what was embedded.
"""

from __future__ import annotations

import base64
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import mutagen
from mutagen.flac import FLAC, Picture
from mutagen.id3 import APIC, SYLT, TCON, TPE2, TPOS, TRCK, TXXX, TYER, USLT
from mutagen.mp3 import MP3
from mutagen.mp4 import MP4, MP4Cover, MP4FreeForm
from mutagen.wave import WAVE

FRONT_COVER = 3  # the picture type of a front cover in ID3 and FLAC


@dataclass(frozen=True)
class Image:
    data: bytes
    mime: str


def image(path: Path, color: str = "red", fmt: str = "jpeg") -> Image:
    """A real 32x32 picture of one colour, encoded by ffmpeg as JPEG or PNG."""
    suffix = {"jpeg": ".jpg", "png": ".png"}[fmt]
    out = Path(path).with_suffix(suffix)
    subprocess.run(
        [shutil.which("ffmpeg") or "ffmpeg", "-nostdin", "-loglevel", "error", "-y",
         "-f", "lavfi", "-i", f"color=c={color}:s=32x32", "-frames:v", "1", str(out)],
        check=True,
    )  # fmt: skip
    return Image(out.read_bytes(), f"image/{fmt}")


def tag_fully(
    path: Path,
    fmt: str,
    *,
    track: str | None = None,
    disc: str | None = None,
    date: str | None = None,
    genre: str | None = None,
    album_artist: str | None = None,
    picture: Image | None = None,
) -> Path:
    """Add the tags given (as text, the way taggers write them) and ``picture``."""
    values = {"track": track, "disc": disc, "date": date, "genre": genre,
              "album_artist": album_artist}  # fmt: skip
    values = {k: v for k, v in values.items() if v is not None}
    if fmt in ("mp3", "wav"):
        _id3(path, fmt, values, picture)
    elif fmt == "m4a":
        _mp4(path, values, picture)
    else:
        _vorbis(path, fmt, values, picture)
    return path


_ID3 = {"track": TRCK, "disc": TPOS, "date": TYER, "genre": TCON, "album_artist": TPE2}
_VORBIS = {"track": "TRACKNUMBER", "disc": "DISCNUMBER", "date": "DATE", "genre": "GENRE",
           "album_artist": "ALBUMARTIST"}  # fmt: skip


def _id3(path: Path, fmt: str, values: dict, picture: Image | None) -> None:
    audio = MP3(path) if fmt == "mp3" else WAVE(path)
    if audio.tags is None:
        audio.add_tags()
    for key, value in values.items():
        audio.tags.add(_ID3[key](encoding=3, text=[value]))
    if picture:
        audio.tags.add(
            APIC(encoding=3, mime=picture.mime, type=FRONT_COVER, desc="", data=picture.data)
        )
    audio.save(v2_version=3)


def _flac_picture(picture: Image) -> Picture:
    block = Picture()
    block.type, block.mime, block.data = FRONT_COVER, picture.mime, picture.data
    block.width = block.height = 32
    block.depth = 24
    return block


def _vorbis(path: Path, fmt: str, values: dict, picture: Image | None) -> None:
    audio = mutagen.File(path)
    if audio.tags is None:
        audio.add_tags()
    for key, value in values.items():
        audio.tags[_VORBIS[key]] = [value]
    if picture and isinstance(audio, FLAC):
        audio.add_picture(_flac_picture(picture))
    elif picture:
        encoded = base64.b64encode(_flac_picture(picture).write()).decode("ascii")
        audio.tags["METADATA_BLOCK_PICTURE"] = [encoded]
    audio.save()


def _mp4(path: Path, values: dict, picture: Image | None) -> None:
    audio = MP4(path)
    if audio.tags is None:
        audio.add_tags()
    pair = {"track": "trkn", "disc": "disk"}
    text = {"date": "\xa9day", "genre": "\xa9gen", "album_artist": "aART"}
    for key, value in values.items():
        if key in pair:
            number, _, total = value.partition("/")
            audio.tags[pair[key]] = [(int(number), int(total or 0))]
        else:
            audio.tags[text[key]] = [value]
    if picture:
        kind = MP4Cover.FORMAT_PNG if picture.mime == "image/png" else MP4Cover.FORMAT_JPEG
        audio.tags["covr"] = [MP4Cover(picture.data, imageformat=kind)]
    audio.save()


def tag_lyrics(
    path: Path,
    fmt: str,
    *,
    text: str | None = None,
    timed: list[tuple[str, int]] | None = None,
    lang: str = "eng",
    key: str = "LYRICS",
) -> Path:
    """Add lyrics where each format keeps them: ``text`` as ID3 USLT (in ``lang``), a Vorbis
    comment ``key`` (LYRICS or UNSYNCEDLYRICS) or MP4 ©lyr; ``timed`` (text, ms) pairs as ID3
    SYLT, time stamps in milliseconds."""
    if fmt in ("mp3", "wav"):
        audio = MP3(path) if fmt == "mp3" else WAVE(path)
        if audio.tags is None:
            audio.add_tags()
        if text is not None:
            audio.tags.add(USLT(encoding=3, lang=lang, desc="", text=text))
        if timed is not None:
            audio.tags.add(SYLT(encoding=3, lang=lang, format=2, type=1, desc="", text=timed))
        audio.save(v2_version=3)
        return path
    audio = MP4(path) if fmt == "m4a" else mutagen.File(path)
    if audio.tags is None:
        audio.add_tags()
    audio.tags["\xa9lyr" if fmt == "m4a" else key] = [text]
    audio.save()
    return path


def tag_replay_gain(path: Path, fmt: str, tags: dict[str, str]) -> Path:
    """Write ReplayGain (or Opus R128) tags, names as given (``REPLAYGAIN_TRACK_GAIN``,
    ``replaygain_album_peak``, ``R128_TRACK_GAIN``...): ID3 ``TXXX`` frames, Vorbis
    comments, or MP4 freeform atoms of iTunes' namespace, as taggers write them. Returns
    ``path``."""
    if fmt in ("mp3", "wav"):
        audio = MP3(path) if fmt == "mp3" else WAVE(path)
        if audio.tags is None:
            audio.add_tags()
        for name, text in tags.items():
            audio.tags.add(TXXX(encoding=3, desc=name, text=[text]))
        audio.save(v2_version=3)
    elif fmt == "m4a":
        audio = MP4(path)
        for name, text in tags.items():
            audio[f"----:com.apple.iTunes:{name}"] = [MP4FreeForm(text.encode())]
        audio.save()
    else:  # Vorbis comments: ogg, opus, flac
        audio = mutagen.File(path)
        if audio.tags is None:
            audio.add_tags()
        for name, text in tags.items():
            audio.tags[name] = [text]
        audio.save()
    return path
