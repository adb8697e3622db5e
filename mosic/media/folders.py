"""Music folders on disk: walked, read and streamed where they are, never written.

A music folder is often a read-only mount managed by other tools, so nothing here opens a
file for writing, creates, renames or removes anything under it. Everything is confined to
the folder: a path is resolved (symbolic links followed) and refused unless it stays inside
the folder's own resolved root, so a link pointing elsewhere never exposes another file.

The walk streams one directory at a time (``Listing``), so its memory is that of the largest
directory, not of the tree. Reading tags and hashing run in worker processes
(``readers.ReaderPool``): mutagen is pure Python, so threads would share one core.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import stat
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, TypeVar

from mosic.media.local import LocalMedia, ReadAhead, WarmOpens
from mosic.media.storage import MediaMissing

log = logging.getLogger(__name__)
T = TypeVar("T")
HIDDEN_PREFIX = "."
# watchfiles groups a burst of changes for at most this many settle periods: a file being
# copied for minutes still gets scanned (and again once it stops changing).
SETTLE_GROUP_MAX = 10


@dataclass(frozen=True)
class FileStat:
    name: str
    size: int
    mtime_ns: int


@dataclass
class Listing:
    """One directory of a music folder: ``path`` relative to the folder ("" for its root,
    ``/``-separated), its audio files and its sidecar files, each with its stat.
    ``error`` says why the directory could not be read (then it lists nothing, and what was
    known under it must be left as it was)."""

    path: str
    files: list[FileStat] = field(default_factory=list)
    sidecars: list[FileStat] = field(default_factory=list)
    error: str | None = None


def relative(directory: str, name: str) -> str:
    return f"{directory}/{name}" if directory else name


def _inside(root_real: str, path: str) -> bool:
    return path == root_real or path.startswith(root_real.rstrip("/") + "/")


def walk(
    root: Path,
    audio: frozenset[str],
    sidecars: frozenset[str],
    start: str = "",
    recursive: bool = True,
) -> Iterator[Listing]:
    """Every directory under ``root``/``start`` (itself only unless ``recursive``) that holds
    audio files (by lower-cased extension in ``audio``) or is unreadable, depth first in name
    order. Names starting with "." are skipped; a symbolic link is followed only when its
    target is inside ``root``, and a directory already being walked (a loop) is not again."""
    root_real = os.path.realpath(root)
    pending: list[tuple[str, tuple[str, ...]]] = [(start, ())]
    while pending:
        directory, ancestors = pending.pop()
        real = os.path.realpath(os.path.join(root, directory))
        if real in ancestors or not _inside(root_real, real):
            continue
        listing, subdirectories = _list(root, root_real, directory, audio, sidecars)
        if listing.files or listing.error:
            yield listing
        if recursive:
            below = (*ancestors, real)
            pending.extend((relative(directory, name), below) for name in reversed(subdirectories))


def _list(root: Path, root_real: str, directory: str, audio, sidecars):
    listing = Listing(directory)
    subdirectories: list[str] = []
    try:
        with os.scandir(os.path.join(root, directory)) as entries:
            found = sorted(entries, key=lambda entry: entry.name)
    except (FileNotFoundError, NotADirectoryError):
        return listing, subdirectories  # gone (or never was): what it held is missing
    except OSError as exc:
        listing.error = exc.strerror or type(exc).__name__
        return listing, subdirectories
    for entry in found:
        if entry.name.startswith(HIDDEN_PREFIX):
            continue
        info = _stat(entry, root_real)
        if info is None:
            continue
        if stat.S_ISDIR(info.st_mode):
            subdirectories.append(entry.name)
            continue
        if not stat.S_ISREG(info.st_mode):
            continue
        extension = os.path.splitext(entry.name)[1].lower()
        if extension in audio:
            listing.files.append(FileStat(entry.name, info.st_size, info.st_mtime_ns))
        elif extension in sidecars:
            listing.sidecars.append(FileStat(entry.name, info.st_size, info.st_mtime_ns))
    return listing, subdirectories


def _stat(entry: os.DirEntry, root_real: str) -> os.stat_result | None:
    """The entry's own stat, or its target's when it is a link whose target is inside the
    folder; None for a link out of the folder, a dangling one or one that cannot be read."""
    try:
        if entry.is_symlink() and not _inside(root_real, os.path.realpath(entry.path)):
            return None
        return entry.stat(follow_symlinks=True)
    except OSError:
        return None


def confined(root: Path, path: str) -> str:
    """The real path of ``path`` (relative to ``root``), refused with ``MediaMissing`` when
    it resolves outside ``root``: a clip's path comes from the database, and a link may have
    been changed to point elsewhere since the scan."""
    root_real = os.path.realpath(root)
    real = os.path.realpath(os.path.join(root_real, path))
    if os.path.isabs(path) or not _inside(root_real, real) or real == root_real:
        raise MediaMissing(path)
    return real


class FolderFiles:
    """Opens the files of music folders for streaming (``LocalMedia``, as stored media)."""

    def __init__(self, roots: dict[str, Path], read_ahead: ReadAhead | None = None) -> None:
        self._roots = roots
        self._read_ahead = read_ahead or ReadAhead()
        self._opens = WarmOpens()

    def root(self, music_folder: str) -> Path:
        root = self._roots.get(music_folder)
        if root is None:  # a folder no longer configured: its clips cannot be served
            raise MediaMissing(music_folder)
        return root

    def path(self, music_folder: str, path: str) -> str:
        """The confined real path of a library file; ``MediaMissing`` if it escapes."""
        return confined(self.root(music_folder), path)

    async def open(self, music_folder: str, path: str) -> LocalMedia:
        real = await asyncio.to_thread(self.path, music_folder, path)
        try:
            fd, size = await self._opens.open(real)
        except (FileNotFoundError, IsADirectoryError, PermissionError):
            raise MediaMissing(path) from None
        return LocalMedia(fd, size, self._read_ahead)


@dataclass(frozen=True)
class FileRead:
    """What reading one file found: what ``reader`` returned, and the file's SHA-256, size
    and modification time, all of the one open file (so a file changed meanwhile is stored
    with the facts of the bytes read, and seen as changed next time)."""

    result: object
    sha256: str
    size: int
    mtime_ns: int


def read_file(path: str, reader: Callable[[BinaryIO], T]) -> FileRead:
    """Run ``reader`` on the file at ``path``, then hash all of it (in a worker process)."""
    with open(path, "rb") as fh:
        info = os.fstat(fh.fileno())
        result = reader(fh)
        fh.seek(0)
        digest = hashlib.file_digest(fh, "sha256").hexdigest()
    return FileRead(result, digest, info.st_size, info.st_mtime_ns)


def read_bytes(path: str, limit: int) -> bytes | None:
    """A small file's bytes (a sidecar picture), None when it is bigger than ``limit``."""
    with open(path, "rb") as fh:
        data = fh.read(limit + 1)
    return None if len(data) > limit else data


async def watch(roots: list[Path], settle_s: float) -> AsyncIterator[set[Path]]:
    """Paths that changed under ``roots``, a set each time changes have settled (no new one
    for ``settle_s`` seconds). File-system events (inotify): file systems that send none
    (NFS, SMB) are left to the periodic full scan."""
    from watchfiles import awatch  # loads only where a watcher runs

    step_ms = max(int(settle_s * 1000), 50)
    async for changes in awatch(
        *roots, step=step_ms, debounce=step_ms * SETTLE_GROUP_MAX, recursive=True
    ):
        yield {Path(path) for _, path in changes}


def folder_of(roots: dict[str, Path], path: Path) -> tuple[str, str] | None:
    """(music folder, relative path) of an absolute ``path`` a watcher reported; None when
    it is in none, or hidden."""
    for name, root in roots.items():
        with contextlib.suppress(ValueError):
            parts = path.relative_to(root).parts
            if any(part.startswith(HIDDEN_PREFIX) for part in parts):
                return None
            return name, "/".join(parts)
    return None
