"""Bulk import: files from disk go through the very path an upload takes.

Each file is written into the media store's ``Incoming`` exactly as a multipart upload's file
part is, then handed to ``Catalogue.add_upload``: hash dedup, tags, cover, waveform and the
size limit are the upload rules, not a second copy of them. Several files are imported at
once; what happened to each is reported as it finishes, and a failure never stops the rest.
"""

from __future__ import annotations

import asyncio
import enum
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from mosic.core.audio import NotAudio
from mosic.core.catalogue import Catalogue, DuplicateClip
from mosic.core.clip_rows import UploadForm
from mosic.media.storage import Incoming, StorageUnavailable, UploadTooLarge

# What counts as audio by name; anything else under the given folders is ignored. The bytes
# still decide: a .mp3 that is not audio fails as an upload would.
AUDIO_EXTENSIONS = frozenset(
    {".mp3", ".ogg", ".oga", ".opus", ".flac", ".wav", ".wave", ".m4a", ".mp4", ".aac",
     ".aif", ".aiff"}
)  # fmt: skip
READ_CHUNK_BYTES = 1024 * 1024


class Status(enum.Enum):
    ADDED = "added"
    SKIPPED = "skipped"
    FAILED = "failed"


@dataclass(frozen=True)
class Outcome:
    path: Path
    status: Status
    size: int
    detail: str  # the new clip, the clip that already has these bytes, or why it failed


def find_audio(paths: Iterable[Path]) -> tuple[list[Path], list[Outcome]]:
    """Every file with an audio extension under ``paths`` (files and folders, walked in name
    order), and a failed outcome for each path that does not exist."""
    found: list[Path] = []
    missing: list[Outcome] = []
    for path in paths:
        if path.is_dir():
            for folder, dirs, files in os.walk(path):
                dirs.sort()
                found.extend(Path(folder, name) for name in sorted(files) if _is_audio(name))
        elif path.is_file():
            if _is_audio(path.name):
                found.append(path)
        else:
            missing.append(Outcome(path, Status.FAILED, 0, "no such file or folder"))
    return found, missing


def _is_audio(name: str) -> bool:
    return Path(name).suffix.lower() in AUDIO_EXTENSIONS


async def import_file(catalogue: Catalogue, path: Path, limit: int) -> Outcome:
    """Add one file with the upload rules; never raises for a problem with the file."""
    incoming = await catalogue.receive(limit)
    try:
        await _copy(path, incoming)
        await incoming.finish()
        clip = await catalogue.add_upload(incoming, UploadForm(filename=path.name))
        return Outcome(path, Status.ADDED, incoming.size, f"clip {clip.id}")
    except DuplicateClip as exc:
        detail = f"already stored as clip {exc.existing_id}"
        return Outcome(path, Status.SKIPPED, incoming.size, detail)
    except (NotAudio, UploadTooLarge, StorageUnavailable, OSError) as exc:
        return Outcome(path, Status.FAILED, incoming.size, str(exc) or type(exc).__name__)
    finally:
        await incoming.discard()


async def _copy(path: Path, incoming: Incoming) -> None:
    fh = await asyncio.to_thread(open, path, "rb")
    try:
        while chunk := await asyncio.to_thread(fh.read, READ_CHUNK_BYTES):
            await incoming.write(chunk)
    finally:
        fh.close()


async def import_files(
    catalogue: Catalogue,
    files: list[Path],
    *,
    jobs: int,
    limit: int,
    done: Callable[[Outcome], None],
) -> list[Outcome]:
    """Import ``files``, ``jobs`` at a time, calling ``done`` as each one finishes."""
    queue: asyncio.Queue[Path] = asyncio.Queue()
    for path in files:
        queue.put_nowait(path)
    outcomes: list[Outcome] = []

    async def worker() -> None:
        while not queue.empty():
            outcome = await import_file(catalogue, queue.get_nowait(), limit)
            outcomes.append(outcome)
            done(outcome)

    await asyncio.gather(*(worker() for _ in range(max(1, min(jobs, len(files))))))
    return outcomes
