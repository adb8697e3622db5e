"""The local media store: audio files in a directory (``MOSIC_MEDIA_ROOT``).

Uploads land in ``<root>/.incoming`` under a random name while they arrive (same file system,
so publishing is an atomic rename), hashed as they are written, each held under an exclusive
``flock`` for as long as it is being received: the kernel drops the lock when its process
dies, however it dies, so an unlocked part file is one nobody will ever finish, and ``sweep``
removes exactly those, without touching what another process sharing the store receives.
A file is published under its content hash only once its catalogue row is being committed;
anything that goes wrong before that removes the partial file. File operations run in worker
threads, except reads the page cache holds and opens of files opened lately (see ``read_cached``
and ``WarmOpens``), which cost less than the hand-off would.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import functools
import hashlib
import logging
import os
import secrets
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import BinaryIO, TypeVar

from mosic.media.readers import ReaderPool, run_on_file
from mosic.media.storage import MediaMissing, StorageFull, StorageUnavailable, UploadTooLarge

log = logging.getLogger(__name__)
T = TypeVar("T")
INCOMING_DIR = ".incoming"
# Writes are batched so a fast upload costs one thread hop per MiB, not one per network chunk.
WRITE_BATCH_BYTES = 1024 * 1024
# What all of a process's streams read ahead together: each reads chunks of its share, within
# these bounds. A stream holds one chunk (the one the socket is taking: mosic.api.serving's
# DRAIN), so 200 listeners hold ~6 MiB of 32 KiB chunks, while 16 get 192 KiB chunks and few
# reads per MiB. At 6 MiB, 200 listeners grew the RSS about 5 MiB more, though they hold the
# same 32 KiB chunks: the first few of a crowd read big chunks, likely what leaves the heap
# larger. (16 KiB chunks for 200 saved nothing more, and cost a quarter of their rate.)
READ_AHEAD_BYTES = 3 * 1024 * 1024
MIN_CHUNK_BYTES = 32 * 1024
MAX_CHUNK_BYTES = 1024 * 1024
# Linux only; elsewhere every read goes to a thread.
RWF_NOWAIT = getattr(os, "RWF_NOWAIT", None)
# How far apart ``read_cached`` probes the page cache (a chunk is 32 KiB to 1 MiB).
PROBE_STEP_BYTES = 64 * 1024
CREATE_ATTEMPTS = 3
# How much lower the process that inspects stored media runs (os.nice): a decode competing
# with requests for a core gets about a tenth of it.
BACKGROUND_NICE = 10
FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


@contextlib.contextmanager
def store_errors():
    """``OSError`` turned into the store's own errors (a missing file is the caller's
    business, so it passes through)."""
    try:
        yield
    except FileNotFoundError:
        raise
    except OSError as exc:
        # The client's message names the failure, never a server path; the log has it all.
        reason = os.strerror(exc.errno) if exc.errno else type(exc).__name__
        if exc.errno in FULL_ERRNOS:
            raise StorageFull(reason) from exc
        log.error("media store I/O error: %s", exc)
        raise StorageUnavailable(f"the media store failed: {reason}") from exc


async def in_thread(work: Callable[..., T], *args) -> T:
    """Run blocking file ``work`` in a thread, with the store's own errors."""
    with store_errors():
        return await asyncio.to_thread(work, *args)


def open_sized(path: str) -> tuple[int, int]:
    """A read-only descriptor of ``path`` and the file's size (blocking)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return fd, os.fstat(fd).st_size
    except BaseException:
        os.close(fd)
        raise


class WarmOpens:
    """Opens files for reading: on the event loop when the path was opened in the last
    ``window_s`` seconds (one of the last ``names`` paths), else in a thread.

    A path opened lately has its directory entries and inode in the kernel's caches, so
    opening it again takes microseconds; handing that to a thread cost more than the open
    (11 % of a stream's CPU went to the hand-off and the GIL it contends for). A path not
    opened lately may need a disk read to find, which must not stall the loop. Every request
    still opens the file, so a file that vanished is noticed at once (unlike an fd cache)."""

    def __init__(self, window_s: float = 60, names: int = 4096) -> None:
        self._window = window_s
        self._names = names
        self._opened: OrderedDict[str, float] = OrderedDict()

    async def open(self, path: str) -> tuple[int, int]:
        """A read-only descriptor of ``path`` and its size; ``FileNotFoundError`` if gone."""
        now = time.monotonic()
        last = self._opened.pop(path, None)
        if last is not None and now - last < self._window:
            with store_errors():
                opened = open_sized(path)
        else:
            opened = await in_thread(open_sized, path)
        self._opened[path] = now
        if len(self._opened) > self._names:
            self._opened.popitem(last=False)
        return opened


class LocalIncoming:
    """A file being received into ``.incoming``."""

    def __init__(self, path: Path, fh: BinaryIO, limit: int) -> None:
        self.path = path
        self.limit = limit
        self.size = 0
        self.published = False
        self._fh = fh
        self._hash = hashlib.sha256()
        self._pending: list[bytes] = []
        self._pending_size = 0
        self._writing: asyncio.Task | None = None

    async def write(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self.limit:
            raise UploadTooLarge(self.limit)
        self._pending.append(chunk)
        self._pending_size += len(chunk)
        if self._pending_size >= WRITE_BATCH_BYTES:
            await self._flush()

    async def _flush(self) -> None:
        if self._pending:
            data, self._pending, self._pending_size = b"".join(self._pending), [], 0
            await self._written()
            # Hashed and written in a thread while the next batch is received: the loop does
            # neither, and one batch at most waits in memory beside the one being received.
            self._writing = asyncio.create_task(in_thread(self._hash_and_write, data))

    async def _written(self) -> None:
        """Wait for the batch being written; its error (a full disk) is raised here."""
        writing, self._writing = self._writing, None
        if writing is not None:
            await writing

    def _hash_and_write(self, data: bytes) -> None:
        self._hash.update(data)
        self._fh.write(data)

    async def finish(self) -> None:
        await self._flush()
        await self._written()
        # Flushed, not closed: closing would drop the lock while the file still waits in
        # .incoming for its row; ``discard`` closes it.
        await in_thread(self._fh.flush)

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()

    async def inspect(self, reader: Callable[[BinaryIO], T]) -> T:
        def run() -> T:
            with open(self.path, "rb") as fh:
                return reader(fh)

        return await in_thread(run)

    async def discard(self) -> None:
        with contextlib.suppress(StorageFull, StorageUnavailable):  # the file goes anyway
            await self._written()

        def drop() -> None:
            # Closing flushes what is buffered, which fails again on a full disk; the file is
            # closed regardless, and removing it is what gives the space back.
            with contextlib.suppress(OSError):
                self._fh.close()
            if not self.published:
                self.path.unlink(missing_ok=True)

        await in_thread(drop)


class ReadAhead:
    """The chunk size for each stream: a share of ``READ_AHEAD_BYTES`` among the streams
    running now; and the byte ``read_cached`` probes the page cache into (one for the
    process: only the event loop uses it)."""

    def __init__(self, total: int = READ_AHEAD_BYTES) -> None:
        self._total = total
        self.streams = 0
        self.probe = memoryview(bytearray(1))

    def chunk_size(self) -> int:
        share = self._total // max(1, self.streams)
        return max(MIN_CHUNK_BYTES, min(MAX_CHUNK_BYTES, share))


def read_cached(fd: int, size: int, offset: int, probe: memoryview) -> bytes | None:
    """Up to ``size`` bytes at ``offset`` if the page cache holds them, read without waiting
    for a disk, so on the event loop: no thread hop per chunk. None when they would wait.

    The cache is probed with one-byte RWF_NOWAIT reads into ``probe``, one per
    ``PROBE_STEP_BYTES`` and the last byte: the kernel reads a file into its cache and evicts
    it in runs of pages (readahead windows are 128 KiB and up), so a hole between two cached
    probes is rare, and costs the loop one disk read when it happens (nginx reads every
    chunk that way). Probing the whole range was a second copy of every chunk: a quarter of
    a stream's CPU. What is cached before the first probe that would wait is read."""
    if RWF_NOWAIT is None:
        return None
    end = offset + size
    at = offset
    try:
        for at in (*range(offset, end, PROBE_STEP_BYTES), end - 1):
            if not os.preadv(fd, [probe], at, RWF_NOWAIT):
                end = at  # the file ends before ``at``
                break
    except OSError:  # EAGAIN: not cached from ``at`` on; or a file system that cannot tell
        if at == offset:
            return None
        end = at
    return os.pread(fd, end - offset, offset) if end > offset else b""


class LocalMedia:
    """An open stored file (its descriptor, which ``close`` closes once)."""

    def __init__(self, fd: int, size: int, read_ahead: ReadAhead) -> None:
        self._fd: int | None = fd
        self.size = size
        self._read_ahead = read_ahead

    async def chunks(self, start: int, length: int) -> AsyncIterator[bytes]:
        fd = self._fd
        if fd is None:
            raise ValueError("the media is closed")
        self._read_ahead.streams += 1
        try:
            position, end = start, start + length
            while position < end:
                size = min(self._read_ahead.chunk_size(), end - position)
                chunk = read_cached(fd, size, position, self._read_ahead.probe)
                if chunk is None:
                    chunk = await in_thread(os.pread, fd, size, position)
                if not chunk:
                    break
                position += len(chunk)
                yield chunk
        finally:
            self._read_ahead.streams -= 1
            await self.close()

    async def close(self) -> None:
        # Closing a regular file never blocks on the network or a disk queue.
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    async def direct_url(self, expires_in: int, content_type: str) -> None:
        return None  # a local file has no address of its own


class LocalStore:
    def __init__(
        self, root: Path, read_ahead: ReadAhead | None = None, preload: tuple[str, ...] = ()
    ) -> None:
        self.root = Path(root)
        self.incoming_dir = self.root / INCOMING_DIR
        self._read_ahead = read_ahead or ReadAhead()
        self._opens = WarmOpens()
        # Stored media is inspected only by background work (an upload's loudness after its
        # 201, re-reading after an upgrade): one worker process, below the server's priority,
        # with the modules of the readers it will run (``preload``) imported before it starts.
        self._readers = ReaderPool(1, nice=BACKGROUND_NICE, preload=preload)

    def prepare(self) -> None:
        """Create the directories (at start-up, before the event loop runs)."""
        self.incoming_dir.mkdir(parents=True, exist_ok=True)

    async def start(self) -> None:
        pass  # nothing to connect to

    async def close(self) -> None:
        await self._readers.close()

    def _path(self, name: str) -> Path:
        # Names are always our own "<sha256><ext>"; sharding keeps directories small.
        return self.root / name[:2] / name

    async def receive(self, limit: int) -> LocalIncoming:
        def create() -> LocalIncoming:
            self.prepare()
            for _ in range(CREATE_ATTEMPTS):
                path = self.incoming_dir / f"{secrets.token_hex(16)}.part"
                fh = open(path, "xb")  # noqa: SIM115 - LocalIncoming closes it
                # Held until the file is closed (or its process dies): the sweep's "alive".
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
                # A sweep may have taken the lock between our open and our flock and removed
                # the file; then it has no name any more, and we start again.
                if os.fstat(fh.fileno()).st_nlink:
                    return LocalIncoming(path, fh, limit)
                fh.close()
            raise StorageUnavailable("could not create a part file in .incoming")

        return await in_thread(create)

    async def publish(self, incoming: LocalIncoming, name: str, *, content_type: str) -> None:
        # A file's type is its name's (the web server in front decides the header).
        target = self._path(name)

        def move() -> None:
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(incoming.path, target)
            incoming.published = True

        await in_thread(move)

    async def open(self, name: str) -> LocalMedia:
        try:
            fd, size = await self._opens.open(str(self._path(name)))
        except FileNotFoundError:
            raise MediaMissing(name) from None
        return LocalMedia(fd, size, self._read_ahead)

    async def inspect(self, name: str, reader: Callable[[BinaryIO], T]) -> T:
        try:
            return await self._readers.run(run_on_file, str(self._path(name)), reader)
        except FileNotFoundError:
            raise MediaMissing(name) from None

    async def remove(self, name: str) -> None:
        await in_thread(functools.partial(self._path(name).unlink, missing_ok=True))

    async def put(self, name: str, data: bytes, *, content_type: str) -> None:
        target = self._path(name)

        def write() -> None:
            if target.exists():
                return
            self.prepare()
            part = self.incoming_dir / f"{secrets.token_hex(16)}.part"
            try:
                part.write_bytes(data)
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(part, target)
            finally:
                part.unlink(missing_ok=True)

        await asyncio.to_thread(write)

    async def get(self, name: str) -> bytes:
        def read() -> bytes:
            try:
                return self._path(name).read_bytes()
            except FileNotFoundError:
                raise MediaMissing(name) from None

        return await asyncio.to_thread(read)

    async def problem(self) -> str | None:
        return await asyncio.to_thread(self._write_problem)

    def _write_problem(self) -> str | None:
        try:
            self.prepare()
            probe = self.incoming_dir / f"ready-{secrets.token_hex(4)}"
            probe.write_bytes(b"")
            probe.unlink()
            return None
        except OSError as exc:
            log.warning("readiness: media store %s is not writable: %s", self.root, exc)
            return "media store is not writable"

    async def sweep(self) -> int:
        """Remove partial uploads that no live process holds; returns how many.

        A part file whose lock can be taken has no receiver: its process finished with it or
        died. One still locked is being received, here or by a replica sharing the store.
        """
        return await asyncio.to_thread(self._sweep)

    def _sweep(self) -> int:
        if not self.incoming_dir.is_dir():
            return 0
        return sum(_remove_if_unlocked(leftover) for leftover in self.incoming_dir.glob("*.part"))


def _remove_if_unlocked(path: Path) -> int:
    with contextlib.suppress(FileNotFoundError), open(path, "rb") as fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return 0
        # Unlinked while we hold the lock, so no receiver can have taken it in between.
        path.unlink()
        return 1
    return 0
