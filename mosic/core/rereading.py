"""Re-reading: the tags, cover, peaks, lyrics and loudness of uploads added under older
file-reading rules (``clip_rows.MEDIA_VERSION``), read again from their stored files after a
migration (``mosic migrate``). A clip read under version 1 lacks only its lyrics and
ReplayGain tags: only its tags are read (no audio decoded); its loudness, when its tags have
none, is measured in the background (``backfill``), as is that of every version-2 clip, so
that a migration never waits on decoding every upload."""

from __future__ import annotations

import functools
import logging

from mosic.core import audio, lyrics, replay_gain
from mosic.core.aggregates import Aggregates
from mosic.core.clip_rows import BEFORE_LOUDNESS, BEFORE_LYRICS, MEDIA_VERSION, tag_fields
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
        # Uploads: library files are read again by the next scan (``Scan``). Version 2 lacks
        # only the loudness: the background's (``backfill``).
        older = Clip.media_version.is_null() | (Clip.media_version < BEFORE_LOUDNESS)
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
        elif info is not None:  # its tags alone: the backfill measures what they lack
            changes.update(replay_gain.tag_columns(info.replay_gain))
        found = info.lyrics if info is not None else ()
        async with self._db.aio_atomic():
            await self._db.aio_execute(
                Clip.update(**changes, media_version=MEDIA_VERSION).where(Clip.id == clip.id)
            )
            await lyrics.replace(self._db, [clip.id], lyrics.rows_of(clip.id, found))
            if clip.album_id is not None:
                await Aggregates(db=self._db).refresh_gains([clip.album_id])

    async def _probe(self, clip: Clip) -> audio.AudioInfo | None:
        try:
            return await self._store.inspect(clip.file_name, audio.probe)
        except (audio.NotAudio, MediaMissing) as exc:
            log.warning("clip %s: tags left empty, its file could not be read: %s", clip.id, exc)
            return None

    async def _reread(self, clip: Clip, info: audio.AudioInfo) -> dict:
        fields = {**tag_fields(info), **await self._covers.keep(info)}
        reader = functools.partial(self._store.inspect, clip.file_name)
        tags = info.replay_gain
        drawn = await self._waveforms.keep(clip.sha256, reader, measure=tags.needs_measure)
        fields = replay_gain.settle(tags, {**fields, **drawn})
        return {**fields, **filter_keys({**fields, "artist": clip.artist, "album": clip.album})}
