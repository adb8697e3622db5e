"""The catalogue: every read and write of clips, and the rules that go with them.

Resources call these functions and shape the answers; nothing here knows about HTTP.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import datetime as dt
import json
import logging
import unicodedata
import uuid
from dataclasses import dataclass
from pathlib import PurePosixPath

import peewee
from peewee import SQL, NodeList

from mosic import audio
from mosic.models import TAG_MAX, TITLE_MAX, Clip, search_text_for
from mosic.storage import IncomingFile, MediaStore

log = logging.getLogger(__name__)

DESCRIPTION_MAX = 5000
UNTITLED = "Untitled"
# Sort keys a client may ask for; "-" means descending. Each maps to a non-null column, and
# the id breaks ties so pages never overlap or skip.
SORT_FIELDS = {
    "created_at": Clip.created_at,
    "title": Clip.title,
    "play_count": Clip.play_count,
    "duration": Clip.duration,
}
DEFAULT_SORT = "-created_at"
# Numbers in a cursor must fit a 64-bit column, or the database refuses the query.
CURSOR_NUMBER_MAX = 2**63 - 1


class ClipNotFound(Exception):
    pass


class DuplicateClip(Exception):
    def __init__(self, existing_id: uuid.UUID) -> None:
        super().__init__(f"the same audio is already stored as clip {existing_id}")
        self.existing_id = existing_id


class InvalidCursor(ValueError):
    pass


class InvalidText(ValueError):
    """A title or description a client sent that the catalogue cannot take."""


def client_text(name: str, value: str, limit: int) -> str | None:
    """A client's title or description, trimmed; None when blank. The same rules for JSON
    bodies and upload forms."""
    if "\x00" in value:
        raise InvalidText(f"'{name}' must not contain NUL characters")
    value = value.strip()
    if len(value) > limit:
        raise InvalidText(f"'{name}' must be at most {limit} characters, got {len(value)}")
    return value or None


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


def printable(value: str | None, limit: int) -> str | None:
    """Text from files and file names, made fit to store: control characters (NUL among
    them, which PostgreSQL refuses) dropped, whitespace trimmed, length capped."""
    if not value:
        return None
    kept = "".join(ch for ch in value if ch in "\n\t" or unicodedata.category(ch) != "Cc")
    return kept.strip()[:limit].strip() or None


def title_from_filename(filename: str | None) -> str | None:
    if not filename:
        return None
    # Clients send Windows paths too; only the last component names the song.
    name = PurePosixPath(filename.replace("\\", "/")).name
    stem = name.rsplit(".", 1)[0] if "." in name[1:] else name
    return printable(stem, TITLE_MAX)


def encode_cursor(sort: str, clip: Clip) -> str:
    value = getattr(clip, sort.lstrip("-"))
    if isinstance(value, dt.datetime):
        value = value.isoformat()
    raw = json.dumps({"s": sort, "v": value, "id": str(clip.id)}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, sort: str) -> tuple[object, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = json.loads(raw)
        if data["s"] != sort:
            raise InvalidCursor("the cursor belongs to a different sort order")
        value = data["v"]
        if sort.lstrip("-") == "created_at":
            value = dt.datetime.fromisoformat(value)
        elif sort.lstrip("-") == "title":
            if not isinstance(value, str) or "\x00" in value:
                raise InvalidCursor("the cursor is not one this server issued")
        elif (
            not isinstance(value, int | float)
            or isinstance(value, bool)
            or not -CURSOR_NUMBER_MAX <= value <= CURSOR_NUMBER_MAX
        ):
            raise InvalidCursor("the cursor is not one this server issued")
        return value, uuid.UUID(data["id"])
    except InvalidCursor:
        raise
    except (binascii.Error, ValueError, KeyError, TypeError, UnicodeDecodeError):
        raise InvalidCursor("the cursor is not one this server issued") from None


def _like_contains(column, needle: str):
    escaped = needle.replace("!", "!!").replace("%", "!%").replace("_", "!_")
    return NodeList((column, SQL("LIKE"), f"%{escaped}%", SQL("ESCAPE '!'")))


class Catalogue:
    def __init__(self, db, store: MediaStore) -> None:
        self.db = db
        self.store = store

    async def _one(self, query) -> Clip | None:
        rows = await self.db.aio_execute(query.limit(1))
        return rows[0] if rows else None

    async def get(self, clip_id: uuid.UUID) -> Clip:
        clip = await self._one(Clip.select().where(Clip.id == clip_id))
        if clip is None:
            raise ClipNotFound(clip_id)
        return clip

    async def count(self) -> int:
        return await Clip.select().aio_count(self.db)

    async def list(self, query: ListQuery) -> Page:
        base = Clip.select()
        if query.q:
            base = base.where(_like_contains(Clip.search_text, query.q.casefold()))
        total = await base.aio_count(self.db)

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
        rows = await self.db.aio_execute(rows_query.limit(query.limit + 1))
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
        now = utcnow()
        clip = Clip(
            id=uuid.uuid4(),
            title=title,
            description=description,
            duration=duration,
            artist=artist,
            album=album,
            external_url=audio_url,
            search_text=search_text_for(title, description, artist, album),
            play_count=0,
            created_at=now,
            updated_at=now,
        )
        await self.db.aio_execute(Clip.insert(**clip.__data__).returning(Clip.id))
        return clip

    async def add_upload(self, incoming: IncomingFile, form: UploadForm) -> Clip:
        """Turn a fully received file into a clip, or raise and leave nothing behind.

        The caller owns ``incoming`` and discards it afterwards if it is still there; once the
        row commits, the file has been moved to its final name.
        """
        info = await asyncio.to_thread(audio.probe, incoming.path)
        existing = await self._one(Clip.select(Clip.id).where(Clip.sha256 == incoming.sha256))
        if existing is not None:
            raise DuplicateClip(existing.id)

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
        artist = printable(info.artist, TAG_MAX)
        album = printable(info.album, TAG_MAX)
        now = utcnow()
        file_name = incoming.sha256 + info.extension
        clip = Clip(
            id=uuid.uuid4(),
            title=title,
            description=description,
            duration=info.duration,
            artist=artist,
            album=album,
            content_type=info.content_type,
            size=incoming.size,
            sha256=incoming.sha256,
            file_name=file_name,
            search_text=search_text_for(title, description, artist, album),
            play_count=0,
            created_at=now,
            updated_at=now,
        )
        published = False
        try:
            async with self.db.aio_atomic():
                await self.db.aio_execute(Clip.insert(**clip.__data__).returning(Clip.id))
                self.store.publish(incoming, file_name)
                published = True
        except peewee.IntegrityError:
            # An identical upload committed between our check and our insert.
            winner = await self._one(Clip.select(Clip.id).where(Clip.sha256 == incoming.sha256))
            if winner is None:
                raise
            raise DuplicateClip(winner.id) from None
        except BaseException:
            if published:
                self.store.remove(file_name)
            raise
        return clip

    async def update(self, clip_id: uuid.UUID, changes: dict[str, str | None]) -> Clip:
        clip = await self.get(clip_id)
        if not changes:
            return clip
        for name, value in changes.items():
            setattr(clip, name, value)
        clip.updated_at = utcnow()
        clip.search_text = search_text_for(clip.title, clip.description, clip.artist, clip.album)
        updated = await self.db.aio_execute(
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
        async with self.db.aio_atomic():
            rows = await self.db.aio_execute(
                Clip.delete().where(Clip.id == clip_id).returning(Clip.file_name)
            )
            if not rows:
                raise ClipNotFound(clip_id)
            if rows[0].file_name:
                self.store.remove(rows[0].file_name)

    async def record_play(self, clip_id: uuid.UUID) -> int | None:
        """Count one play: a single atomic UPDATE, so concurrent listeners never lose one.

        Returns the new count, or None when the clip is gone.
        """
        rows = await self.db.aio_execute(
            Clip.update(play_count=Clip.play_count + 1, last_played_at=utcnow())
            .where(Clip.id == clip_id)
            .returning(Clip.play_count)
        )
        rows = list(rows)
        return rows[0].play_count if rows else None
