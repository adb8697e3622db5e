"""``mosic storage migrate --to s3|local``: copy every clip's audio, cover and waveform
between the local media directory and the S3 bucket, verifying each audio copy's SHA-256
against the catalogue, each cover's against its name, and every copy read back.

It goes through the storage interface on both sides (the same receive/publish path as an
upload), so a copy is published only once its hash is right, and a failed copy leaves
nothing. Media already at the destination with the right hash is left alone, so a migration
that stopped halfway is finished by running it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import sys
from dataclasses import dataclass, field

from mosic.core.inventory import StoredBlob, StoredEntry, stored_blobs, stored_entries
from mosic.media.local import LocalStore
from mosic.media.s3 import S3Store
from mosic.media.storage import MediaMissing, MediaStore, StorageUnavailable
from mosic.persistence.database import make_database
from mosic.settings import Settings

log = logging.getLogger("mosic")
DEFAULT_JOBS = 4


class HashMismatch(Exception):
    pass


@dataclass
class Tally:
    copied: int = 0
    present: int = 0
    failed: list[str] = field(default_factory=list)

    async def count(self, name: str, copy) -> None:
        """Await ``copy`` (True: copied, False: already there) and count what it did; a
        failure is noted with ``name``, never raised, so the other copies go on."""
        try:
            if await copy:
                self.copied += 1
            else:
                self.present += 1
        except (MediaMissing, StorageUnavailable, HashMismatch, OSError) as exc:
            self.failed.append(f"{name}: {exc}")


def migrate_storage(settings: Settings, to: str, jobs: int = DEFAULT_JOBS) -> int:
    if settings.s3 is None:
        print("mosic: invalid setting: MOSIC_S3_BUCKET (and MOSIC_S3_*) name the bucket to "
              "migrate to or from", file=sys.stderr)  # fmt: skip
        return 2
    local, bucket = LocalStore(settings.media_root), S3Store(settings.s3)
    source, target = (local, bucket) if to == "s3" else (bucket, local)
    tally = asyncio.run(_migrate(settings, source, target, jobs))
    log.info(
        "storage migrate to %s: %d copied, %d already there, %d failed",
        to, tally.copied, tally.present, len(tally.failed),
    )  # fmt: skip
    for line in tally.failed:
        log.error("  %s", line)
    return 1 if tally.failed else 0


async def _migrate(settings: Settings, source: MediaStore, target: MediaStore, jobs: int):
    db = make_database(settings)
    await source.start()
    await target.start()
    try:
        entries = await stored_entries(db)
        blobs = await stored_blobs(db)
        tally = Tally()
        files, size = len(entries) + len(blobs), sum(e.size for e in entries)
        with _progress(files, size) as advance:
            limit = asyncio.Semaphore(jobs)

            async def one(name: str, copy, size: int) -> None:
                async with limit:
                    await tally.count(name, copy)
                advance(size)

            await asyncio.gather(
                *(one(e.file_name, _copy(source, target, e), e.size) for e in entries),
                *(one(b.name, _copy_blob(source, target, b), 0) for b in blobs),
            )
        return tally
    finally:
        await target.close()
        await source.close()
        await db.aio_close()


async def _copy_blob(source: MediaStore, target: MediaStore, blob: StoredBlob) -> bool:
    """Copy one cover or waveform unless the target has the same bytes; True when copied."""
    data = await source.get(blob.name)
    if blob.sha256 is not None and hashlib.sha256(data).hexdigest() != blob.sha256:
        raise HashMismatch("the source's bytes do not hash to the cover's name")
    with contextlib.suppress(MediaMissing):
        if await target.get(blob.name) == data:
            return False
        await target.remove(blob.name)  # damaged: a store never overwrites a blob
    await target.put(blob.name, data, content_type=blob.content_type)
    if await target.get(blob.name) != data:
        raise HashMismatch("the copy read back does not match")
    return True


async def _copy(source: MediaStore, target: MediaStore, entry: StoredEntry) -> bool:
    """Copy one file unless the target has it with the right hash; True when copied."""
    try:
        if await _sha256(await target.open(entry.file_name)) == entry.sha256:
            return False
    except MediaMissing:
        pass
    media = await source.open(entry.file_name)
    incoming = await target.receive(media.size)
    try:
        async for chunk in media.chunks(0, media.size):
            await incoming.write(chunk)
        await incoming.finish()
        if incoming.sha256 != entry.sha256:
            raise HashMismatch(f"the source's bytes hash to {incoming.sha256[:12]}…")
        await target.publish(incoming, entry.file_name, content_type=entry.content_type)
    finally:
        await incoming.discard()
        await media.close()
    if await _sha256(await target.open(entry.file_name)) != entry.sha256:
        raise HashMismatch("the copy read back does not match")
    return True


async def _sha256(media) -> str:
    digest = hashlib.sha256()
    async for chunk in media.chunks(0, media.size):
        digest.update(chunk)
    return digest.hexdigest()


class _progress:  # noqa: N801 - used like a context manager function
    """A progress bar (files, bytes, rate, ETA; tqdm, as for ``mosic import``) on a terminal;
    a line per tenth of the files otherwise."""

    def __init__(self, files: int, total_bytes: int) -> None:
        self.files, self.total = files, total_bytes
        self.done_files = self.done_bytes = 0
        self._bar = None

    def __enter__(self):
        if sys.stderr.isatty():
            from tqdm import tqdm

            self._bar = tqdm(
                total=self.total, unit="B", unit_scale=True, unit_divisor=1024, desc="copying",
                postfix=f"0/{self.files} files", file=sys.stderr,
            )  # fmt: skip
        return self.advance

    def advance(self, size: int) -> None:
        self.done_files += 1
        self.done_bytes += size
        if self._bar is not None:
            self._bar.set_postfix_str(f"{self.done_files}/{self.files} files", refresh=False)
            self._bar.update(size)
        elif self.done_files % max(self.files // 10, 1) == 0 or self.done_files == self.files:
            print(f"copied {self.done_files}/{self.files} files, {self.done_bytes} bytes",
                  file=sys.stderr, flush=True)  # fmt: skip

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.close()
