"""``mosic scan [--full] [--purge-missing]``: scan every music folder once, then exit."""

from __future__ import annotations

import asyncio
import logging
import shutil
import sys

from mosic.app import make_library_scans, make_store
from mosic.cli import migrate
from mosic.core.scanning.lease import Counts
from mosic.core.scanning.scan import Change
from mosic.observability.metrics import Metrics
from mosic.persistence.database import make_database
from mosic.settings import Settings

log = logging.getLogger("mosic")
FALLBACK_TERMINAL = (100, 24)


def scan(settings: Settings, *, full: bool, purge: bool) -> int:
    """Migrate, then scan; exit status (1 when another process holds the scan)."""
    code = migrate(settings)
    if code:
        return code
    if not settings.library_dirs:
        log.warning("no music folders to scan: set MOSIC_LIBRARY_DIRS")
    report = ScanReport(sys.stderr.isatty())
    try:
        counts = asyncio.run(_scan(settings, full=full, purge=purge, report=report))
    except Exception as exc:  # the database went away: one clear line, not a traceback
        report.close()
        log.error("scan stopped: %s", exc)
        return 1
    report.close()
    if counts is None:
        log.error("another process is scanning the library now; try again when it is done")
        return 1
    print(counts.summary(), flush=True)
    return 0


async def _scan(settings: Settings, *, full: bool, purge: bool, report: ScanReport):
    db = make_database(settings)
    store = make_store(settings)
    await store.start()
    scans = make_library_scans(settings, db, store, Metrics())
    try:
        return await scans.scan(
            full=full, purge=purge, on_change=report.change, on_progress=report.progress
        )
    finally:
        await scans.stop()
        await store.close()
        await db.aio_close()


class ScanReport:
    """A bar on a terminal (files seen and their rate: the walk streams, so there is no
    total; drawn by tqdm on standard error, as for ``mosic import``), and a line for each
    change on standard output."""

    def __init__(self, terminal: bool) -> None:
        self._bar = None
        if terminal:
            from tqdm import tqdm

            size = shutil.get_terminal_size(FALLBACK_TERMINAL)
            self._bar = tqdm(
                unit=" files", desc="scanning", file=sys.stderr,
                ncols=size.columns, nrows=size.lines,
            )  # fmt: skip

    def change(self, change: Change) -> None:
        detail = f": {change.detail}" if change.detail else ""
        line = f"{change.kind} {change.folder}/{change.path}{detail}"
        if self._bar is None:
            print(line, flush=True)
            return
        self._bar.write(line, file=sys.stdout)

    def progress(self, counts: Counts) -> None:
        if self._bar is not None:
            self._bar.update(counts.seen - self._bar.n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
