"""The catalogue: every read and write of clips, and the rules that go with them.

Resources call these methods and shape the answers; nothing here knows about HTTP. The
catalogue owns its database and media store: callers ask it, never them.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import hashlib
import logging
import uuid
from dataclasses import dataclass

import peewee
from peewee import SQL, NodeList, fn

from mosic.core import audio, covers
from mosic.core.cursors import decode_cursor, encode_cursor
from mosic.core.text import (
    DESCRIPTION_MAX,
    UNTITLED,
    printable,
    search_text_for,
    title_from_filename,
)
from mosic.core.waveform import Peaks, Waveforms
from mosic.media.storage import Incoming, MediaMissing, MediaStore, StoredMedia
from mosic.persistence.compiled import BatchedLookup, CompiledQuery, Records
from mosic.persistence.models import (
    CLIP_FIELDS,
    LIBRARY,
    LISTED_FIELDS,
    TAG_MAX,
    TITLE_MAX,
    Clip,
    clip_records,
    listed_records,
)

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
# A play's UPDATE returns the new count alone (the whole row cost a stream 31 values more).
_COUNTS = Records(int, [Clip.play_count])
# What the hot queries are compiled with (mosic.persistence.compiled); never stored.
_SOME_ID = uuid.UUID(int=0)
_SOME_TIME = dt.datetime(2000, 1, 1)
# Exact, case-insensitive filters of a listing: each name maps to its case-folded column.
TEXT_FILTERS = {"genre": Clip.genre_key, "artist": Clip.artist_key, "album": Clip.album_key}
# The version of the rules that read tags from files. Clips whose ``media_version`` is older
# (or null: added before the column existed) are read again by ``read_pending``.
MEDIA_VERSION = 1
READ_PENDING_BATCH = 50


class ClipNotFound(Exception):
    pass


class NoCover(Exception):
    """The clip has no cover (its file embeds no picture), or the stored cover is gone."""


class NoWaveform(Exception):
    """The clip has no waveform: it is metadata-only, or its audio could not be decoded."""


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
    genre: str | None = None
    artist: str | None = None
    album: str | None = None
    year: int | None = None

    @property
    def sort_field(self) -> str:
        return self.sort.lstrip("-")

    @property
    def descending(self) -> bool:
        return self.sort.startswith("-")


@dataclass
class Page:
    clips: list  # ListedRecords: the fields a listing shows, as attributes
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


@dataclass(frozen=True)
class StoredBlob:
    """A cover or a waveform as the catalogue names it; a cover's name is its content's
    SHA-256 (``sha256``), a waveform's is its audio's (``sha256`` None: not its own)."""

    name: str
    sha256: str | None


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
    row.update(filter_keys(row))
    return row


def filter_keys(fields: dict) -> dict:
    """The case-folded columns the exact filters of a listing compare with."""
    return {
        f"{name}_key": fields[name].casefold() if fields.get(name) else None
        for name in TEXT_FILTERS
    }


def _filtered(base, query: ListQuery):
    if query.q:
        base = base.where(_like_contains(Clip.search_text, query.q.casefold()))
    for name, column in TEXT_FILTERS.items():
        value = getattr(query, name)
        if value is not None:
            base = base.where(column == value.casefold())
    if query.year is not None:
        base = base.where(Clip.year == query.year)
    return base


def _like_contains(column, needle: str):
    return NodeList((column, SQL("LIKE"), _contains_pattern(needle), SQL("ESCAPE '!'")))


def _contains_pattern(needle: str) -> str:
    escaped = needle.replace("!", "!!").replace("%", "!%").replace("_", "!_")
    return f"%{escaped}%"


def _matches(query: ListQuery):
    return _filtered(Clip.select(fn.COUNT(SQL("*"))), query)


def _page_query(query: ListQuery):
    """A page of ``query`` and its count of matches, as a peewee query."""
    column = SORT_FIELDS[query.sort_field]
    order = (column.desc(), Clip.id.desc()) if query.descending else (column, Clip.id)
    rows = _filtered(Clip.select(*LISTED_FIELDS, _matches(query)), query).order_by(*order)
    if query.cursor:
        key = peewee.Tuple(column, Clip.id)
        after = peewee.Tuple(*_cursor_params(query, column))
        rows = rows.where(key < after if query.descending else key > after)
    if query.offset:
        rows = rows.offset(query.offset)
    return rows.limit(query.limit + 1)


def _page_params(query: ListQuery) -> list:
    """The parameters of ``_page_query(query)``, in the order of its SQL text: the filters
    of the count (a column, so first), the filters again, the cursor, limit and offset."""
    filters = [_contains_pattern(query.q.casefold())] if query.q else []
    filters += [getattr(query, n).casefold() for n in TEXT_FILTERS if getattr(query, n) is not None]
    if query.year is not None:
        filters.append(query.year)
    params = filters + filters
    if query.cursor:
        params += _cursor_params(query, SORT_FIELDS[query.sort_field])
    params.append(query.limit + 1)
    if query.offset:
        params.append(query.offset)
    return params


def _cursor_params(query: ListQuery, column) -> list:
    value, last_id = decode_cursor(query.cursor, query.sort)
    # Tuple members are not converted by their fields, so convert them here.
    return [column.db_value(value), Clip.id.db_value(last_id)]


class Catalogue:
    def __init__(self, *, db, store: MediaStore, waveforms: Waveforms, folders=None) -> None:
        self._db = db
        self._store = store
        self._folders = folders  # library clips' files (mosic.media.folders.FolderFiles)
        self._waveforms = waveforms
        some_id = (Clip.id, _SOME_ID)
        self._by_id = BatchedLookup(db, Clip.select(*CLIP_FIELDS), Clip.id, clip_records)
        self._page_sql: dict[tuple, str] = {}
        self._play = CompiledQuery(
            db,
            Clip.update(play_count=Clip.play_count + 1, last_played_at=_SOME_TIME)
            .where(Clip.id == _SOME_ID)
            .returning(Clip.play_count),
            _COUNTS,
            clip_id=some_id,
            now=(Clip.last_played_at, _SOME_TIME),
        )

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

    @property
    def reads_by_id(self) -> BatchedLookup:
        """The coalesced reads behind ``get`` (its counters show how much is coalesced)."""
        return self._by_id

    async def get(self, clip_id: uuid.UUID) -> Clip:
        clip = await self._by_id.get(clip_id)
        if clip is None:
            raise ClipNotFound(clip_id)
        return clip

    async def open_media(self, clip: Clip) -> StoredMedia:
        """Open a clip's stored audio; raises ``MediaMissing`` when the file is gone."""
        if clip.source == LIBRARY:  # its file, where it lies in its music folder
            if self._folders is None:
                raise MediaMissing(clip.path)
            return await self._folders.open(clip.music_folder, clip.path)
        return await self._store.open(clip.file_name)

    async def stored_entries(self) -> list[StoredEntry]:
        """Every stored file the catalogue refers to (for copying a library elsewhere)."""
        query = Clip.select(Clip.file_name, Clip.sha256, Clip.size).where(
            Clip.file_name.is_null(False)
        )
        rows = await self._db.aio_execute(query.order_by(Clip.created_at).tuples())
        return [StoredEntry(*row) for row in rows]

    async def stored_blobs(self) -> list[StoredBlob]:
        """Every cover and waveform blob the catalogue refers to, each once (covers are
        shared). Scaled covers are left out: they are made again when asked for."""
        blobs = []
        for column, named_by_content in ((Clip.cover_name, True), (Clip.waveform_name, False)):
            query = Clip.select(column).where(column.is_null(False)).distinct()
            for (name,) in await self._db.aio_execute(query.order_by(column).tuples()):
                blobs.append(StoredBlob(name, name.split(".")[0] if named_by_content else None))
        return blobs

    async def cover(self, clip: Clip) -> bytes:
        """The bytes of the clip's cover; raises ``NoCover``."""
        if clip.cover_name is None:
            raise NoCover(clip.id)
        try:
            return await self._store.get(clip.cover_name)
        except MediaMissing:
            raise NoCover(clip.id) from None

    async def cover_at(self, clip: Clip, size: int | None) -> covers.Cover:
        """The clip's cover with its longest side at most ``size`` (None: as embedded);
        raises ``NoCover``. A resized picture is made once and kept in the store."""
        if size is None or clip.cover_name is None:
            return covers.Cover(clip.cover_name, await self.cover(clip), clip.cover_type)
        name = covers.sized_name(clip.cover_name, size)
        with contextlib.suppress(MediaMissing):
            return covers.Cover(name, await self._store.get(name), clip.cover_type)
        original = await self.cover(clip)
        data = await covers.resized(original, covers.size_step(size))
        if data is None:  # already that small (or unreadable): the original, as it is
            return covers.Cover(clip.cover_name, original, clip.cover_type)
        await self._store.put(name, data)
        return covers.Cover(name, data, clip.cover_type)

    async def waveform(self, clip: Clip) -> Peaks:
        """The clip's stored peaks, at full resolution; raises ``NoWaveform``."""
        if clip.waveform_name is None:
            raise NoWaveform(clip.id)
        try:
            return Peaks.from_dat(await self._store.get(clip.waveform_name))
        except MediaMissing:
            raise NoWaveform(clip.id) from None

    async def _store_waveform(self, sha256: str, inspect) -> dict:
        """Compute and store the peaks of the audio ``inspect`` reads (off the event loop);
        the column that names them, or nothing when the audio cannot be decoded."""
        peaks = await self._waveforms.compute(inspect)
        if peaks is None:
            return {}
        name = f"{sha256}{WAVEFORM_SUFFIX}"
        await self._store.put(name, peaks.to_dat())
        return {"waveform_name": name}

    async def _store_cover(self, info: audio.AudioInfo) -> dict:
        """Store the file's cover once by its content hash; the columns that name it."""
        if info.cover is None:
            return {}
        name = hashlib.sha256(info.cover.data).hexdigest() + _image_extension(info.cover.mime)
        await self._store.put(name, info.cover.data)
        return {"cover_name": name, "cover_type": info.cover.mime}

    async def _drop_if_unused(self, column, name: str | None) -> None:
        # Derived blobs are named by content: one goes only when no clip names it any more
        # (covers are shared; an identical upload that won a race has the same peaks).
        if name and not await self._one(Clip.select(Clip.id).where(column == name)):
            await self._store.remove(name)
            if column is Clip.cover_name:  # and the copies made for getCoverArt sizes
                for scaled in covers.sized_names(name):
                    await self._store.remove(scaled)

    async def _cleanup_blobs(self, row: dict) -> None:
        """After a failed add: drop its cover and peaks unless another clip uses them. Never
        raises, so the failure that brought us here is the one the caller sees."""
        for column in (Clip.cover_name, Clip.waveform_name):
            name = row.get(column.name)
            try:
                await self._drop_if_unused(column, name)
            except Exception as exc:
                log.warning("%s of a failed upload was left behind: %s", name, exc)

    async def count(self) -> int:
        return await Clip.select().aio_count(self._db)

    async def list(self, query: ListQuery) -> Page:
        """One page, and the number of clips that match, in one statement: the count is a
        scalar subquery, which both databases evaluate once (a window count would read every
        match before the first row)."""
        sql, params = self._page_statement(query)
        rows = await self._db.fetch_rows(sql, params)
        # Past the last page there is no row to carry the count.
        total = rows[0][-1] if rows else await _matches(query).aio_scalar(self._db)
        page = Page(
            clips=listed_records(rows[: query.limit], typed=self._db.rows_are_typed), total=total
        )
        if len(rows) > query.limit:
            if query.offset is not None:
                page.next_offset = query.offset + query.limit
            else:
                page.next_cursor = encode_cursor(query.sort, page.clips[-1])
        return page

    def _page_statement(self, query: ListQuery) -> tuple[str, list]:
        """The page's SQL and parameters. The text depends only on the query's shape (sort,
        which filters, cursor or offset), so peewee builds it once per shape (5 % of a
        500-row page was peewee making the same text again); the parameters are computed
        here, and checked against peewee's the first time each shape is seen."""
        shape = (
            query.sort,
            bool(query.q),
            tuple(name for name in TEXT_FILTERS if getattr(query, name) is not None),
            query.year is not None,
            bool(query.cursor),
            bool(query.offset),
        )
        params = _page_params(query)
        sql = self._page_sql.get(shape)
        if sql is None:
            sql, built = self._db.get_sql_context().sql(_page_query(query)).query()
            if built != params:
                raise AssertionError(f"list parameters {params} are not peewee's {built}")
            self._page_sql[shape] = sql
        return sql, params

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
            media_version=MEDIA_VERSION,
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
            row.update(await self._store_cover(info))
            row.update(await self._store_waveform(incoming.sha256, incoming.inspect))
            async with self._db.aio_atomic():
                await self._db.aio_execute(Clip.insert(row).returning(Clip.id))
                await self._store.publish(incoming, row["file_name"])
                published = True
        except BaseException as exc:
            if published:  # the commit failed after the file was moved into place
                await self._store.remove(row["file_name"])
            await self._cleanup_blobs(row)
            if isinstance(exc, peewee.IntegrityError):
                await self._raise_duplicate_of_winner(incoming)
            raise
        return Clip(**row)

    async def read_pending(self) -> int:
        """Read the tags of every clip added before the current file-reading rules (after a
        migration added their columns); returns how many clips were read. Idempotent: each
        clip is marked as read, and a file that cannot be read leaves its tags null."""
        done = 0
        while True:
            batch = await self._db.aio_execute(
                Clip.select()
                .where(Clip.media_version.is_null() | (Clip.media_version < MEDIA_VERSION))
                .order_by(Clip.id)
                .limit(READ_PENDING_BATCH)
            )
            if not batch:
                return done
            for clip in batch:
                changes = filter_keys({"artist": clip.artist, "album": clip.album})
                if not clip.is_external:
                    changes.update(await self._reread(clip))
                await self._db.aio_execute(
                    Clip.update(**changes, media_version=MEDIA_VERSION).where(Clip.id == clip.id)
                )
                done += 1

    async def _reread(self, clip: Clip) -> dict:
        try:
            info = await self._store.inspect(clip.file_name, audio.probe)
        except (audio.NotAudio, MediaMissing) as exc:
            log.warning("clip %s: tags left empty, its file could not be read: %s", clip.id, exc)
            return {}
        fields = {**_tag_fields(info), **await self._store_cover(info)}
        reader = functools.partial(self._store.inspect, clip.file_name)
        fields.update(await self._store_waveform(clip.sha256, reader))
        return {**fields, **filter_keys({**fields, "artist": clip.artist, "album": clip.album})}

    async def _raise_duplicate_of_winner(self, incoming: Incoming) -> None:
        # An identical upload committed between our check and our insert.
        winner = await self._one(Clip.select(Clip.id).where(Clip.sha256 == incoming.sha256))
        if winner is not None:
            raise DuplicateClip(winner.id) from None

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
                Clip.delete()
                .where(Clip.id == clip_id)
                .returning(Clip.file_name, Clip.cover_name, Clip.waveform_name)
            )
            if not rows:
                raise ClipNotFound(clip_id)
            for name in (rows[0].file_name, rows[0].waveform_name):
                if name:
                    await self._store.remove(name)
            await self._drop_if_unused(Clip.cover_name, rows[0].cover_name)

    async def record_play(self, clip_id: uuid.UUID) -> int | None:
        """Count one play: a single atomic UPDATE, so concurrent listeners never lose one.

        Returns the new count, or None when the clip is gone. Count through
        ``mosic.core.plays.PlayRecorder``, which also keeps the metric.
        """
        rows = await self._play.run(clip_id=clip_id, now=utcnow())
        return rows[0] if rows else None


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
        **_tag_fields(info),
        "media_version": MEDIA_VERSION,
    }


def _tag_fields(info: audio.AudioInfo) -> dict:
    """The full tags and stream facts, cleaned like every text read from a file."""
    return {
        "genre": printable(info.genre, TAG_MAX),
        "album_artist": printable(info.album_artist, TAG_MAX),
        "track": info.track,
        "disc": info.disc,
        "year": info.year,
        "bitrate": info.bitrate,
        "sample_rate": info.sample_rate,
        "channels": info.channels,
    }


# Covers are stored under their hash with the extension of their type, so a store's listing
# (and an S3 console) shows what they are.
WAVEFORM_SUFFIX = ".dat"  # the audiowaveform binary format
IMAGE_EXTENSIONS = {
    "image/jpeg": ".jpg",
    "image/png": ".png",
    "image/gif": ".gif",
    "image/webp": ".webp",
    "image/bmp": ".bmp",
}


def _image_extension(mime: str) -> str:
    return IMAGE_EXTENSIONS.get(mime, ".img")


def _file_fields(incoming: Incoming, info: audio.AudioInfo) -> dict:
    return {
        "content_type": info.content_type,
        "size": incoming.size,
        "sha256": incoming.sha256,
        "file_name": incoming.sha256 + info.extension,
    }
