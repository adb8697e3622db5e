"""The rendition cache: finished transcodes kept on local disk, least recently used first out.

A rendition is written under a temporary ``*.part`` name while it is encoded and renamed to
its final name only when complete, so a reader never sees half a file and a crash leaves only
a ``.part`` file, which the start-up ``sweep`` removes. A hit touches the file's mtime, and
after each new rendition the oldest ones are removed until the whole cache fits its limit
(``MOSIC_TRANSCODE_CACHE_MB``). Several processes may share the directory: a file removed
while another process serves it stays readable through that process' open descriptor.

The cache is local disk whatever the media store is: renditions can be made again at will.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import time
from pathlib import Path

from mosic.media.local import LocalMedia, ReadAhead, open_sized

log = logging.getLogger(__name__)
PART_SUFFIX = ".part"
# A live transcode writes its part file continually unless its listener pauses; one untouched
# this long belongs to a process that died (another replica may be writing the fresh ones).
STALE_PART_S = 60 * 60


class PendingRendition:
    """A rendition being written, used from the encoder thread (plain blocking file work)."""

    def __init__(self, cache: RenditionCache, name: str) -> None:
        self._cache = cache
        self._name = name
        self._part = cache.directory / f".{secrets.token_hex(8)}-{name}{PART_SUFFIX}"
        self._fh = open(self._part, "xb")  # noqa: SIM115 - commit or discard closes it

    def write(self, data: bytes) -> None:
        self._fh.write(data)

    def commit(self) -> None:
        """Publish the complete rendition under its name, then trim the cache."""
        self._fh.close()
        try:
            os.replace(self._part, self._cache.directory / self._name)
        except FileNotFoundError:
            # Swept by another replica's start-up while the listener paused: not kept.
            log.warning("rendition %s lost its part file; not cached", self._name)
            return
        try:
            self._cache.evict()
        except OSError as exc:  # the rendition is complete and sent; only trimming failed
            log.warning("trimming the rendition cache failed: %s", exc)

    def discard(self) -> None:
        self._fh.close()
        self._part.unlink(missing_ok=True)


class RenditionCache:
    def __init__(
        self, directory: Path, limit_bytes: int, read_ahead: ReadAhead | None = None
    ) -> None:
        self.directory = Path(directory)
        self.limit_bytes = limit_bytes
        self._read_ahead = read_ahead or ReadAhead()

    def prepare(self) -> None:
        """Create the directory (at start-up, before the event loop runs)."""
        self.directory.mkdir(parents=True, exist_ok=True)

    async def open(self, name: str) -> LocalMedia | None:
        """The cached rendition ``name`` opened for reading, or None when it is not cached."""

        def open_file() -> LocalMedia | None:
            try:
                fd, size = open_sized(str(self.directory / name))
            except FileNotFoundError:
                return None
            # A hit makes it the most recently used.
            with contextlib.suppress(OSError):
                os.utime(fd)
            return LocalMedia(fd, size, self._read_ahead)

        return await asyncio.to_thread(open_file)

    def begin(self, name: str) -> PendingRendition:
        """Start writing rendition ``name`` (blocking: call it from the encoder thread)."""
        self.prepare()
        return PendingRendition(self, name)

    def evict(self) -> int:
        """Remove the least recently used renditions until the cache fits its limit; returns
        how many were removed. Blocking."""
        entries = []
        for path in self.directory.iterdir():
            if path.name.endswith(PART_SUFFIX):
                continue
            with contextlib.suppress(FileNotFoundError):
                stat = path.stat()
                entries.append((stat.st_mtime, stat.st_size, path))
        total = sum(size for _, size, _ in entries)
        removed = 0
        for _, size, path in sorted(entries):
            if total <= self.limit_bytes:
                break
            path.unlink(missing_ok=True)
            total -= size
            removed += 1
        return removed

    async def sweep(self, now: float | None = None) -> int:
        """Remove part files that crashed transcodes left behind; returns how many."""
        return await asyncio.to_thread(self._sweep, now if now is not None else time.time())

    def _sweep(self, now: float) -> int:
        if not self.directory.is_dir():
            return 0
        removed = 0
        for leftover in self.directory.glob(f"*{PART_SUFFIX}"):
            with contextlib.suppress(FileNotFoundError):
                if leftover.stat().st_mtime < now - STALE_PART_S:
                    leftover.unlink()
                    removed += 1
        return removed
