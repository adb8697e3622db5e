"""Peaks of library files, drawn after their scan has listed them (a clip's
``waveform_name`` is null meanwhile), in the reader processes, a few at a time, so a new
scan's reads wait for at most one drawing per worker."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from pathlib import Path

from mosic.core.waveform import WAVEFORM_CONTENT_TYPE, Undecodable, blob_name, compute_peaks
from mosic.media import folders
from mosic.media.folders import ReaderPool
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
        none; returns how many were drawn."""
        drawn, after = 0, None
        while True:
            query = Clip.select(Clip.id, Clip.music_folder, Clip.path, Clip.sha256).where(
                (Clip.source == LIBRARY) & Clip.missing_since.is_null()
                & Clip.waveform_name.is_null() & (Clip.updated_at >= since)
            )  # fmt: skip
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

    async def _one(self, slots, clip_id, folder: str, path: str, sha256: str) -> bool:
        root = self._roots.get(folder)
        if root is None:
            return False
        async with slots:
            try:
                real = await asyncio.to_thread(folders.confined, root, path)
                peaks = await self._pool.run(folders.run_on_file, real, compute_peaks)
            except (Undecodable, OSError, MediaMissing) as exc:
                log.warning("library: no waveform for %s/%s: %s", folder, path, exc)
                return False
        name = blob_name(sha256)
        await self._store.put(name, peaks.to_dat(), content_type=WAVEFORM_CONTENT_TYPE)
        # Only if the file is still those bytes: a re-tag meanwhile draws again.
        await self._db.aio_execute(
            Clip.update(waveform_name=name).where((Clip.id == clip_id) & (Clip.sha256 == sha256))
        )
        return True
