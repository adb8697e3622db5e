"""What of the media store the clips refer to, for copying it elsewhere (``mosic storage
migrate``): uploads' audio files, and the covers and peaks."""

from __future__ import annotations

from dataclasses import dataclass

from mosic.core.waveform import WAVEFORM_CONTENT_TYPE
from mosic.persistence.models import UPLOAD, Clip


@dataclass(frozen=True)
class StoredEntry:
    """A stored file as the catalogue knows it: its name, content hash, size and type."""

    file_name: str
    sha256: str
    size: int
    content_type: str


@dataclass(frozen=True)
class StoredBlob:
    """A cover or a waveform as the catalogue names it; a cover's name is its content's
    SHA-256 (``sha256``), a waveform's is its audio's (``sha256`` None: not its own)."""

    name: str
    sha256: str | None
    content_type: str


async def stored_entries(db) -> list[StoredEntry]:
    """Every file of the media store a clip refers to: uploads only, since a library clip's
    file lies in its music folder."""
    query = Clip.select(Clip.file_name, Clip.sha256, Clip.size, Clip.content_type).where(
        Clip.file_name.is_null(False) & (Clip.source == UPLOAD)
    )
    rows = await db.aio_execute(query.order_by(Clip.created_at).tuples())
    return [StoredEntry(*row) for row in rows]


async def stored_blobs(db) -> list[StoredBlob]:
    """Every cover and waveform blob the clips refer to, each once (covers are shared).
    Scaled covers are left out: they are made again when asked for."""
    blobs = []
    covers_query = Clip.select(Clip.cover_name, Clip.cover_type).where(
        Clip.cover_name.is_null(False)
    )
    for name, content_type in await db.aio_execute(
        covers_query.distinct().order_by(Clip.cover_name).tuples()
    ):
        blobs.append(StoredBlob(name, name.split(".")[0], content_type))
    waveforms = Clip.select(Clip.waveform_name).where(Clip.waveform_name.is_null(False))
    for (name,) in await db.aio_execute(waveforms.distinct().order_by(Clip.waveform_name).tuples()):
        blobs.append(StoredBlob(name, None, WAVEFORM_CONTENT_TYPE))
    return blobs
