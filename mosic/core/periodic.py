"""A job run every so often for as long as a process serves (the partial-upload sweep,
scheduled backups, the library's rescan): one loop, so every such job survives a failed
round and stops at shutdown the same way."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


class Periodic:
    """Runs ``job`` every ``interval`` seconds between ``start`` and ``stop``: first after
    one interval, or at once with ``at_start``. A round that raises is logged (as ``name``
    failed) and the next one runs on time; ``stop`` cancels a round under way."""

    def __init__(
        self,
        job: Callable[[], Awaitable[object]],
        interval: float,
        *,
        name: str,
        at_start: bool = False,
    ) -> None:
        self._job = job
        self._interval = interval
        self._name = name
        self._at_start = at_start
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name=self._name)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _loop(self) -> None:
        if not self._at_start:
            await asyncio.sleep(self._interval)
        while True:
            try:
                await self._job()
            except Exception as exc:  # never fatal: the next round tries again
                log.error("%s failed: %s", self._name, exc)
            await asyncio.sleep(self._interval)
