"""A library file as a clip row: the upload's rules for tags and titles, and the library's
own columns (source, music folder, path, modification time, sidecar cover and lyrics).

The upload's rules live in ``mosic.core.clip_rows``; this module is the one place the scan
takes them from, so when they move, only these few functions follow.
"""

from __future__ import annotations

from pathlib import PurePosixPath

from mosic.core import audio, covers, grouping, replay_gain
from mosic.core.clip_rows import UploadForm, new_clip_row, upload_fields
from mosic.core.listing import filter_keys
from mosic.core.text import search_text_for
from mosic.media.folders import FileRead, FileStat
from mosic.persistence.models import LIBRARY, Clip, utcnow

# Sidecar files in a track's directory (the contract's "Sidecar files"): a picture with one
# of these stems is the cover of every track there that embeds none; a .lrc with a track's
# stem holds its lyrics. Earlier stems win when a directory has several pictures.
COVER_STEMS = ("cover", "folder", "front", "album")
COVER_TYPES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png",
               ".webp": "image/webp"}  # fmt: skip
LYRICS_EXTENSION = ".lrc"
SIDECAR_EXTENSIONS = frozenset({*COVER_TYPES, LYRICS_EXTENSION})
# A sidecar picture past this is not a cover anyone meant to serve (as for embedded ones).
COVER_MAX_BYTES = audio.COVER_MAX_BYTES
# What a scan compares and keeps of a known clip, beside its id.
KNOWN_COLUMNS = (
    Clip.id, Clip.path, Clip.size, Clip.mtime_ns, Clip.sha256, Clip.missing_since,
    Clip.cover_name, Clip.waveform_name, Clip.lyrics_path, Clip.file_name, Clip.music_folder,
    Clip.album_artist, Clip.artist, Clip.album, Clip.genre, Clip.directory_id,
    Clip.media_version,
)  # fmt: skip


def sidecar_cover(sidecars: list[FileStat]) -> FileStat | None:
    """The directory's cover picture among its ``sidecars``, if any."""
    found = {}
    for sidecar in sidecars:
        path = PurePosixPath(sidecar.name)
        stem, suffix = path.stem.casefold(), path.suffix.casefold()
        if stem in COVER_STEMS and suffix in COVER_TYPES:
            found.setdefault(stem, sidecar)
    return next((found[stem] for stem in COVER_STEMS if stem in found), None)


def cover_stat(sidecars: list[FileStat]) -> str:
    """What a rescan compares to see the directory's cover picture changed: its name, size
    and modification time ("" for none)."""
    cover = sidecar_cover(sidecars)
    return "" if cover is None else f"{cover.name}:{cover.size}:{cover.mtime_ns}"


def lyrics_for(directory: str, name: str, sidecars: list[FileStat]) -> str | None:
    """The relative path of the ``.lrc`` beside track ``name`` (same stem), if any."""
    if not sidecars:
        return None
    wanted = PurePosixPath(name).stem + LYRICS_EXTENSION
    for sidecar in sidecars:
        if sidecar.name == wanted or sidecar.name.casefold() == wanted.casefold():
            return f"{directory}/{sidecar.name}" if directory else sidecar.name
    return None


def cover_type(name: str) -> str:
    return COVER_TYPES[PurePosixPath(name).suffix.casefold()]


def cover_blob(data: bytes, mime: str) -> tuple[str, dict]:
    """The blob name of a cover's bytes (content-addressed, as embedded covers are stored)
    and the clip columns that name it."""
    name = covers.blob_name(data, mime)
    return name, {"cover_name": name, "cover_type": mime}


def embedded_cover(info: audio.AudioInfo) -> tuple[str, bytes, dict] | None:
    if info.cover is None:
        return None
    name, columns = cover_blob(info.cover.data, info.cover.mime)
    return name, info.cover.data, columns


def file_columns(folder: str, path: str, read: FileRead, lyrics_path: str | None) -> dict:
    """Every column a file's bytes and place decide (cover aside): tags with the upload's
    rules (title from the tags, else the file's name), and where the file is."""
    info: audio.AudioInfo = read.result
    name = PurePosixPath(path).name
    fields = upload_fields(info, UploadForm(filename=name))
    fields.update(
        content_type=info.content_type,
        size=read.size,
        sha256=read.sha256,
        # Named as a stored upload would be, so the clip counts as having a file; a library
        # clip's audio is never put in, or removed from, the media store.
        file_name=read.sha256 + info.extension,
        source=LIBRARY,
        music_folder=folder,
        path=path,
        mtime_ns=read.mtime_ns,
        lyrics_path=lyrics_path,
    )
    return fields


def new_row(fields: dict) -> dict:
    """A new clip's row: id, counters, times, search text and its album, artist and
    directory; every loudness column (a scan inserts many rows at once, which must name
    the same columns: the tags give some files' figures, not others')."""
    return new_clip_row(**{**replay_gain.UNREAD, **fields})


def changed_row(fields: dict) -> dict:
    """The columns of an existing clip that ``fields`` change (its id and counts stay)."""
    row = {**fields, "updated_at": utcnow()}
    row["search_text"] = search_text_for(
        row["title"], row.get("description"), row.get("artist"), row.get("album")
    )
    row.update(filter_keys(row))
    row.update(grouping.song_ids(row))
    return row


def placed(known: dict, folder: str, path: str, lyrics_path: str | None) -> dict:
    """The columns of a known clip found again at ``path`` (moved, or back): its directory
    follows its path."""
    row = {"music_folder": folder, "path": path, "missing_since": None,
           "lyrics_path": lyrics_path, "updated_at": utcnow()}  # fmt: skip
    row.update(grouping.song_ids({**known, **row}))
    return row
