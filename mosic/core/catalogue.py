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
from peewee import fn

from mosic.core import audio, covers, grouping
from mosic.core.aggregates import Aggregates, Touched, visible
from mosic.core.listing import filter_keys
from mosic.core.text import (
    DESCRIPTION_MAX,
    UNTITLED,
    printable,
    search_text_for,
    title_from_filename,
)
from mosic.core.waveform import Peaks, Waveforms
from mosic.media.storage import Incoming, MediaMissing, MediaStore, StoredMedia
from mosic.persistence import search
from mosic.persistence.compiled import BatchedLookup, CompiledQuery, Records
from mosic.persistence.models import (
    CLIP_FIELDS,
    LIBRARY,
    TAG_MAX,
    TITLE_MAX,
    UPLOAD,
    Clip,
    MusicFolder,
    clip_records,
)

log = logging.getLogger(__name__)

# A play's UPDATE returns the new count alone (the whole row cost a stream 31 values more).
_COUNTS = Records(int, [Clip.play_count])
# What the hot queries are compiled with (mosic.persistence.compiled); never stored.
_SOME_ID = uuid.UUID(int=0)
_SOME_TIME = dt.datetime(2000, 1, 1)
# The version of the rules that read tags from files. Clips whose ``media_version`` is older
# (or null: added before the column existed) are read again by ``read_pending``.
MEDIA_VERSION = 1
READ_PENDING_BATCH = 50


class ClipNotFound(Exception):
    pass


class InLibraryFolder(Exception):
    """The clip is a file of a music folder: its tags and its file live there, not here."""

    def __init__(self, music_folder: str) -> None:
        super().__init__(
            f"this clip is a file of the music folder {music_folder!r}: change its tags or "
            "remove it there, and Mosic follows"
        )


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


@dataclass
class UploadForm:
    """What a multipart upload carried besides the file itself."""

    filename: str | None = None
    title: str | None = None
    description: str | None = None


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
    row.update(grouping.song_ids(row))
    return row


class Catalogue:
    def __init__(self, *, db, store: MediaStore, waveforms: Waveforms, folders=None) -> None:
        self._db = db
        self._store = store
        self._folders = folders  # library clips' files (mosic.media.folders.FolderFiles)
        self._waveforms = waveforms
        self._aggregates = Aggregates(db=db)
        some_id = (Clip.id, _SOME_ID)
        # A library clip whose file is missing is not found, everywhere.
        self._by_id = BatchedLookup(
            db, Clip.select(*CLIP_FIELDS).where(visible()), Clip.id, clip_records
        )
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
        """Every file of the media store the catalogue refers to (for copying it elsewhere):
        uploads only, since a library clip's file lies in its music folder."""
        query = Clip.select(Clip.file_name, Clip.sha256, Clip.size, Clip.content_type).where(
            Clip.file_name.is_null(False) & (Clip.source == UPLOAD)
        )
        rows = await self._db.aio_execute(query.order_by(Clip.created_at).tuples())
        return [StoredEntry(*row) for row in rows]

    async def stored_blobs(self) -> list[StoredBlob]:
        """Every cover and waveform blob the catalogue refers to, each once (covers are
        shared). Scaled covers are left out: they are made again when asked for."""
        blobs = []
        covers_query = Clip.select(Clip.cover_name, Clip.cover_type).where(
            Clip.cover_name.is_null(False)
        )
        for name, content_type in await self._db.aio_execute(
            covers_query.distinct().order_by(Clip.cover_name).tuples()
        ):
            blobs.append(StoredBlob(name, name.split(".")[0], content_type))
        waveforms = Clip.select(Clip.waveform_name).where(Clip.waveform_name.is_null(False))
        for (name,) in await self._db.aio_execute(
            waveforms.distinct().order_by(Clip.waveform_name).tuples()
        ):
            blobs.append(StoredBlob(name, None, WAVEFORM_CONTENT_TYPE))
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
        await self._store.put(name, data, content_type=clip.cover_type)
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
        await self._store.put(name, peaks.to_dat(), content_type=WAVEFORM_CONTENT_TYPE)
        return {"waveform_name": name}

    async def _store_cover(self, info: audio.AudioInfo) -> dict:
        """Store the file's cover once by its content hash; the columns that name it."""
        if info.cover is None:
            return {}
        name = hashlib.sha256(info.cover.data).hexdigest() + image_extension(info.cover.mime)
        await self._store.put(name, info.cover.data, content_type=info.cover.mime)
        return {"cover_name": name, "cover_type": info.cover.mime}

    async def drop_if_unused(self, column, name: str | None) -> None:
        """Remove the cover or peaks ``name`` (of ``column``) from the media store once no
        clip names it (a scan's purge calls it too)."""
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
                await self.drop_if_unused(column, name)
            except Exception as exc:
                log.warning("%s of a failed upload was left behind: %s", name, exc)

    async def count(self) -> int:
        """Clips listed now, from the folders' counts: no clip row is read."""
        total = await MusicFolder.select(fn.SUM(MusicFolder.clips)).aio_scalar(self._db)
        return int(total or 0)

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
        await self._insert(row)
        return Clip(**row)

    async def _insert(self, row: dict) -> None:
        """Insert a clip and bring its album, artist, genre and folder counts with it; call
        inside a transaction to join others to it."""
        touched = Touched()
        touched.clip(row, 1)
        async with self._db.aio_atomic():
            await self._db.aio_execute(Clip.insert(row).returning(Clip.id))
            await self._aggregates.refresh(touched)

    async def reindex(self, progress=None) -> None:
        """Rebuild every derived row and the search index from the clips (``mosic
        reindex``); ``progress(n)`` hears of each batch of clips regrouped."""
        await self._aggregates.rebuild(progress)
        await search.rebuild(self._db)

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
        row = new_clip_row(**upload_fields(info, form), **_file_fields(incoming, info))
        published = False
        try:
            row.update(await self._store_cover(info))
            row.update(await self._store_waveform(incoming.sha256, incoming.inspect))
            async with self._db.aio_atomic():
                await self._insert(row)
                await self._store.publish(
                    incoming, row["file_name"], content_type=row["content_type"]
                )
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
        # Uploads: library files are read again by a full scan (``mosic scan --full``).
        older = Clip.media_version.is_null() | (Clip.media_version < MEDIA_VERSION)
        pending = older & (Clip.source == UPLOAD)
        after = None
        while True:
            # By id, onwards: a row whose update matched nothing is never read twice.
            query = Clip.select().where(pending).order_by(Clip.id).limit(READ_PENDING_BATCH)
            if after is not None:
                query = query.where(Clip.id > after)
            batch = await self._db.aio_execute(query)
            if not batch:
                return done
            after = batch[-1].id
            for clip in batch:
                changes = filter_keys(
                    {"artist": clip.artist, "album": clip.album, "genre": clip.genre}
                )
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
        if clip.source != UPLOAD:
            raise InLibraryFolder(clip.music_folder)
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
        clip = await self.get(clip_id)
        if clip.source != UPLOAD:
            raise InLibraryFolder(clip.music_folder)
        async with self._db.aio_atomic():
            rows = await self._db.aio_execute(
                Clip.delete().where((Clip.id == clip_id) & visible()).returning(*_GROUPED)
            )
            if not rows:
                raise ClipNotFound(clip_id)
            touched = Touched()
            touched.clip({f.name: getattr(rows[0], f.name) for f in _GROUPED}, -1)
            await self._aggregates.refresh(touched)
            for name in (rows[0].file_name, rows[0].waveform_name):
                if name:
                    await self._store.remove(name)
            await self.drop_if_unused(Clip.cover_name, rows[0].cover_name)

    async def record_play(self, clip_id: uuid.UUID) -> int | None:
        """Count one play: a single atomic UPDATE, so concurrent listeners never lose one.

        Returns the new count, or None when the clip is gone. Count through
        ``mosic.core.plays.PlayRecorder``, which also keeps the metric.
        """
        rows = await self._play.run(clip_id=clip_id, now=utcnow())
        return rows[0] if rows else None


# What a deleted clip's row must say for its album, artist, genre and folder to follow.
_GROUPED = (
    Clip.file_name,
    Clip.cover_name,
    Clip.waveform_name,
    Clip.album_artist,
    Clip.artist,
    Clip.album,
    Clip.genre,
    Clip.music_folder,
)


def upload_fields(info: audio.AudioInfo, form: UploadForm) -> dict:
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
WAVEFORM_CONTENT_TYPE = "application/octet-stream"  # the format has no registered type
IMAGE_EXTENSIONS = {
    "image/jpeg": ".jpg",
    "image/png": ".png",
    "image/gif": ".gif",
    "image/webp": ".webp",
    "image/bmp": ".bmp",
}


def image_extension(mime: str) -> str:
    return IMAGE_EXTENSIONS.get(mime, ".img")


def _file_fields(incoming: Incoming, info: audio.AudioInfo) -> dict:
    return {
        "content_type": info.content_type,
        "size": incoming.size,
        "sha256": incoming.sha256,
        "file_name": incoming.sha256 + info.extension,
    }
