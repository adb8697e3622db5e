"""The storage interface: what the catalogue and the stream need from wherever media lives.

Nothing here names a local path, so an object store implements it as well as a disk does.
Media is addressed by name (``<sha256><ext>``: content-addressed, so a name never changes
meaning). Small derived blobs (covers, waveform peaks) are names too, written whole with
``put`` and read whole with ``get``. Every method that touches storage is a coroutine and does
its I/O off the event loop.

The upload lifecycle: ``receive`` starts an ``Incoming`` that hashes and size-checks bytes as
they are written; ``publish`` makes it visible under its final name (inside the catalogue's
transaction); ``discard`` drops whatever was not published. A crash can leave partial uploads
behind, which ``sweep`` removes.

A backend raises ``StorageFull`` or ``StorageUnavailable`` for its own faults, never its
library's exceptions, so callers need not know what the store is made of.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Protocol, TypeVar

T = TypeVar("T")


class UploadTooLarge(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"the upload is larger than the limit of {limit} bytes")
        self.limit = limit


class StorageFull(Exception):
    """The store has no room (or no quota) left for what is being written."""


class MediaMissing(Exception):
    """No stored media has this name (it was removed, or never arrived)."""


class StorageUnavailable(Exception):
    """The store cannot be reached, did not answer or failed (an I/O error, a read-only or
    vanished volume); the request may be tried again."""


class Incoming(Protocol):
    """An upload being received: hashed and size-checked as it is written."""

    size: int

    @property
    def sha256(self) -> str: ...

    async def write(self, chunk: bytes) -> None:
        """Append ``chunk``; raises ``UploadTooLarge`` once the total passes the limit."""

    async def finish(self) -> None:
        """Every byte has been written."""

    async def inspect(self, reader: Callable[[object], T]) -> T:
        """Run the blocking ``reader`` on a seekable binary file of the received bytes, in a
        thread, and return what it returns (used to read tags and duration)."""

    async def discard(self) -> None:
        """Drop the upload unless it was published; safe to call more than once."""


class StoredMedia(Protocol):
    """Stored media opened for reading: its size as of opening, its bytes in ranged chunks."""

    size: int

    def chunks(self, start: int, length: int) -> AsyncIterator[bytes]:
        """``length`` bytes from ``start`` in bounded chunks, never the whole file; the media
        is closed when the iteration ends, however it ends."""

    async def close(self) -> None: ...

    async def direct_url(self, expires_in: int, content_type: str) -> str | None:
        """A URL the client may fetch the bytes from itself for ``expires_in`` seconds (an
        object store's presigned GET), answered with ``content_type`` as Mosic itself would
        answer, or None when the bytes must pass through Mosic."""


class MediaStore(Protocol):
    async def start(self) -> None:
        """Connect, inside the event loop that will use the store."""

    async def close(self) -> None: ...

    async def receive(self, limit: int) -> Incoming:
        """Start receiving an upload of at most ``limit`` bytes."""

    async def publish(self, incoming: Incoming, name: str, *, content_type: str) -> None:
        """Store the received bytes under ``name``, as ``content_type`` (an object store
        keeps it, and answers direct fetches with it)."""

    async def open(self, name: str) -> StoredMedia:
        """Open stored media for reading; raises ``MediaMissing``."""

    async def inspect(self, name: str, reader: Callable[[object], T]) -> T:
        """Run the blocking ``reader`` on a seekable binary file of stored media, off the
        event loop, and return what it returns; raises ``MediaMissing``. For background work
        only: a local store runs it in a worker process below the server's priority (so
        ``reader`` and its result must pickle); an object store in a thread, reading only
        the bytes the reader asks for with ranged GETs (nothing is copied to the disk)."""

    async def remove(self, name: str) -> None:
        """Remove stored media; nothing happens if it is already gone."""

    async def put(self, name: str, data: bytes, *, content_type: str) -> None:
        """Store a small blob (a cover, waveform peaks) under ``name`` as ``content_type``,
        atomically: readers see all of it or nothing. Names are content-addressed, so an
        existing blob of that name is already the same bytes and is kept."""

    async def get(self, name: str) -> bytes:
        """The whole of a small blob stored with ``put``; raises ``MediaMissing``."""

    async def problem(self) -> str | None:
        """Why the store cannot take writes now, or None when it can (for readiness)."""

    async def sweep(self) -> int:
        """Remove what crashed uploads left behind; returns how many were removed."""
