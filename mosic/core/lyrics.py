"""A song's lyrics: those its file's tags hold, kept in ``clip_lyrics`` when the tags are read
(upload, import, re-read, scan), and a library file's ``.lrc`` sidecar, read from its music
folder when asked.

The sidecar is read at each ask, not kept: editing an ``.lrc`` changes neither the audio's
size nor its modification time, so a rescan would never see it, while reading a small file
beside the audio costs less than the answer's own query. It comes first: someone put it
there for that song, on purpose.
"""

from __future__ import annotations

import asyncio
import json
import logging
import unicodedata
import uuid
from collections.abc import Iterable, Sequence

from mosic.core import lrc
from mosic.core.aggregates import songs
from mosic.core.keys import Folders
from mosic.media.folders import FolderFiles, read_bytes
from mosic.media.storage import MediaMissing
from mosic.persistence.models import LIBRARY, Clip, LyricsRow

log = logging.getLogger(__name__)
# An .lrc past this is not lyrics: it is left unread.
SIDECAR_MAX_BYTES = 1024 * 1024
# getLyrics by artist and title: the artist's songs looked at (through the artist_key index),
# oldest first, and among those with the title, how many are asked for lyrics.
ARTIST_SONGS_MAX = 2000
TITLE_MATCHES_MAX = 10
# Rows per statement when lyrics are written (SQLite's variables are limited).
WRITE_BATCH = 100
_BOMS = ((b"\xef\xbb\xbf", "utf-8-sig"), (b"\xff\xfe", "utf-16"), (b"\xfe\xff", "utf-16"))


class NoLyrics(Exception):
    """The clip has no lyrics: its tags hold none, and it has no readable sidecar."""


def rows_of(clip_id: uuid.UUID, found: Sequence[lrc.Lyrics]) -> list[dict]:
    """The ``clip_lyrics`` rows of a clip whose file holds ``found``."""
    return [
        {
            "clip_id": clip_id,
            "position": position,
            "synced": lyrics.synced,
            "lang": lyrics.lang,
            "offset_ms": lyrics.offset_ms,
            "lines": json.dumps(
                [[line.start_ms, line.text] for line in lyrics.lines], ensure_ascii=False
            ),
        }
        for position, lyrics in enumerate(found)
    ]


async def replace(db, clip_ids: Iterable[uuid.UUID], rows: list[dict]) -> None:
    """Make ``rows`` the lyrics of ``clip_ids`` (the clips read again); run inside the
    transaction that writes the clips."""
    ids = list(clip_ids)
    for start in range(0, len(ids), WRITE_BATCH):
        chunk = ids[start : start + WRITE_BATCH]
        await db.aio_execute(LyricsRow.delete().where(LyricsRow.clip_id.in_(chunk)))
    for start in range(0, len(rows), WRITE_BATCH):
        chunk = rows[start : start + WRITE_BATCH]
        await db.aio_execute(LyricsRow.insert_many(chunk).returning(LyricsRow.position))


async def forget(db, clip_ids: Iterable[uuid.UUID]) -> None:
    """Drop the lyrics of deleted clips."""
    await replace(db, clip_ids, [])


def _lyrics(row: LyricsRow) -> lrc.Lyrics:
    lines = tuple(lrc.Line(start, text) for start, text in json.loads(row.lines))
    return lrc.Lyrics(row.synced, lines, row.lang, row.offset_ms)


def decode(data: bytes) -> str:
    """An .lrc's text: UTF-8 (or UTF-16 with its mark), else Windows-1252, never failing."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            return data.decode(encoding, errors="replace")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def _folded(text: str | None) -> str:
    return unicodedata.normalize("NFC", (text or "").strip()).casefold()


class SongLyrics:
    """Reads a song's lyrics: ``of(clip)``, and ``find(artist, title)`` for Subsonic's
    ``getLyrics``."""

    def __init__(self, *, db, folders: FolderFiles | None = None) -> None:
        self._db = db
        self._folders = folders

    async def of(self, clip) -> list[lrc.Lyrics]:
        """The clip's lyrics, its sidecar's first; empty when it has none."""
        query = LyricsRow.select().where(LyricsRow.clip_id == clip.id)
        rows = await self._db.aio_execute(query.order_by(LyricsRow.position))
        kept = [_lyrics(row) for row in rows]
        sidecar = await self._sidecar(clip)
        return [sidecar, *kept] if sidecar is not None else kept

    async def _sidecar(self, clip) -> lrc.Lyrics | None:
        if clip.source != LIBRARY or not clip.lyrics_path or self._folders is None:
            return None
        try:
            real = await asyncio.to_thread(self._folders.path, clip.music_folder, clip.lyrics_path)
            data = await asyncio.to_thread(read_bytes, real, SIDECAR_MAX_BYTES)
        except (OSError, MediaMissing) as exc:  # gone since the scan: as if it never was
            log.info("lyrics %s/%s cannot be read: %s", clip.music_folder, clip.lyrics_path, exc)
            return None
        return lrc.parse(decode(data)) if data is not None else None

    async def find(self, artist: str, title: str, seen: Folders):
        """The first song (oldest first) by ``artist`` titled ``title`` (both compared without
        regard to case) that ``seen`` shows and that has lyrics, and its lyrics; None when
        none has. Through the index of ``Clip.artist_key``, never a scan of every clip."""
        if not _folded(artist) or not _folded(title):
            return None
        shown = (Clip.id, Clip.title, Clip.artist, Clip.source, Clip.music_folder, Clip.lyrics_path)
        query = (
            Clip.select(*shown)
            .where(songs() & (Clip.artist_key == artist.strip().casefold()))
            .order_by(Clip.created_at, Clip.id)
            .limit(ARTIST_SONGS_MAX)
        )
        if seen.names is not None:
            query = query.where(Clip.music_folder.in_(list(seen.names)))
        wanted = _folded(title)
        matches = [c for c in await self._db.aio_execute(query) if _folded(c.title) == wanted]
        for clip in matches[:TITLE_MATCHES_MAX]:
            found = await self.of(clip)
            if found:
                return clip, found
        return None
