"""The media store: where audio files live on disk.

Uploads land in ``<root>/.incoming`` under a random name while they arrive (same file system,
so publishing is an atomic rename), hashed as they are written. A file is published under its
content hash only once its catalogue row is being committed; anything that goes wrong before
that removes the partial file.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import secrets
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import BinaryIO

INCOMING_DIR = ".incoming"
# Writes are batched so a fast upload costs one thread hop per MiB, not one per network chunk.
WRITE_BATCH_BYTES = 1024 * 1024
READ_CHUNK_BYTES = 256 * 1024
STALE_INCOMING_S = 60 * 60


class UploadTooLarge(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"the upload is larger than the limit of {limit} bytes")
        self.limit = limit


class IncomingFile:
    """A file being received: hashed and size-checked as it is written."""

    def __init__(self, path: Path, limit: int) -> None:
        self.path = path
        self.limit = limit
        self.size = 0
        self._hash = hashlib.sha256()
        self._pending: list[bytes] = []
        self._pending_size = 0
        self._fh = open(path, "xb")  # noqa: SIM115 - closed in close()

    async def write(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self.limit:
            raise UploadTooLarge(self.limit)
        self._hash.update(chunk)
        self._pending.append(chunk)
        self._pending_size += len(chunk)
        if self._pending_size >= WRITE_BATCH_BYTES:
            await self._flush()

    async def _flush(self) -> None:
        if self._pending:
            data, self._pending, self._pending_size = b"".join(self._pending), [], 0
            await asyncio.to_thread(self._fh.write, data)

    async def finish(self) -> None:
        await self._flush()
        await asyncio.to_thread(self._fh.close)

    def close(self) -> None:
        self._fh.close()

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()


class MediaStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.incoming_dir = self.root / INCOMING_DIR

    def prepare(self) -> None:
        self.incoming_dir.mkdir(parents=True, exist_ok=True)

    def path_for(self, file_name: str) -> Path:
        # Names are always our own "<sha256><ext>"; sharding keeps directories small.
        return self.root / file_name[:2] / file_name

    def open_incoming(self, limit: int) -> IncomingFile:
        self.prepare()
        return IncomingFile(self.incoming_dir / f"{secrets.token_hex(16)}.part", limit)

    def discard(self, incoming: IncomingFile) -> None:
        incoming.close()
        incoming.path.unlink(missing_ok=True)

    def publish(self, incoming: IncomingFile, file_name: str) -> Path:
        target = self.path_for(file_name)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(incoming.path, target)
        return target

    def remove(self, file_name: str) -> None:
        self.path_for(file_name).unlink(missing_ok=True)

    def is_writable(self) -> bool:
        try:
            self.prepare()
            probe = self.incoming_dir / f"ready-{secrets.token_hex(4)}"
            probe.write_bytes(b"")
            probe.unlink()
            return True
        except OSError:
            return False

    def clean_incoming(self, now: float | None = None) -> int:
        """Remove partial uploads a crashed process left behind; returns how many.

        Only files untouched for ``STALE_INCOMING_S``: replicas sharing the store may be
        receiving uploads right now, and a live upload writes to its file continually.
        """
        if not self.incoming_dir.is_dir():
            return 0
        cutoff = (now if now is not None else time.time()) - STALE_INCOMING_S
        removed = 0
        for leftover in self.incoming_dir.glob("*.part"):
            with contextlib.suppress(FileNotFoundError):
                if leftover.stat().st_mtime < cutoff:
                    leftover.unlink()
                    removed += 1
        return removed

    async def open(self, file_name: str) -> StoredFile:
        """Open a stored file for reading (raises ``FileNotFoundError`` when it is gone)."""

        def _open() -> StoredFile:
            fh = open(self.path_for(file_name), "rb")  # noqa: SIM115 - StoredFile closes it
            return StoredFile(fh, os.fstat(fh.fileno()).st_size)

        return await asyncio.to_thread(_open)


class StoredFile:
    """An open stored file: its size as of opening, and its bytes in bounded chunks."""

    def __init__(self, fh: BinaryIO, size: int) -> None:
        self._fh = fh
        self.size = size

    async def chunks(self, start: int, length: int) -> AsyncIterator[bytes]:
        """Yield ``length`` bytes from ``start``, one thread hop per chunk, never the whole
        file; the file is closed when the iteration ends, however it ends."""
        fd = self._fh.fileno()
        try:
            position, end = start, start + length
            while position < end:
                chunk = await asyncio.to_thread(
                    os.pread, fd, min(READ_CHUNK_BYTES, end - position), position
                )
                if not chunk:
                    break
                position += len(chunk)
                yield chunk
        finally:
            self.close()

    def close(self) -> None:
        self._fh.close()
