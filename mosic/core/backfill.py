"""The loudness backfill: uploads whose ReplayGain figures are still to be read (added before
migration 0011, read by ``mosic migrate`` for their tags only, or added by a release without
loudness) get them in the background of a serving process: their tags are read, and when
those lack the track's gain or peak the audio is decoded and measured.

Never in the way of serving: it runs as a lifespan task of every worker, but one process at
a time across workers and replicas does the work (the ``loudness`` lease), a clip at a time,
decoding in a worker thread through the same slots as uploads (``Waveforms``), from the
media store whatever it is (S3 reads are ranged GETs). Each clip is written as it is done,
so a restart goes on where it stopped; a clip whose file is gone or not audio is settled as
``none``, never tried again. Library files are measured after their scan, with their peaks
(``scanning.peaks``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging

from mosic.core import audio, replay_gain
from mosic.core.aggregates import Aggregates
from mosic.core.clip_rows import BEFORE_LOUDNESS, MEDIA_VERSION
from mosic.core.leases import Lease
from mosic.core.periodic import Periodic
from mosic.core.waveform import Waveforms
from mosic.media.storage import MediaMissing, MediaStore
from mosic.persistence.models import UPLOAD, Clip

log = logging.getLogger(__name__)
# The lease's row (migration 0011).
LOUDNESS_JOB = "loudness"
# How often each worker asks whether there is anything to read (one indexed query), the
# first time a little after it starts: never in the way of a start, and a process that
# stops at once (a command, a test) asks nothing.
BACKFILL_INTERVAL_S = 300
FIRST_ROUND_AFTER_S = 10
PAGE = 20


def _pending():
    return Clip.gain_source.is_null() & (Clip.source == UPLOAD) & Clip.file_name.is_null(False)


class LoudnessBackfill:
    def __init__(
        self,
        *,
        db,
        store: MediaStore,
        waveforms: Waveforms,
        interval_s: float = BACKFILL_INTERVAL_S,
    ) -> None:
        self._db = db
        self._store = store
        self._waveforms = waveforms
        self._rounds = Periodic(self.run, interval_s, name="loudness backfill", at_start=True)
        self._starting: asyncio.Task | None = None

    async def process_startup(self, scope, event) -> None:
        self._starting = asyncio.create_task(self._start_later())

    async def _start_later(self) -> None:
        await asyncio.sleep(FIRST_ROUND_AFTER_S)
        self._rounds.start()

    async def process_shutdown(self, scope, event) -> None:
        if self._starting is not None:
            self._starting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._starting
        await self._rounds.stop()

    async def run(self) -> int:
        """Read the figures of every upload still without them; how many were read (0 when
        another process holds the lease, or there is nothing to read)."""
        if not await self._page(None, limit=1):
            return 0  # the common case: no lease taken for nothing
        lease = Lease(db=self._db, name=LOUDNESS_JOB)
        if not await lease.take():
            return 0
        done = 0
        try:
            after = None
            while page := await self._page(after):
                for clip in page:
                    if not await lease.renew():
                        log.warning("loudness backfill: lease lost; another process goes on")
                        return done
                    await self._one(clip)
                    done += 1
                after = page[-1].id
        finally:
            await lease.release()
            if done:
                log.info("loudness backfill: read the loudness of %d upload(s)", done)
        return done

    async def _page(self, after, limit: int = PAGE) -> list[Clip]:
        query = Clip.select(Clip.id, Clip.file_name, Clip.album_id, Clip.media_version)
        query = query.where(_pending() if after is None else _pending() & (Clip.id > after))
        return list(await self._db.aio_execute(query.order_by(Clip.id).limit(limit)))

    async def _one(self, clip: Clip) -> None:
        columns = await self._read(clip)
        if clip.media_version == BEFORE_LOUDNESS:
            columns["media_version"] = MEDIA_VERSION
        async with self._db.aio_atomic():
            await self._db.aio_execute(
                Clip.update(**columns).where((Clip.id == clip.id) & Clip.gain_source.is_null())
            )
            if clip.album_id is not None:
                await Aggregates(db=self._db).refresh_gains([clip.album_id])

    async def _read(self, clip: Clip) -> dict:
        """The clip's figures: its tags', and what the tags lack measured."""
        try:
            tags = (await self._store.inspect(clip.file_name, audio.probe)).replay_gain
        except (audio.NotAudio, MediaMissing) as exc:
            log.warning("clip %s: no loudness, its file could not be read: %s", clip.id, exc)
            return {"gain_source": replay_gain.NONE}
        if not tags.needs_measure:
            return replay_gain.tag_columns(tags)
        reader = functools.partial(self._store.inspect, clip.file_name)
        decoded = await self._waveforms.draw(reader, measure=True)
        measured = replay_gain.measured_columns(decoded and decoded.loudness)
        return replay_gain.settle(tags, measured)
