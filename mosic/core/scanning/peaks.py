"""Peaks and loudness of library files, drawn after their scan has listed them (a clip's
``waveform_name``, or its ``gain_source``, is null meanwhile), in the reader processes, a
few at a time, so a new scan's reads wait for at most one drawing per worker. One decoding
pass gives both (``waveform.decode``); the loudness is measured only when the file's tags
lack it, and the figures of the clip's album are combined again (``Aggregates``).

Loudness still to be measured is looked for whenever the drawer runs, whatever the clips'
age: the backfill of clips from before it (migration 0011) goes on after a restart."""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import logging
from pathlib import Path

from peewee import Case, fn

from mosic.core import replay_gain
from mosic.core.aggregates import Aggregates
from mosic.core.waveform import WAVEFORM_CONTENT_TYPE, Decoded, Undecodable, blob_name, decode
from mosic.media import folders
from mosic.media.readers import ReaderPool, run_on_file
from mosic.media.storage import MediaMissing, MediaStore
from mosic.persistence.models import LIBRARY, Clip

log = logging.getLogger(__name__)
PAGE = 50


class PeakDrawer:
    def __init__(self, *, db, store: MediaStore, pool: ReaderPool, roots: dict[str, Path]):
        # Cleared while a scan runs in this process: drawing waits, so the scan has the
        # reader processes and the database to itself (a rescan of 100,000 files took 30 s
        # beside a backlog of drawings, against 10 s alone).
        self.idle = asyncio.Event()
        self.idle.set()
        self._db = db
        self._store = store
        self._pool = pool
        self._roots = roots
        self._since: dt.datetime | None = None
        self._task: asyncio.Task | None = None

    def tasks(self) -> list[asyncio.Task]:
        return [self._task] if self._task is not None else []

    def request(self, since: dt.datetime) -> None:
        """Draw, in the background, the peaks of library clips changed since ``since``."""
        self._since = since if self._since is None else min(self._since, since)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._drain())

    async def _drain(self) -> None:
        while self._since is not None:
            since, self._since = self._since, None
            try:
                await self.draw(since)
            except Exception:  # the next scan asks again
                log.exception("library: drawing peaks stopped")

    async def draw(self, since: dt.datetime) -> int:
        """Draw the peaks of every listed library clip changed since ``since`` that has
        none, and measure the loudness of every one still without it; returns how many
        were drawn."""
        drawn, after = 0, None
        wanted = (Clip.waveform_name.is_null() & (Clip.updated_at >= since)) | (
            Clip.gain_source.is_null()
        )
        while True:
            query = Clip.select(
                Clip.id, Clip.music_folder, Clip.path, Clip.sha256, Clip.album_id,
                Clip.waveform_name.is_null(), Clip.gain_source.is_null(),
            ).where((Clip.source == LIBRARY) & Clip.missing_since.is_null() & wanted)  # fmt: skip
            if after is not None:
                query = query.where(Clip.id > after)
            page = list(await self._db.aio_execute(query.order_by(Clip.id).limit(PAGE).tuples()))
            if not page:
                return drawn
            after = page[-1][0]
            await self.idle.wait()
            slots = asyncio.Semaphore(self._pool.workers)
            done = await asyncio.gather(*(self._one(slots, *row) for row in page))
            drawn += sum(done)

    async def _one(
        self, slots, clip_id, folder: str, path: str, sha256: str, album_id, no_peaks, measure
    ) -> bool:
        root = self._roots.get(folder)
        if root is None:
            return False
        async with slots:
            try:
                real = await asyncio.to_thread(folders.confined, root, path)
                reader = functools.partial(decode, measure=bool(measure))
                decoded = await self._pool.run(run_on_file, real, reader)
            except Undecodable as exc:
                log.warning("library: no waveform for %s/%s: %s", folder, path, exc)
                decoded = None
            except (OSError, MediaMissing) as exc:  # tried again after the next scan
                log.warning("library: no waveform for %s/%s: %s", folder, path, exc)
                return False
        changes = {}
        if decoded is not None and no_peaks:
            name = blob_name(sha256)
            await self._store.put(name, decoded.peaks.to_dat(), content_type=WAVEFORM_CONTENT_TYPE)
            changes["waveform_name"] = name
        if measure:
            changes.update(_measured(decoded))
        if changes:
            await self._write(clip_id, sha256, album_id, changes)
        return decoded is not None

    async def _write(self, clip_id, sha256: str, album_id, changes: dict) -> None:
        # Only if the file is still those bytes: a re-tag meanwhile draws again.
        async with self._db.aio_atomic():
            await self._db.aio_execute(
                Clip.update(**changes).where((Clip.id == clip_id) & (Clip.sha256 == sha256))
            )
            if "gain_source" in changes and album_id is not None:
                await Aggregates(db=self._db).refresh_gains([album_id])


def _measured(decoded: Decoded | None) -> dict:
    """The loudness columns of a measure, the figures the scan read from the file's tags
    winning (a clip still to be measured holds no figure but its tags')."""
    measured = replay_gain.measured_columns(decoded and decoded.loudness)
    columns = {
        name: fn.COALESCE(getattr(Clip, name), measured[name])
        for name in ("track_gain_db", "track_peak")
        if name in measured
    }
    if "gated_seconds" in measured:
        columns["gated_seconds"] = measured["gated_seconds"]
    tagged = Clip.track_gain_db.is_null(False)  # the tags' gain: their source
    columns["gain_source"] = Case(None, [(tagged, replay_gain.TAGS)], measured["gain_source"])
    return columns
