"""Library work from the command line: reading tags of clips added before the current rules
(after ``mosic migrate``), and ``mosic import``."""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import shutil
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

from mosic.app import make_catalogue, make_rereader, make_store
from mosic.cli import migrate
from mosic.core.analysis import UploadAnalysis
from mosic.core.imports import Outcome, Status, find_audio, import_files
from mosic.core.waveform import Waveforms
from mosic.media.storage import MediaStore
from mosic.persistence.database import make_database
from mosic.settings import Settings

log = logging.getLogger("mosic")
FALLBACK_TERMINAL = (100, 24)


@contextlib.asynccontextmanager
async def open_storage(settings: Settings) -> AsyncIterator[tuple[object, MediaStore]]:
    """The configured database and media store, both closed afterwards."""
    db = make_database(settings)
    store = make_store(settings)
    await store.start()
    try:
        yield db, store
    finally:
        await db.aio_close()
        await store.close()


def log_tasks_on_sigusr1() -> None:
    """``kill -USR1 <pid>`` logs where each task of a stuck run waits (the event loop's own
    view: a thread dump shows only an idle loop)."""

    def dump() -> None:
        for task in asyncio.all_tasks():
            where = io.StringIO()
            task.print_stack(file=where)
            log.warning("task %s waits:\n%s", task.get_name(), where.getvalue())

    asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, dump)


def read_pending(settings: Settings) -> int:
    """Read the files of clips whose tags predate the current rules; exit status."""

    async def run() -> int:
        async with open_storage(settings) as (db, store):
            return await make_rereader(db, store).read_pending()

    try:
        count = asyncio.run(run())
    except Exception as exc:  # the operator needs one clear line, not a traceback
        log.error("reading tags of existing clips failed: %s", exc)
        return 1
    if count:
        log.info("read the tags of %d existing clip(s)", count)
    return 0


def import_paths(settings: Settings, paths: list[Path], jobs: int) -> int:
    """``mosic import``: migrate, then add every audio file under ``paths``; exit status."""
    code = migrate(settings)
    if code:
        return code
    files, missing = find_audio(paths)
    sizes = {path: _size(path) for path in files}
    report = Report(len(files) + len(missing), sum(sizes.values()), sys.stderr.isatty())
    for outcome in missing:
        report.done(outcome, 0)

    async def run() -> list[Outcome]:
        log_tasks_on_sigusr1()
        async with open_storage(settings) as (db, store):
            outcomes = await import_files(
                make_catalogue(db, store),
                files,
                jobs=jobs,
                limit=settings.max_upload_bytes,
                done=lambda outcome: report.done(outcome, sizes[outcome.path]),
            )
            # Their loudness now, as a server would after each 201 (unless a
            # server's sweep holds the lease: then that server draws them).
            await UploadAnalysis(db=db, store=store, waveforms=Waveforms(store=store)).run()
            return outcomes

    try:
        outcomes = [*missing, *asyncio.run(run())]
    except Exception as exc:  # the database went away: one clear line, not a traceback
        report.close()
        log.error("import stopped: %s", exc)
        return 1
    report.close()
    return exit_status(outcomes)


def exit_status(outcomes: list[Outcome]) -> int:
    """1 only when some file failed and none was added or skipped (the contract)."""
    statuses = {outcome.status for outcome in outcomes}
    return 1 if statuses == {Status.FAILED} else 0


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


class Report:
    """Progress and outcomes: a bar on a terminal (files, bytes, rate, ETA, drawn by tqdm on
    standard error), plain lines otherwise; a line for each file either way, and a summary."""

    def __init__(self, files: int, total_bytes: int, terminal: bool) -> None:
        self._files = files
        self._finished = 0
        self._counts = dict.fromkeys(Status, 0)
        self._bar = None
        if terminal:
            from tqdm import tqdm

            size = shutil.get_terminal_size(FALLBACK_TERMINAL)
            self._bar = tqdm(
                total=total_bytes, unit="B", unit_scale=True, unit_divisor=1024,
                desc="importing", postfix=f"0/{files} files", file=sys.stderr,
                # A terminal that reports no size (a bare pty, as under `script`) would get
                # no bar at all from tqdm: it hides bars past the last row.
                ncols=size.columns, nrows=size.lines,
            )  # fmt: skip

    def done(self, outcome: Outcome, size: int) -> None:
        self._finished += 1
        self._counts[outcome.status] += 1
        line = (
            f"[{self._finished}/{self._files}] {outcome.status.value} {outcome.path}: "
            f"{outcome.detail}"
        )
        if self._bar is None:
            print(line, flush=True)
            return
        self._bar.write(line, file=sys.stdout)
        self._bar.set_postfix_str(f"{self._finished}/{self._files} files", refresh=False)
        self._bar.update(size)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        added, skipped, failed = (self._counts[s] for s in Status)
        print(f"{added} added, {skipped} skipped, {failed} failed", flush=True)
