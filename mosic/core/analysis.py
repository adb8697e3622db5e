"""An upload's loudness: ReplayGain from its tags, and what they lack measured (EBU R128, in
a decoding pass that also draws its peaks if it has none: audio over five minutes gets them
here too), after its 201, never on the way to it: the measure costs several times the upload
itself. A clip is answered with the figures its tags hold and the others null, and has them
a moment later (``soon``). Uploads whose figures are still to be read — from a process that
stopped before it measured them, from before migration 0011, or read by ``mosic migrate``
for their tags only — are found by a sweep in the background of every serving process, a
little after it starts and every few minutes.

Never in the way of serving: the sweep runs one process at a time across workers and
replicas (the ``loudness`` lease), a clip at a time; every decode goes through the same
slots (``Waveforms``) to the media store's ``inspect``: on the disk a worker process below
the server's priority, so the next upload does not wait for this one's measure; on S3 a
thread reading ranged GETs. Each clip is written as it is done, once (the write is
conditional on the clip still being unread), so a restart goes on where it stopped; a clip
whose file is gone or not audio is settled as ``none``, never tried again. Library files
are measured after their scan, with their peaks (``scanning.peaks``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import uuid

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
SWEEP_INTERVAL_S = 300
FIRST_ROUND_AFTER_S = 10
PAGE = 20


class UploadAnalysis:
    def __init__(
        self,
        *,
        db,
        store: MediaStore,
        waveforms: Waveforms,
        interval_s: float = SWEEP_INTERVAL_S,
    ) -> None:
        self._db = db
        self._store = store
        self._waveforms = waveforms
        self._rounds = Periodic(self.run, interval_s, name="upload analysis", at_start=True)
        self._starting: asyncio.Task | None = None
        self._soon: set[asyncio.Task] = set()

    async def process_startup(self, scope, event) -> None:
        self._starting = asyncio.create_task(self._start_later())

    async def _start_later(self) -> None:
        await asyncio.sleep(FIRST_ROUND_AFTER_S)
        self._rounds.start()

    async def process_shutdown(self, scope, event) -> None:
        # An upload whose analysis is cut short here is the next sweep's.
        for task in [self._starting, *self._soon]:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await self._rounds.stop()

    def soon(self, clip_id: uuid.UUID) -> None:
        """Measure a clip just added, in the background of this process."""
        task = asyncio.create_task(self._analyse(clip_id), name=f"analysis of {clip_id}")
        self._soon.add(task)
        task.add_done_callback(self._soon.discard)

    async def _analyse(self, clip_id: uuid.UUID) -> None:
        try:
            found = await self._db.aio_execute(_unread().where(Clip.id == clip_id))
            for clip in found:
                await self._one(clip)
        except Exception as exc:  # noqa: BLE001 - the store or database gone, say: the sweep
            # tries again, and the upload itself is kept. One line, no traceback, as for a
            # request that meets the same outage.
            log.warning("clip %s: not measured now (%s); the next sweep tries again",
                        clip_id, exc or type(exc).__name__)  # fmt: skip

    async def run(self) -> int:
        """Analyse every upload still without its figures; how many were (0 when another
        process holds the lease, or there is nothing to read)."""
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
                        log.warning("upload analysis: lease lost; another process goes on")
                        return done
                    await self._one(clip)
                    done += 1
                after = page[-1].id
        finally:
            await lease.release()
            if done:
                log.info("upload analysis: read the loudness of %d upload(s)", done)
        return done

    async def _page(self, after, limit: int = PAGE) -> list[Clip]:
        query = _unread()
        query = query if after is None else query.where(Clip.id > after)
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
        """The clip's peaks (unless it has them) and figures: its tags', and what the tags
        lack measured, in one decoding pass."""
        try:
            tags = (await self._store.inspect(clip.file_name, audio.probe)).replay_gain
        except (audio.NotAudio, MediaMissing) as exc:
            log.warning("clip %s: no loudness, its file could not be read: %s", clip.id, exc)
            return {"gain_source": replay_gain.NONE}
        reader = functools.partial(self._store.inspect, clip.file_name)
        if clip.waveform_name is None:
            drawn = await self._waveforms.keep(clip.sha256, reader, measure=tags.needs_measure)
            return replay_gain.settle(tags, drawn)
        if not tags.needs_measure:
            return replay_gain.tag_columns(tags)
        decoded = await self._waveforms.draw(reader, measure=True)
        measured = replay_gain.measured_columns(decoded and decoded.loudness)
        return replay_gain.settle(tags, measured)


def _unread():
    """Uploads whose figures are still to be read, with what reading them needs."""
    columns = (Clip.id, Clip.file_name, Clip.sha256, Clip.waveform_name, Clip.album_id,
               Clip.media_version)  # fmt: skip
    pending = Clip.gain_source.is_null() & (Clip.source == UPLOAD)
    return Clip.select(*columns).where(pending & Clip.file_name.is_null(False))
