"""The library's scans in one process: on demand (``mosic scan``, ``POST /library/scan``,
Subsonic ``startScan``), at start, on file-system changes, and in full on an interval.

Whatever asks, a scan runs only under the lease (``lease.ScanLease``): a process that finds it
taken skips (a scan of changes waits its turn instead, since its changes may have been walked
already). Peaks of new files are drawn after their scan has listed them, in the background.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from mosic.core import grouping, lyrics
from mosic.core.blobs import UnusedBlobs
from mosic.core.imports import AUDIO_EXTENSIONS
from mosic.core.periodic import Periodic
from mosic.core.scanning import lease, peaks, rows
from mosic.core.scanning.lease import Counts, ScanLease
from mosic.core.scanning.scan import Change, Scan, Unit
from mosic.media import folders
from mosic.media.readers import ReaderPool
from mosic.media.storage import MediaStore
from mosic.observability.metrics import Metrics
from mosic.persistence.models import LIBRARY, Clip, MusicFolder, utcnow

log = logging.getLogger(__name__)
# How often a scan of changes that found another scan running asks again, and for how long.
RETRY_S = 2.0
RETRY_FOR_S = 600.0
PURGE_BATCH = 200


@dataclass(frozen=True)
class LibraryConfig:
    roots: dict[str, Path]
    watch: bool = True
    settle_s: float = 2.0
    interval_s: float = 3600.0
    missing_days: int = 30


class LibraryScans:
    def __init__(
        self,
        *,
        db,
        store: MediaStore,
        config: LibraryConfig,
        metrics: Metrics,
        blobs: UnusedBlobs | None = None,
        pool: ReaderPool | None = None,
    ) -> None:
        self._db = db
        self._store = store
        self._config = config
        self._metrics = metrics
        # None only where nothing can be purged or re-read (tests of the walk alone).
        self.drop_if_unused = blobs.drop_if_unused if blobs is not None else None
        self._pool = pool or ReaderPool()
        self._tasks: set[asyncio.Task] = set()
        self._peaks = peaks.PeakDrawer(db=db, store=store, pool=self._pool, roots=config.roots)
        # The database down at one round fails that round alone: the next one retries.
        self._rescans = Periodic(self._rescan, config.interval_s, name="library rescan")

    @property
    def roots(self) -> dict[str, Path]:
        return self._config.roots

    async def status(self) -> dict:
        return await lease.status(self._db)

    async def register_folders(self) -> None:
        """Give each configured folder its row: numeric ids that never change (Subsonic's),
        the next free one for a folder never seen, in the order they are configured."""
        for name, root in self._config.roots.items():
            for _ in range(3):  # another process may take the same id at the same time
                rows_ = await self._db.aio_execute(
                    MusicFolder.update(root=str(root)).where(MusicFolder.name == name)
                )
                if rows_:
                    break
                top = await self._db.aio_execute(
                    MusicFolder.select(MusicFolder.id).order_by(MusicFolder.id.desc()).limit(1)
                )
                next_id = (top[0].id if top else 0) + 1
                await self._db.aio_execute(
                    MusicFolder.insert(id=next_id, name=name, root=str(root), clips=0)
                    .on_conflict_ignore()
                    .returning(MusicFolder.id)
                )

    def _units(self) -> list[Unit]:
        return [Unit(name) for name in self._config.roots]

    async def scan(
        self,
        *,
        full: bool = False,
        purge: bool = False,
        on_change: Callable[[Change], None] | None = None,
        on_progress: Callable[[Counts], None] | None = None,
    ) -> Counts | None:
        """Scan every music folder now and draw the new files' peaks (``mosic scan``);
        None when another scan holds the lease."""
        held = ScanLease(db=self._db)
        if not await held.take():
            return None
        started = utcnow()
        counts = await self._run(
            held, self._units(), full=full, purge=purge, on_change=on_change,
            on_progress=on_progress,
        )  # fmt: skip
        await self._peaks.draw(started)
        return counts

    async def start_scan(self, *, full: bool = False) -> bool:
        """Start a scan of every folder in the background; False if one is running."""
        held = ScanLease(db=self._db)
        if not await held.take():
            return False
        self._spawn(self._run_then_peaks(held, self._units(), full=full, purge=False))
        return True

    async def _run_then_peaks(self, held: ScanLease, units: list[Unit], **options) -> None:
        started = utcnow()
        try:
            await self._run(held, units, **options)
        except Exception:  # a background scan must not die silently
            log.exception("library scan failed")
            return
        self._peaks.request(started)

    async def _run(
        self, held: ScanLease, units: list[Unit], *, full: bool, purge: bool, **callbacks
    ) -> Counts:
        """Scan ``units`` under the lease ``held`` (taken), then purge, report, release;
        ``callbacks`` (``on_change``, ``on_progress``) go to the ``Scan``."""
        began = time.monotonic()
        scan = Scan(
            db=self._db,
            store=self._store,
            pool=self._pool,
            roots=self._config.roots,
            full=full,
            drop_if_unused=self.drop_if_unused,
            lease=held,
            **callbacks,
        )
        whole = all(unit.recursive and not unit.start for unit in units)
        log.info(
            "library scan started (%s, lease %s)",
            "full" if whole else f"{len(units)} place(s)",
            held.owner,
        )
        self._peaks.idle.clear()
        try:
            async with held.held(scan.counts):
                await self._register_if_needed()
                await scan.run(units)
                if whole:
                    await self._purge(None if purge else self._config.missing_days)
        finally:
            self._peaks.idle.set()
        seconds = time.monotonic() - began
        self._metrics.library_scan(scan.counts, seconds)
        await self._report_sizes()
        log.info("library scan finished in %.1f s: %s", seconds, scan.counts.summary())
        return scan.counts

    async def _register_if_needed(self) -> None:
        # Cheap, and a scan may run in a process (the command line) that has not registered.
        await self.register_folders()

    async def _report_sizes(self) -> None:
        with contextlib.suppress(Exception):  # a gauge is never a reason to fail a scan
            for folder in await self._db.aio_execute(MusicFolder.select()):
                self._metrics.set_library_files(folder.name, folder.clips)

    async def _purge(self, days: int | None) -> int:
        """Remove missing library clips older than ``days`` (None: all of them), and the
        covers and peaks no other clip uses; never anything in a music folder."""
        cutoff = utcnow() - dt.timedelta(days=days) if days is not None else None
        removed = 0
        while True:
            old = Clip.missing_since.is_null(False) & (Clip.source == LIBRARY)
            if cutoff is not None:
                old &= Clip.missing_since < cutoff
            query = Clip.select(Clip.id, Clip.cover_name, Clip.waveform_name).where(old)
            found = list(await self._db.aio_execute(query.limit(PURGE_BATCH).tuples()))
            if not found:
                return removed
            async with self._db.aio_atomic():
                ids = [r[0] for r in found]
                await self._db.aio_execute(Clip.delete().where(Clip.id.in_(ids)))
                await lyrics.forget(self._db, ids)
            removed += len(found)
            for _, cover, waveform in found:
                if self.drop_if_unused is not None:
                    await self.drop_if_unused(Clip.cover_name, cover)
                    await self.drop_if_unused(Clip.waveform_name, waveform)
            log.info("library: removed %d clip(s) missing for too long", len(found))

    # -- serving: at start, on changes, on an interval ----------------------------------------
    async def start(self) -> None:
        """Begin serving the library: register its folders, scan in the background (never
        delaying readiness), then watch for changes and rescan on the interval."""
        if not self._config.roots:
            return
        self._spawn(self._start_scan_once())
        if self._config.watch:
            self._spawn(self._watch())
        if self._config.interval_s > 0:
            self._rescans.start()

    async def _start_scan_once(self) -> None:
        try:
            await self.register_folders()
            started = await self.start_scan()
        except Exception as exc:  # the database is down: the interval (or a POST) retries
            log.error("library scan at start failed: %s", exc)
            return
        if not started:
            log.info("library scan at start skipped: another process is scanning")

    async def _rescan(self) -> None:
        if not await self.start_scan():
            log.info("library rescan skipped: another process is scanning")

    async def _watch(self) -> None:
        try:
            async for paths in folders.watch(
                list(self._config.roots.values()), self._config.settle_s
            ):
                units = await asyncio.to_thread(units_for, self._config.roots, paths)
                if units:
                    await self._scan_changes(units)
        except Exception:  # e.g. no inotify watches left: the interval scans still run
            log.exception("library: watching for changes stopped")

    async def _scan_changes(self, units: list[Unit]) -> None:
        deadline = time.monotonic() + RETRY_FOR_S
        while True:
            held = ScanLease(db=self._db)
            if await held.take():
                await self._run_then_peaks(held, units, full=False, purge=False)
                return
            if time.monotonic() > deadline:
                log.warning(
                    "library: changes left for the next full scan (%d place(s))", len(units)
                )
                return
            await asyncio.sleep(RETRY_S)

    def _spawn(self, work) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def stop(self) -> None:
        await self._rescans.stop()
        tasks = [*self._tasks, *self._peaks.tasks()]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self._pool.close()


def units_for(roots: dict[str, Path], paths: set[Path]) -> list[Unit]:
    """What to scan for changed ``paths``: a directory that is there, with what is below
    it; a file's directory alone; a path gone that was no audio file (a directory,
    perhaps) with what was below it, and its parent."""
    units: set[Unit] = set()
    for path in paths:
        found = folders.folder_of(roots, path)
        if found is None:
            continue
        folder, relative = found
        parent = grouping.parent_path(relative) if relative else ""
        suffix = PurePosixPath(relative).suffix.lower()
        if not relative or path.is_dir():
            units.add(Unit(folder, relative, True))
        elif suffix in AUDIO_EXTENSIONS or suffix in rows.SIDECAR_EXTENSIONS or path.exists():
            units.add(Unit(folder, parent, False))
        else:
            units.update((Unit(folder, relative, True), Unit(folder, parent, False)))
    return sorted(units, key=lambda unit: (unit.folder, unit.start, unit.recursive))
