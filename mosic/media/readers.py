"""Worker processes for blocking reads of files: tags, hashes, decoding.

mutagen is pure Python and decoding holds the GIL for its frame handling, so in threads these
reads would share the server's core and its GIL with the event loop. In processes they run
beside it; and a pool made with ``nice`` runs below the server's priority, so background work
(an upload's loudness, measured after its 201) takes only what requests leave over.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import BinaryIO, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")
# One worker per core, at most this many (each holds an interpreter with mutagen and PyAV,
# ~60 MiB).
READERS_MAX = 4


def run_on_file(path: str, reader: Callable[[BinaryIO], T]) -> T:
    """``reader`` on the file at ``path`` (in a worker process)."""
    with open(path, "rb") as fh:
        return reader(fh)


class ReaderPool:
    """Worker processes for blocking reads of files: ``run(function, *args)``, where the
    function, its arguments and its result (or exception) are pickled. Created on first use
    and closed by ``close``, so a process that never reads starts none. ``nice``: how much
    lower than this process the workers run (0: the same); ``preload``: the modules of the
    functions they will run, imported before any worker starts."""

    def __init__(
        self, workers: int | None = None, *, nice: int = 0, preload: tuple[str, ...] = ()
    ) -> None:
        self._workers = workers or min(os.cpu_count() or 1, READERS_MAX)
        self._nice = nice
        self._preload = preload
        self._executor: ProcessPoolExecutor | None = None

    @property
    def workers(self) -> int:
        return self._workers

    async def run(self, function: Callable[..., T], *args) -> T:
        if self._executor is None:
            # forkserver: a fork of the server (threads, an event loop, sockets) is unsafe.
            methods = multiprocessing.get_all_start_methods()
            self._start("forkserver" if "forkserver" in methods else "spawn")
        try:
            submitted = self._executor.submit(function, *args)
        except OSError as exc:
            # The fork server listens on a Unix socket under TMPDIR, whose path may not exceed
            # 107 bytes: with a deep TMPDIR it cannot start, and every file would fail.
            log.warning("file readers: no fork server (%s); spawning them instead", exc)
            self._executor.shutdown(wait=False)
            self._start("spawn")
            submitted = self._executor.submit(function, *args)
        try:
            return await asyncio.wrap_future(submitted)
        except BrokenProcessPool:
            # A worker died (killed for memory, or a decoder crashed on a file): the pool
            # takes no more work, so the next call starts new workers.
            broken, self._executor = self._executor, None
            if broken is not None:
                broken.shutdown(wait=False, cancel_futures=True)
            raise

    def _start(self, method: str) -> None:
        context = multiprocessing.get_context(method)
        if method == "forkserver" and self._preload:
            # Imported once by the fork server, so each worker forked from it starts with
            # them (a new pool's first read paid ~0.2 s importing the decoders). The fork
            # server is the process's one: the first pool to start it decides.
            context.set_forkserver_preload(list(self._preload))
        lower = {"initializer": os.nice, "initargs": (self._nice,)} if self._nice else {}
        self._executor = ProcessPoolExecutor(self._workers, mp_context=context, **lower)

    async def close(self) -> None:
        executor, self._executor = self._executor, None
        if executor is not None:
            await asyncio.to_thread(executor.shutdown, wait=True, cancel_futures=True)
