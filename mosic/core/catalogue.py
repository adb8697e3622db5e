"""The catalogue: a clip's lifecycle. It is read by id, added (an upload, a metadata-only
clip), edited, deleted, played, and its audio opened.

Resources call these methods and shape the answers; nothing here knows about HTTP. Covers,
peaks, loudness, re-reading and the listing are their own modules' (``covers``,
``waveform``, ``analysis``, ``rereading``, ``listing``).
"""

from __future__ import annotations

import uuid

import peewee

from mosic.core import audio, lyrics, replay_gain
from mosic.core.aggregates import Aggregates, Touched, visible
from mosic.core.blobs import UnusedBlobs
from mosic.core.clip_rows import (
    MEDIA_VERSION,
    UploadForm,
    file_fields,
    new_clip_row,
    upload_fields,
)
from mosic.core.covers import Covers
from mosic.core.keys import Folders, User
from mosic.core.text import search_text_for
from mosic.core.waveform import Waveforms
from mosic.media.storage import Incoming, MediaMissing, MediaStore, StoredMedia
from mosic.persistence.compiled import BatchedLookup
from mosic.persistence.models import (
    CLIP_FIELDS,
    LIBRARY,
    UPLOAD,
    Clip,
    ClipRecord,
    WholeClip,
    clip_records,
    utcnow,
)

# Uploads up to this long get their waveform peaks before their 201; longer ones after it,
# with their loudness in the same decoding pass, so a long recording's 201 waits for its
# bytes alone. By duration, as decoding costs (measured, on one core: about 0.3 s for five
# minutes of MP3, 0.1 s of WAV).
INLINE_PEAKS_MAX_SECONDS = 300


class ClipNotFound(Exception):
    pass


class InLibraryFolder(Exception):
    """The clip is a file of a music folder: its tags and its file live there, not here."""

    def __init__(self, music_folder: str) -> None:
        super().__init__(
            f"this clip is a file of the music folder {music_folder!r}: change its tags or "
            "remove it there, and Mosic follows"
        )


class NotYours(Exception):
    """A listener may change and delete its own uploads only."""


class DuplicateClip(Exception):
    def __init__(self, existing_id: uuid.UUID) -> None:
        super().__init__(f"the same audio is already stored as clip {existing_id}")
        self.existing_id = existing_id


class Catalogue:
    def __init__(
        self,
        *,
        db,
        store: MediaStore,
        covers: Covers,
        waveforms: Waveforms,
        blobs: UnusedBlobs,
        folders=None,
    ) -> None:
        self._db = db
        self._store = store
        self._folders = folders  # library clips' files (mosic.media.folders.FolderFiles)
        self._covers = covers
        self._waveforms = waveforms
        self._blobs = blobs
        self._aggregates = Aggregates(db=db)
        # A library clip whose file is missing is not found, everywhere.
        self._by_id = BatchedLookup(
            db, Clip.select(*CLIP_FIELDS).where(visible()), Clip.id, clip_records
        )

    async def _one(self, query) -> Clip | None:
        rows = await self._db.aio_execute(query.limit(1))
        return rows[0] if rows else None

    @property
    def reads_by_id(self) -> BatchedLookup:
        """The coalesced reads behind ``get`` (its counters show how much is coalesced)."""
        return self._by_id

    async def get(self, clip_id: uuid.UUID, *, seen: Folders) -> ClipRecord:
        """The clip, when ``seen`` shows its music folder: a clip of another folder is not
        found, exactly as one that does not exist."""
        clip = await self._by_id.get(clip_id)
        if clip is None or not seen.shows(clip.music_folder):
            raise ClipNotFound(clip_id)
        return clip

    async def open_media(self, clip: WholeClip) -> StoredMedia:
        """Open a clip's stored audio; raises ``MediaMissing`` when the file is gone."""
        if clip.source == LIBRARY:  # its file, where it lies in its music folder
            if self._folders is None:
                raise MediaMissing(clip.path)
            return await self._folders.open(clip.music_folder, clip.path)
        return await self._store.open(clip.file_name)

    async def add_external(
        self,
        *,
        title: str,
        duration: float,
        audio_url: str,
        description: str | None = None,
        artist: str | None = None,
        album: str | None = None,
        owner_id: int | None = None,
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
            gain_source=replay_gain.NONE,  # no audio: nothing to read or measure
            owner_id=owner_id,
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
        row = new_clip_row(
            **upload_fields(info, form), **file_fields(incoming, info), owner_id=form.owner_id
        )
        published = False
        try:
            row.update(await self._covers.keep(info))
            # The tags' loudness figures are in the row (``tag_fields``); what they lack is
            # measured after the 201 (``analysis``), the clip unread (no ``gain_source``)
            # until then.
            row.update(await self._peaks(incoming, info))
            async with self._db.aio_atomic():
                await self._insert(row)
                if not row.get("album_gain_tagged"):  # the album's, combined with it just now
                    row.update(await self._album_gain(row["id"]))
                await lyrics.replace(self._db, [], lyrics.rows_of(row["id"], info.lyrics))
                await self._store.publish(
                    incoming, row["file_name"], content_type=row["content_type"]
                )
                published = True
        except BaseException as exc:
            if published:  # the commit failed after the file was moved into place
                await self._store.remove(row["file_name"])
            await self._blobs.drop_quietly(row)
            if isinstance(exc, peewee.IntegrityError):
                await self._raise_duplicate_of_winner(incoming)
            raise
        return Clip(**row)

    async def _peaks(self, incoming: Incoming, info: audio.AudioInfo) -> dict:
        """The columns naming the peaks, drawn now; unless the audio is long: then they are
        drawn after the 201, in the pass that measures its loudness (``waveform_url`` is
        null meanwhile), and the clip stays unread until then (no ``gain_source``), even
        when its tags hold every figure."""
        if info.duration > INLINE_PEAKS_MAX_SECONDS:
            return {"gain_source": None}
        return await self._waveforms.keep(incoming.sha256, incoming.inspect)

    async def _album_gain(self, clip_id: uuid.UUID) -> dict:
        found = await self._one(
            Clip.select(Clip.album_gain_db, Clip.album_peak).where(Clip.id == clip_id)
        )
        return {"album_gain_db": found.album_gain_db, "album_peak": found.album_peak}

    async def _raise_duplicate_of_winner(self, incoming: Incoming) -> None:
        # An identical upload committed between our check and our insert.
        winner = await self._one(Clip.select(Clip.id).where(Clip.sha256 == incoming.sha256))
        if winner is not None:
            raise DuplicateClip(winner.id) from None

    async def update(
        self, clip_id: uuid.UUID, changes: dict[str, str | None], by: User
    ) -> ClipRecord:
        clip = await self._changeable(clip_id, by)
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

    async def _changeable(self, clip_id: uuid.UUID, by: User) -> ClipRecord:
        """The clip, if ``by`` may change it: an upload, and an admin or its uploader."""
        clip = await self.get(clip_id, seen=by.folders)
        if clip.source != UPLOAD:
            raise InLibraryFolder(clip.music_folder)
        if not by.is_admin and clip.owner_id != by.id:
            raise NotYours(clip_id)
        return clip

    async def delete(self, clip_id: uuid.UUID, by: User) -> None:
        """Delete the row and its file. The file goes inside the transaction: an identical
        upload racing us waits on the row's unique hash until we commit, so it can never
        publish its file only to have us remove it."""
        await self._changeable(clip_id, by)
        async with self._db.aio_atomic():
            rows = await self._db.aio_execute(
                Clip.delete().where((Clip.id == clip_id) & visible()).returning(*_GROUPED)
            )
            if not rows:
                raise ClipNotFound(clip_id)
            touched = Touched()
            touched.clip({f.name: getattr(rows[0], f.name) for f in _GROUPED}, -1)
            await self._aggregates.refresh(touched)
            await lyrics.forget(self._db, [clip_id])
            for name in (rows[0].file_name, rows[0].waveform_name):
                if name:
                    await self._store.remove(name)
            await self._blobs.drop_if_unused(Clip.cover_name, rows[0].cover_name)


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
