"""The catalogue: every read and write of clips, and the rules that go with them.

Resources call these methods and shape the answers; nothing here knows about HTTP. The
catalogue owns its database and media store: callers ask it, never them.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from dataclasses import dataclass

import peewee
from peewee import SQL, NodeList

from mosic.core import audio
from mosic.core.cursors import decode_cursor, encode_cursor
from mosic.core.text import (
    DESCRIPTION_MAX,
    UNTITLED,
    printable,
    search_text_for,
    title_from_filename,
)
from mosic.media.storage import Incoming, MediaStore, StoredMedia
from mosic.persistence.models import TAG_MAX, TITLE_MAX, Clip

log = logging.getLogger(__name__)

# Sort keys a client may ask for; "-" means descending. Each maps to a non-null column, and
# the id breaks ties so pages never overlap or skip.
SORT_FIELDS = {
    "created_at": Clip.created_at,
    "title": Clip.title,
    "play_count": Clip.play_count,
    "duration": Clip.duration,
}
DEFAULT_SORT = "-created_at"


class ClipNotFound(Exception):
    pass


class DuplicateClip(Exception):
    def __init__(self, existing_id: uuid.UUID) -> None:
        super().__init__(f"the same audio is already stored as clip {existing_id}")
        self.existing_id = existing_id


def utcnow() -> dt.datetime:
    # Naive UTC in the database: the same on SQLite (text) and PostgreSQL (timestamp).
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


@dataclass(frozen=True)
class ListQuery:
    limit: int = 100
    offset: int | None = None
    cursor: str | None = None
    q: str | None = None
    sort: str = DEFAULT_SORT

    @property
    def sort_field(self) -> str:
        return self.sort.lstrip("-")

    @property
    def descending(self) -> bool:
        return self.sort.startswith("-")


@dataclass
class Page:
    clips: list[Clip]
    total: int
    next_offset: int | None = None
    next_cursor: str | None = None


@dataclass
class UploadForm:
    """What a multipart upload carried besides the file itself."""

    filename: str | None = None
    title: str | None = None
    description: str | None = None


@dataclass(frozen=True)
class StoredEntry:
    """A stored file as the catalogue knows it: its name, content hash and size."""

    file_name: str
    sha256: str
    size: int


def new_clip_row(**fields) -> dict:
    """The columns of a new clip: ``fields`` plus the id, counters, times and search text."""
    now = utcnow()
    row = {
        "id": uuid.uuid4(),
        "play_count": 0,
        "created_at": now,
        "updated_at": now,
        **fields,
    }
    row["search_text"] = search_text_for(
        row["title"], row.get("description"), row.get("artist"), row.get("album")
    )
    return row


def _like_contains(column, needle: str):
    escaped = needle.replace("!", "!!").replace("%", "!%").replace("_", "!_")
    return NodeList((column, SQL("LIKE"), f"%{escaped}%", SQL("ESCAPE '!'")))


class Catalogue:
    def __init__(self, *, db, store: MediaStore) -> None:
        self._db = db
        self._store = store

    async def ping(self) -> None:
        """Raise unless the database answers (readiness)."""
        await self._db.aio_execute_sql("SELECT 1")

    async def store_problem(self) -> str | None:
        """Why the media store cannot take writes now, or None (readiness)."""
        return await self._store.problem()

    async def sweep_incoming(self) -> int:
        """Remove partial uploads that crashed processes left behind; returns how many."""
        return await self._store.sweep()

    async def _one(self, query) -> Clip | None:
        rows = await self._db.aio_execute(query.limit(1))
        return rows[0] if rows else None

    async def get(self, clip_id: uuid.UUID) -> Clip:
        clip = await self._one(Clip.select().where(Clip.id == clip_id))
        if clip is None:
            raise ClipNotFound(clip_id)
        return clip

    async def open_media(self, clip: Clip) -> StoredMedia:
        """Open a clip's stored audio; raises ``MediaMissing`` when the file is gone."""
        return await self._store.open(clip.file_name)

    async def stored_entries(self) -> list[StoredEntry]:
        """Every stored file the catalogue refers to (for copying a library elsewhere)."""
        query = Clip.select(Clip.file_name, Clip.sha256, Clip.size).where(
            Clip.file_name.is_null(False)
        )
        rows = await self._db.aio_execute(query.order_by(Clip.created_at).tuples())
        return [StoredEntry(*row) for row in rows]

    async def count(self) -> int:
        return await Clip.select().aio_count(self._db)

    async def list(self, query: ListQuery) -> Page:
        base = Clip.select()
        if query.q:
            base = base.where(_like_contains(Clip.search_text, query.q.casefold()))
        total = await base.aio_count(self._db)

        column = SORT_FIELDS[query.sort_field]
        order = (column.desc(), Clip.id.desc()) if query.descending else (column, Clip.id)
        rows_query = base.order_by(*order)
        if query.cursor:
            value, last_id = decode_cursor(query.cursor, query.sort)
            key = peewee.Tuple(column, Clip.id)
            # Tuple members are not converted by their fields, so convert them here.
            after = peewee.Tuple(column.db_value(value), Clip.id.db_value(last_id))
            rows_query = rows_query.where(key < after if query.descending else key > after)
        if query.offset:
            rows_query = rows_query.offset(query.offset)
        rows = await self._db.aio_execute(rows_query.limit(query.limit + 1))
        page = Page(clips=list(rows[: query.limit]), total=total)
        if len(rows) > query.limit:
            if query.offset is not None:
                page.next_offset = query.offset + query.limit
            else:
                page.next_cursor = encode_cursor(query.sort, page.clips[-1])
        return page

    async def add_external(
        self,
        *,
        title: str,
        duration: float,
        audio_url: str,
        description: str | None = None,
        artist: str | None = None,
        album: str | None = None,
    ) -> Clip:
        """Register a metadata-only clip: its audio lives at ``audio_url``."""
        row = new_clip_row(
            title=title,
            description=description,
            duration=duration,
            artist=artist,
            album=album,
            external_url=audio_url,
        )
        await self._db.aio_execute(Clip.insert(row).returning(Clip.id))
        return Clip(**row)

    async def receive(self, limit: int) -> Incoming:
        """Start receiving an upload into the media store."""
        return await self._store.receive(limit)

    async def add_upload(self, incoming: Incoming, form: UploadForm) -> Clip:
        """Turn a fully received file into a clip, or raise and leave nothing behind.

        The caller owns ``incoming`` and discards it afterwards; once the row commits, the
        file has been published under its final name.
        """
        info = await incoming.inspect(audio.probe)
        existing = await self._one(Clip.select(Clip.id).where(Clip.sha256 == incoming.sha256))
        if existing is not None:
            raise DuplicateClip(existing.id)
        row = new_clip_row(**_upload_fields(info, form), **_file_fields(incoming, info))
        published = False
        try:
            async with self._db.aio_atomic():
                await self._db.aio_execute(Clip.insert(row).returning(Clip.id))
                await self._store.publish(incoming, row["file_name"])
                published = True
        except peewee.IntegrityError:
            # An identical upload committed between our check and our insert.
            winner = await self._one(Clip.select(Clip.id).where(Clip.sha256 == incoming.sha256))
            if winner is None:
                raise
            raise DuplicateClip(winner.id) from None
        except BaseException:
            if published:  # the commit failed after the file was moved into place
                await self._store.remove(row["file_name"])
            raise
        return Clip(**row)

    async def update(self, clip_id: uuid.UUID, changes: dict[str, str | None]) -> Clip:
        clip = await self.get(clip_id)
        if not changes:
            return clip
        for name, value in changes.items():
            setattr(clip, name, value)
        clip.updated_at = utcnow()
        clip.search_text = search_text_for(clip.title, clip.description, clip.artist, clip.album)
        updated = await self._db.aio_execute(
            Clip.update(
                title=clip.title,
                description=clip.description,
                search_text=clip.search_text,
                updated_at=clip.updated_at,
            ).where(Clip.id == clip_id)
        )
        if not updated:
            raise ClipNotFound(clip_id)
        return clip

    async def delete(self, clip_id: uuid.UUID) -> None:
        """Delete the row and its file. The file goes inside the transaction: an identical
        upload racing us waits on the row's unique hash until we commit, so it can never
        publish its file only to have us remove it."""
        async with self._db.aio_atomic():
            rows = await self._db.aio_execute(
                Clip.delete().where(Clip.id == clip_id).returning(Clip.file_name)
            )
            if not rows:
                raise ClipNotFound(clip_id)
            if rows[0].file_name:
                await self._store.remove(rows[0].file_name)

    async def record_play(self, clip_id: uuid.UUID) -> int | None:
        """Count one play: a single atomic UPDATE, so concurrent listeners never lose one.

        Returns the new count, or None when the clip is gone. Count through
        ``mosic.core.plays.PlayRecorder``, which also keeps the metric.
        """
        rows = await self._db.aio_execute(
            Clip.update(play_count=Clip.play_count + 1, last_played_at=utcnow())
            .where(Clip.id == clip_id)
            .returning(Clip.play_count)
        )
        rows = list(rows)
        return rows[0].play_count if rows else None


def _upload_fields(info: audio.AudioInfo, form: UploadForm) -> dict:
    """Title and description (form fields win over tags, tags over the file name) and tags."""
    title = (
        form.title
        or printable(info.title, TITLE_MAX)
        or title_from_filename(form.filename)
        or UNTITLED
    )
    description = (
        form.description
        if form.description is not None
        else printable(info.comment, DESCRIPTION_MAX)
    )
    return {
        "title": title,
        "description": description,
        "duration": info.duration,
        "artist": printable(info.artist, TAG_MAX),
        "album": printable(info.album, TAG_MAX),
    }


def _file_fields(incoming: Incoming, info: audio.AudioInfo) -> dict:
    return {
        "content_type": info.content_type,
        "size": incoming.size,
        "sha256": incoming.sha256,
        "file_name": incoming.sha256 + info.extension,
    }
