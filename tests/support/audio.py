"""Real audio files for tests, encoded by the ``ffmpeg`` binary.

Clips are short mono sine tones at low sample rates and bitrates, a few
kilobytes each, yet genuine files that mutagen, ffprobe and players accept.
The tags given are written where mutagen and common players look for them:

=====  =======================================  ===========================
fmt    title / artist / album                   comment
=====  =======================================  ===========================
mp3    ID3v2.3 TIT2 / TPE1 / TALB               COMM, key ``COMM::eng``
ogg    Vorbis comments title / artist / album   Vorbis comment ``comment``
opus   Vorbis comments title / artist / album   Vorbis comment ``comment``
flac   Vorbis comments title / artist / album   Vorbis comment ``comment``
wav    ID3v2.3 in an "id3 " chunk, as mp3       COMM, as mp3
m4a    MP4 atoms ©nam / ©ART / ©alb             ``©cmt`` (easy: ``comment``)
=====  =======================================  ===========================

``mutagen.File(path, easy=True)`` gives title/artist/album for every format
but WAV (easy mode has no WAV class, so WAV keeps raw ID3 frame keys), and
gives no comment for mp3 (EasyID3 has no comment key). WAV files also carry
ffmpeg's RIFF INFO chunk, and Ogg files an ``encoder`` comment from ffmpeg.
Durations read back slightly long for lossy formats with encoder padding:
about +0.07 s for mp3 and +0.05 s for m4a.
"""

from __future__ import annotations

import io
import math
import shutil
import struct
import subprocess
import wave
from pathlib import Path

import mutagen
from mutagen.id3 import COMM, TALB, TIT2, TPE1
from mutagen.mp3 import MP3
from mutagen.wave import WAVE

FORMATS = ("mp3", "ogg", "opus", "flac", "wav", "m4a")

# Opus is an Ogg stream like Vorbis, and clients sniff the container first.
CONTENT_TYPES = {
    "mp3": "audio/mpeg",
    "ogg": "audio/ogg",
    "opus": "audio/ogg",
    "flac": "audio/flac",
    "wav": "audio/wav",
    "m4a": "audio/mp4",
}

# Per format: the ffmpeg muxer and encoder arguments. The muxer is named
# explicitly so that the file name's extension does not matter. libopus
# accepts only 48/24/16/12/8 kHz, hence its different rate.
_ENCODINGS: dict[str, tuple[str, list[str]]] = {
    "mp3": ("mp3", ["-ar", "22050", "-c:a", "libmp3lame", "-b:a", "32k", "-id3v2_version", "3"]),
    "ogg": ("ogg", ["-ar", "22050", "-c:a", "libvorbis", "-q:a", "0"]),
    "opus": ("opus", ["-ar", "24000", "-c:a", "libopus", "-b:a", "16k"]),
    "flac": ("flac", ["-ar", "22050", "-c:a", "flac", "-sample_fmt", "s16"]),
    "wav": ("wav", ["-ar", "22050", "-c:a", "pcm_s16le"]),
    # "ipod" is ffmpeg's MP4 flavour for .m4a; faststart puts the index
    # first, as in files prepared for progressive streaming.
    "m4a": ("ipod", ["-ar", "22050", "-c:a", "aac", "-b:a", "32k", "-movflags", "+faststart"]),
}

# ffmpeg puts a comment where readers do not look: a TXXX:comment frame
# instead of COMM in ID3, DESCRIPTION instead of COMMENT in Vorbis comments.
_FFMPEG_MISPLACES_COMMENT = frozenset({"mp3", "ogg", "opus", "flac"})

_ID3_FRAMES = {
    "title": lambda text: TIT2(encoding=3, text=[text]),
    "artist": lambda text: TPE1(encoding=3, text=[text]),
    "album": lambda text: TALB(encoding=3, text=[text]),
    # Language "eng" with an empty description is the comment players show.
    "comment": lambda text: COMM(encoding=3, lang="eng", desc="", text=[text]),
}
_ID3_VERSION = 3  # the version most readers handle; also what ffmpeg is told to write


def make_clip(
    path: Path,
    fmt: str,
    *,
    seconds: float = 1.0,
    freq: int = 440,
    title: str | None = None,
    artist: str | None = None,
    album: str | None = None,
    comment: str | None = None,
) -> Path:
    """Encode a ``seconds``-long sine tone of ``freq`` Hz as ``fmt`` at ``path``.

    Only the tags given are written. Returns ``path``.
    """
    if fmt not in _ENCODINGS:
        raise ValueError(f"unknown format {fmt!r}; expected one of {FORMATS}")
    if seconds <= 0:
        raise ValueError(f"seconds must be positive, not {seconds}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)

    tags = {"title": title, "artist": artist, "album": album, "comment": comment}
    tags = {key: value for key, value in tags.items() if value is not None}
    by_mutagen = {}
    if fmt in _FFMPEG_MISPLACES_COMMENT and "comment" in tags:
        by_mutagen["comment"] = tags.pop("comment")
    elif fmt == "wav":
        # ffmpeg writes only a RIFF INFO chunk, which mutagen ignores; real
        # WAV taggers add an "id3 " chunk as well, so the fixture has both.
        by_mutagen = dict(tags)
    metadata = [arg for key, value in tags.items() for arg in ("-metadata", f"{key}={value}")]

    muxer, encoding = _ENCODINGS[fmt]
    _ffmpeg(
        "-f", "lavfi", "-i", f"sine=frequency={freq}:duration={seconds}",
        # Drop what ffmpeg would otherwise copy or stamp, such as creation
        # times, so that the file holds only the tags asked for.
        "-map_metadata", "-1", *metadata,
        "-ac", "1", *encoding,
        # Same input, same bytes: no version strings or random Ogg serials.
        "-fflags", "+bitexact", "-flags:a", "+bitexact",
        "-f", muxer, str(path),
    )  # fmt: skip
    _write_tags(path, fmt, by_mutagen)
    return path


def make_half_silent_clip(path: Path, fmt: str, *, seconds: float = 2.0, freq: int = 440) -> Path:
    """``seconds`` of audio as ``fmt``: silence for the first half, then a sine tone (at
    ffmpeg's default amplitude, 1/8 of full scale). Returns ``path``."""
    muxer, encoding = _ENCODINGS[fmt]
    half = seconds / 2
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _ffmpeg(
        "-f", "lavfi", "-i", f"anullsrc=r=48000:cl=mono:d={half}",
        "-f", "lavfi", "-i", f"sine=frequency={freq}:duration={half}:sample_rate=48000",
        "-filter_complex", "[0:a][1:a]concat=n=2:v=0:a=1",
        "-map_metadata", "-1", "-ac", "1", *encoding,
        "-fflags", "+bitexact", "-flags:a", "+bitexact",
        "-f", muxer, str(path),
    )  # fmt: skip
    return path


# One tone a channel, each of its own pitch and level, so that a mix is none of them: the
# first (left, or the only one) 440 Hz at half of full scale, the second (right) 97 Hz at 0.3.
_TONES = (
    "0.5*sin(2*PI*440*t)", "0.3*sin(2*PI*97*t)", "0.2*sin(2*PI*200*t)",
    "0.4*sin(2*PI*50*t)", "0.2*sin(2*PI*300*t)", "0.1*sin(2*PI*700*t)",
)  # fmt: skip


def make_tones(
    path: Path, fmt: str, *, channels: int = 1, seconds: float = 25.0, codec: str | None = None
) -> Path:
    """``seconds`` of ``channels`` (1, 2, or 6 for 5.1) different tones (``_TONES``) as ``fmt``,
    at its fixture encoding; ``codec`` replaces the encoder (``pcm_u8`` or ``pcm_s32le``: an
    8-bit or 32-bit WAV). Returns ``path``."""
    muxer, encoding = _ENCODINGS[fmt]
    if codec is not None:  # in place of the value after "-c:a"
        at = encoding.index("-c:a") + 1
        encoding = [*encoding[:at], codec, *encoding[at + 1 :]]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _ffmpeg(
        "-f", "lavfi", "-i", f"aevalsrc={'|'.join(_TONES[:channels])}:s=48000:d={seconds}",
        "-map_metadata", "-1", *encoding,
        "-fflags", "+bitexact", "-flags:a", "+bitexact",
        "-f", muxer, str(path),
    )  # fmt: skip
    return path


# Signals whose loudness is measured (lavfi sources at 48 kHz): a tone, white and pink noise,
# and something music-like: stereo chords under a swelling envelope, a near-silent bar
# (which the relative gate must leave out), and a little noise.
_CHORD = "({a}*sin(2*PI*{f1}*t)+{b}*sin(2*PI*{f2}*t)+0.08*sin(2*PI*{f3}*t))"
_SWELL = r"(0.55+0.45*sin(2*PI*0.8*t))*(1-0.99*between(t\,3\,4))"  # commas escaped for lavfi
SIGNALS = {
    "tone": "aevalsrc=0.5*sin(2*PI*997*t):s=48000",
    "white": "anoisesrc=color=white:amplitude=0.25:sample_rate=48000:seed=7",
    "pink": "anoisesrc=color=pink:amplitude=0.5:sample_rate=48000:seed=11",
    "music": (
        "aevalsrc="
        + _CHORD.format(a=0.35, b=0.2, f1=220, f2=330, f3=1760) + "*" + _SWELL
        + "+0.03*(random(0)-0.5)|"
        + _CHORD.format(a=0.3, b=0.25, f1=277, f2=415, f3=2500) + "*" + _SWELL
        + "+0.03*(random(1)-0.5):s=48000"
    ),
}  # fmt: skip


def make_signal(
    path: Path, fmt: str, kind: str, *, seconds: float = 6.0, volume_db: float = 0.0
) -> Path:
    """``seconds`` of the signal ``kind`` (``SIGNALS``), ``volume_db`` louder, as ``fmt`` at
    its fixture encoding, with no tags. Returns ``path``."""
    muxer, encoding = _ENCODINGS[fmt]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _ffmpeg(
        "-f", "lavfi", "-i", f"{SIGNALS[kind]}:d={seconds}", "-af", f"volume={volume_db}dB",
        "-map_metadata", "-1", *encoding,
        "-fflags", "+bitexact", "-flags:a", "+bitexact",
        "-f", muxer, str(path),
    )  # fmt: skip
    return path


def make_wav_of_size(path: Path, size_bytes: int) -> Path:
    """Write a valid 16-bit mono 44.1 kHz PCM WAV of about ``size_bytes`` bytes.

    The file is a 441 Hz tone; it is written in chunks, so any size up to the
    format's 4 GiB limit costs only a little memory. The size is exact when
    ``size_bytes`` is even. Returns ``path``.
    """
    header_bytes = 44  # RIFF + fmt + data chunk headers of a plain PCM file
    if not header_bytes <= size_bytes < 2**32:
        raise ValueError(f"size_bytes must be in [{header_bytes}, 4 GiB), not {size_bytes}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)

    rate, sample_width = 44_100, 2
    nframes = (size_bytes - header_bytes) // sample_width
    # 441 Hz at 44.1 kHz repeats every 100 frames, so a chunk made of whole
    # periods tiles without clicks. Little-endian, as WAV requires.
    period = 100
    one_period = struct.pack(
        f"<{period}h",
        *(round(8000 * math.sin(2 * math.pi * i / period)) for i in range(period)),
    )
    chunk = one_period * 10_000  # about 2 MB
    chunk_frames = len(chunk) // sample_width

    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(sample_width)
        out.setframerate(rate)
        # Announcing the length up front writes the final header at once, so
        # the raw writes below need no header patching (and no seeking).
        out.setnframes(nframes)
        remaining = nframes
        while remaining:
            frames = min(remaining, chunk_frames)
            out.writeframesraw(chunk[: frames * sample_width])
            remaining -= frames
    return path


def _ffmpeg(*args: str) -> None:
    binary = shutil.which("ffmpeg")
    if binary is None:
        raise RuntimeError("ffmpeg is not installed (Debian: apt-get install ffmpeg)")
    command = [binary, "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *args]
    proc = subprocess.run(command, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(
            f"ffmpeg exited with {proc.returncode}: {' '.join(command)}\n{proc.stderr}"
        )


def _write_tags(path: Path, fmt: str, tags: dict[str, str]) -> None:
    if not tags:
        return
    if fmt in ("mp3", "wav"):
        audio = MP3(path) if fmt == "mp3" else WAVE(path)
        if audio.tags is None:
            audio.add_tags()
        for key, value in tags.items():
            audio.tags.add(_ID3_FRAMES[key](value))
        audio.save(v2_version=_ID3_VERSION)
    else:  # ogg, opus and flac: Vorbis comments
        audio = mutagen.File(path)
        if audio.tags is None:
            audio.add_tags()
        for key, value in tags.items():
            audio.tags[key.upper()] = [value]
        audio.save()


def wav_bytes(seed: int, frames: int = 4000) -> bytes:
    """A real (tiny) WAV file in memory; different seeds give different bytes, so uploads of
    them never duplicate each other."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(bytes([seed % 256, seed // 256 % 256]) * frames)
    return buffer.getvalue()


def undecodable_wav(seconds: float = 2.0) -> bytes:
    """A WAV that mutagen reads (header, length) in a codec FFmpeg has no decoder for."""
    rate, tag = 8000, 0x1234
    data = b"\x01\x02" * int(rate * seconds)
    fmt = struct.pack("<HHIIHH", tag, 1, rate, rate * 2, 2, 16)
    chunks = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
    chunks += b"data" + struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", len(chunks)) + chunks
