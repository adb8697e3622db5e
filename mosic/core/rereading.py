"""Re-reading: the tags, cover, peaks and lyrics of uploads added under older file-reading
rules (``clip_rows.MEDIA_VERSION``), read again from their stored files after a migration.
A clip read under version 1 lacks only its lyrics: only those are read (no peaks drawn)."""

from __future__ import annotations

import functools
import logging

from mosic.core import audio, lyrics
from mosic.core.clip_rows import BEFORE_LYRICS, MEDIA_VERSION, tag_fields
from mosic.core.covers import Covers
from mosic.core.listing import filter_keys
from mosic.core.waveform import Waveforms
from mosic.media.storage import MediaMissing, MediaStore
from mosic.persistence.models import UPLOAD, Clip

log = logging.getLogger(__name__)
READ_PENDING_BATCH = 50


class Rereader:
    def __init__(self, *, db, store: MediaStore, covers: Covers, waveforms: Waveforms) -> None:
        self._db = db
        self._store = store
        self._covers = covers
        self._waveforms = waveforms

    async def read_pending(self) -> int:
        """Read the tags of every clip added before the current file-reading rules (after a
        migration added their columns); returns how many clips were read. Idempotent: each
        clip is marked as read, and a file that cannot be read leaves its tags null."""
        done = 0
        # Uploads: library files are read again by the next scan (``Scan``).
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
                await self._read_one(clip)
                done += 1

    async def _read_one(self, clip: Clip) -> None:
        changes = filter_keys({"artist": clip.artist, "album": clip.album, "genre": clip.genre})
        info = None if clip.is_external else await self._probe(clip)
        if info is not None and clip.media_version != BEFORE_LYRICS:
            changes.update(await self._reread(clip, info))
        found = info.lyrics if info is not None else ()
        async with self._db.aio_atomic():
            await self._db.aio_execute(
                Clip.update(**changes, media_version=MEDIA_VERSION).where(Clip.id == clip.id)
            )
            await lyrics.replace(self._db, [clip.id], lyrics.rows_of(clip.id, found))

    async def _probe(self, clip: Clip) -> audio.AudioInfo | None:
        try:
            return await self._store.inspect(clip.file_name, audio.probe)
        except (audio.NotAudio, MediaMissing) as exc:
            log.warning("clip %s: tags left empty, its file could not be read: %s", clip.id, exc)
            return None

    async def _reread(self, clip: Clip, info: audio.AudioInfo) -> dict:
        fields = {**tag_fields(info), **await self._covers.keep(info)}
        reader = functools.partial(self._store.inspect, clip.file_name)
        fields.update(await self._waveforms.keep(clip.sha256, reader))
        return {**fields, **filter_keys({**fields, "artist": clip.artist, "album": clip.album})}
