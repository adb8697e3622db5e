"""One scan of music folders: what is on disk made what the catalogue lists.

The walk streams directories; they are taken a batch at a time (``BATCH_FILES`` files), the
batch's known clips fetched in one query by directory id, and each file compared with its
clip: same size and modification time is unchanged and costs nothing more than its stat
(Navidrome's and gonic's rule). The others are read in worker processes (tags and the full
SHA-256), a bounded number at once, and the batch written in one transaction with the
derived rows (``Aggregates``), so a listing never sees half a batch and memory stays flat.

Identity: a file at a known path is that clip (re-tagged: same id, counts and stars). A new
path whose bytes (SHA-256) belong to a clip that is missing, or whose file is no longer where
it was, is that clip moved (or back). A known clip whose file is gone is *missing*: hidden,
and kept ``MOSIC_LIBRARY_MISSING_DAYS`` for its bytes to come back.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from mosic.core import audio, grouping, replay_gain
from mosic.core.aggregates import Aggregates, Touched
from mosic.core.clip_rows import MEDIA_VERSION
from mosic.core.imports import AUDIO_EXTENSIONS
from mosic.core.lyrics import replace as replace_lyrics
from mosic.core.lyrics import rows_of as lyrics_rows
from mosic.core.scanning import directories, rows
from mosic.core.scanning.lease import Counts, LeaseLost, ScanLease
from mosic.media import folders
from mosic.media.folders import FileRead, FileStat, Listing
from mosic.media.readers import ReaderPool
from mosic.media.storage import MediaStore
from mosic.persistence.models import LIBRARY, Clip, DirectoryRow, utcnow

log = logging.getLogger(__name__)
# Files compared (and changes written) per transaction: big enough that a rescan costs a
# query per few hundred files, small enough that a writer never holds the database long.
BATCH_FILES = 300
# Reads in flight per worker process: keeps the workers busy while results are stored,
# and bounds the covers held in memory at once.
READS_PER_WORKER = 4
# Covers already stored during a scan, remembered so an album's tracks store theirs once.
STORED_COVERS_MAX = 4096


@dataclass(frozen=True)
class Unit:
    """What to scan: ``start`` (a directory relative to the folder, "" for all of it), and
    below it unless not ``recursive``."""

    folder: str
    start: str = ""
    recursive: bool = True


@dataclass
class Change:
    kind: str  # added, updated, moved, missing, failed
    folder: str
    path: str
    detail: str = ""


@dataclass
class _Batch:
    """The writes one batch makes, gathered before its transaction."""

    inserts: list[dict] = field(default_factory=list)
    updates: list[tuple[object, dict]] = field(default_factory=list)
    missing: list[dict] = field(default_factory=list)
    holding: set[str] = field(default_factory=set)  # directories with a listed track
    touched: Touched = field(default_factory=Touched)
    drop: list[tuple[object, str]] = field(default_factory=list)  # blobs maybe unused now
    covers: dict[str, tuple[str, str | None]] = field(default_factory=dict)  # by directory
    lyrics: dict[object, tuple] = field(default_factory=dict)  # the tags' lyrics, by clip id


class Scan:
    """A scan run: ``await run(units)``; ``counts`` grow as it goes."""

    def __init__(
        self,
        *,
        db,
        store: MediaStore,
        pool: ReaderPool,
        roots: dict[str, Path],
        full: bool = False,
        on_change: Callable[[Change], None] | None = None,
        on_progress: Callable[[Counts], None] | None = None,
        drop_if_unused=None,
        lease: ScanLease | None = None,
    ) -> None:
        self._db = db
        self._store = store
        self._pool = pool
        self._roots = roots
        self._full = full
        self._on_change = on_change or (lambda change: None)
        self._on_progress = on_progress or (lambda counts: None)
        self.drop_if_unused = drop_if_unused
        self.counts = Counts()
        self._lease = lease
        self._stored_covers: set[str] = set()
        self._missing_now: set = set()  # clips this scan found missing (a move may follow)
        self._directories: set[str] = set()
        self._sidecars: dict[str, dict] = {}  # a batch's directories' sidecar covers

    async def run(self, units: list[Unit]) -> Counts:
        for unit in units:
            root = self._roots.get(unit.folder)
            if root is None or not await asyncio.to_thread(os.path.isdir, root):
                # An unmounted folder must not make its whole library missing.
                log.error(
                    "library: music folder %s (%s) is not a readable directory; left as it was",
                    unit.folder,
                    root,
                )
                self.counts.failed += 1
                continue
            await self._scan_unit(root, unit)
        return self.counts

    async def _scan_unit(self, root: Path, unit: Unit) -> None:
        walker = folders.walk(
            root, AUDIO_EXTENSIONS, rows.SIDECAR_EXTENSIONS, unit.start, unit.recursive
        )
        visited: set[str] = set()
        unreadable: list[str] = []
        # The walk runs a chunk ahead in a thread, overlapping the database work.
        ahead = asyncio.ensure_future(asyncio.to_thread(_take, walker, BATCH_FILES))
        while chunk := await ahead:
            ahead = asyncio.ensure_future(asyncio.to_thread(_take, walker, BATCH_FILES))
            for listing in chunk:
                if listing.error:
                    log.warning(
                        "library: %s/%s cannot be read (%s); what it held is kept",
                        unit.folder,
                        listing.path,
                        listing.error,
                    )
                    unreadable.append(listing.path)
                else:
                    visited.add(grouping.directory_id(unit.folder, listing.path))
            await self._batch(root, unit.folder, [c for c in chunk if not c.error])
        await self._vanished(unit, visited, unreadable)
        async with self._db.aio_atomic():
            await directories.sweep(self._db, unit.folder, unit.start)

    async def _batch(self, root: Path, folder: str, listings: list[Listing]) -> None:
        if self._lease is not None and self._lease.lost:
            raise LeaseLost("another process scans now")  # two writers would race
        known = await self._known(folder, listings)
        self._sidecars.clear()
        batch = _Batch()
        reread = await self._covers_changed(root, folder, listings, known, batch)
        to_read = []
        for listing in listings:
            for stat in listing.files:
                path = folders.relative(listing.path, stat.name)
                lyrics = rows.lyrics_for(listing.path, stat.name, listing.sidecars)
                clip = known.pop(path, None)
                self.counts.seen += 1
                if clip is not None and not self._full and path not in reread and _same(clip, stat):
                    if _settled(clip, lyrics):  # the rescan's common case: nothing to do
                        self.counts.unchanged += 1
                    else:
                        await self._unchanged(listing, clip, lyrics, batch)
                else:
                    to_read.append((listing, stat, path, lyrics, clip))
        reads = await self._read_all(root, folder, to_read, batch)
        gone = {clip["id"]: clip for clip in known.values() if clip["missing_since"] is None}
        await self._place_new(folder, reads, gone, batch)
        for clip in gone.values():
            self._gone(clip, batch)
        await self._write(folder, batch)
        self._on_progress(self.counts)

    async def _known(self, folder: str, listings: list[Listing]) -> dict[str, dict]:
        """The clips of ``listings``' directories by path, as the database's raw values
        (peewee's conversion of every row was a third of a rescan's time): ids and times
        are only compared and handed back to queries, which take them as they are."""
        ids = [grouping.directory_id(folder, listing.path) for listing in listings]
        if not ids:
            return {}
        # By directory id alone (it names the folder too): with the folder in the condition
        # SQLite read the whole folder's clips through its index, for every batch.
        query = Clip.select(*rows.KNOWN_COLUMNS).where(Clip.directory_id.in_(ids))
        return {clip["path"]: clip for clip in await self._raw(query)}

    async def _covers_changed(self, root, folder, listings, known, batch) -> set[str]:
        """Directories whose cover picture changed since the last scan (added, replaced in
        place, removed; every one under ``--full``): their stat and blob are remembered, and
        the paths of their tracks that showed the old picture or none are returned, to be
        read again (a track that embeds the very same picture keeps it)."""
        ids = {grouping.directory_id(folder, listing.path): listing for listing in listings}
        query = DirectoryRow.select(
            DirectoryRow.id, DirectoryRow.cover_stat, DirectoryRow.cover_name
        ).where(DirectoryRow.id.in_(list(ids)))
        seen = {row[0]: row[1:] for row in await self._db.aio_execute(query.tuples())}
        reread: set[str] = set()
        for directory_id, listing in ids.items():
            stat = rows.cover_stat(listing.sidecars)
            was_stat, was_name = seen.get(directory_id, (None, None))
            if stat == was_stat and not self._full:
                continue
            columns = await self._sidecar_cover(root, listing)
            if columns is None:
                continue  # unreadable now: compared again at the next scan
            batch.covers[directory_id] = (stat, columns.get("cover_name"))
            if columns.get("cover_name") == was_name:
                continue  # touched, or replaced by the same bytes: its tracks show it already
            reread.update(
                path
                for path, clip in known.items()
                if clip["directory_id"] == directory_id and clip["cover_name"] in (was_name, None)
            )
        return reread

    async def _raw(self, query) -> list[dict]:
        """The known columns of ``query``'s clips, as the database's raw values."""
        sql, params = self._db.get_sql_context().sql(query).query()
        names = [column.name for column in rows.KNOWN_COLUMNS]
        return [
            dict(zip(names, row, strict=True)) for row in await self._db.fetch_rows(sql, params)
        ]

    async def _unchanged(self, listing: Listing, clip: dict, lyrics, batch) -> None:
        """A file as its clip knew it: nothing is read. A clip missing until now is back;
        a sidecar lyrics file that appeared or went since is taken up."""
        changes = {}
        if clip["lyrics_path"] != lyrics:
            changes["lyrics_path"] = lyrics
        if clip["missing_since"] is not None:
            changes.update(rows.placed(clip, clip["music_folder"], clip["path"], lyrics))
            batch.touched.clip({**clip, **changes}, 1)
            self._count(Change("updated", clip["music_folder"], clip["path"], "back"))
        else:
            self.counts.unchanged += 1
        if changes:
            batch.updates.append((clip["id"], changes))
        if clip["missing_since"] is not None:
            batch.holding.add(listing.path)

    async def _read_all(self, root, folder, to_read, batch) -> list[tuple]:
        """Read every file of ``to_read`` in the worker processes, a bounded number at once;
        the changed known ones become updates; returns the new ones with what was read."""
        slots = asyncio.Semaphore(self._pool.workers * READS_PER_WORKER)

        async def one(item):
            listing, stat, path, lyrics, clip = item
            async with slots:
                read = await self._read(root, folder, path)
                if read is None:
                    return None
                fields = rows.file_columns(folder, path, read, lyrics)
                fields.update(await self._cover(root, listing, read.result))
                return item, read, fields

        results = await asyncio.gather(*(one(item) for item in to_read))
        new = []
        for result in filter(None, results):
            (listing, stat, path, lyrics, clip), read, fields = result
            batch.holding.add(listing.path)
            if clip is None:
                new.append((path, read, fields))
            else:
                self._changed(clip, fields, batch)
                batch.lyrics[clip["id"]] = read.result.lyrics
        return new

    async def _read(self, root: Path, folder: str, path: str) -> FileRead | None:
        try:
            real = await asyncio.to_thread(folders.confined, root, path)
            return await self._pool.run(folders.read_file, real, audio.probe)
        except (audio.NotAudio, OSError, folders.MediaMissing) as exc:
            log.warning("library: %s/%s skipped: %s", folder, path, exc)
            self._count(Change("failed", folder, path, str(exc)))
            return None

    async def _cover(self, root: Path, listing: Listing, info: audio.AudioInfo) -> dict:
        """The cover columns of a file: its embedded picture, else its directory's sidecar
        picture, else none (a cover that went must be cleared)."""
        embedded = rows.embedded_cover(info)
        if embedded is None:
            return await self._sidecar_cover(root, listing) or {
                "cover_name": None,
                "cover_type": None,
            }
        name, data, columns = embedded
        await self._put_cover(name, data, columns["cover_type"])
        return columns

    async def _sidecar_cover(self, root: Path, listing: Listing) -> dict | None:
        """The columns of the directory's sidecar cover (read once a batch), empty for no
        cover, None for one that cannot be read."""
        if listing.path not in self._sidecars:
            self._sidecars[listing.path] = await self._read_sidecar(root, listing)
        return self._sidecars[listing.path]

    async def _read_sidecar(self, root: Path, listing: Listing) -> dict:
        cover = rows.sidecar_cover(listing.sidecars)
        if cover is None:
            return {}
        name = cover.name
        try:
            real = await asyncio.to_thread(
                folders.confined, root, folders.relative(listing.path, name)
            )
            data = await asyncio.to_thread(folders.read_bytes, real, rows.COVER_MAX_BYTES)
        except (OSError, folders.MediaMissing) as exc:
            log.warning("library: cover %s/%s cannot be read: %s", listing.path, name, exc)
            return None
        if data is None:
            return {}  # too big to be a cover
        blob, columns = rows.cover_blob(data, rows.cover_type(name))
        await self._put_cover(blob, data, columns["cover_type"])
        return columns

    async def _put_cover(self, name: str, data: bytes, content_type: str) -> None:
        if name in self._stored_covers:
            return
        await self._store.put(name, data, content_type=content_type)
        if len(self._stored_covers) >= STORED_COVERS_MAX:
            self._stored_covers.clear()
        self._stored_covers.add(name)

    def _changed(self, clip: dict, fields: dict, batch: _Batch) -> None:
        """A known path whose file changed (re-tagged): the same clip, read again."""
        row = rows.changed_row({**fields, "missing_since": None})
        if clip["sha256"] != row["sha256"]:
            row["waveform_name"] = None  # drawn again, in the background
            row = {**replay_gain.PENDING, **row}  # and measured again, unless its tags say
            batch.drop.append((Clip.waveform_name, clip["waveform_name"]))
        if clip["cover_name"] != row.get("cover_name"):
            batch.drop.append((Clip.cover_name, clip["cover_name"]))
        if clip["missing_since"] is None:
            batch.touched.clip(clip, -1)
        batch.touched.clip(row, 1)
        batch.updates.append((clip["id"], row))
        unchanged = clip["sha256"] == row["sha256"] and clip["missing_since"] is None
        if unchanged:  # touched, not changed (--full, or a copy that kept the bytes)
            self.counts.unchanged += 1
        else:
            self._count(Change("updated", fields["music_folder"], fields["path"]))

    async def _place_new(self, folder: str, new: list[tuple], gone: dict, batch) -> None:
        """New paths: a clip with the same bytes that is missing or no longer at its place
        moved here; any other is a new clip."""
        candidates = await self._same_bytes({read.sha256 for _, read, _ in new})
        for path, read, fields in new:
            clip = await self._moved_from(candidates.get(read.sha256, []), gone)
            if clip is None:
                row = rows.new_row(fields)
                batch.inserts.append(row)
                batch.lyrics[row["id"]] = read.result.lyrics
                batch.touched.clip(row, 1)
                self._count(Change("added", folder, path))
                continue
            changes = {
                **rows.placed(clip, folder, path, fields["lyrics_path"]),
                "size": read.size,
                "mtime_ns": read.mtime_ns,
            }
            if clip["missing_since"] is None:
                batch.touched.clip(clip, -1)
            batch.touched.clip({**clip, **changes}, 1)
            batch.updates.append((clip["id"], changes))
            if clip["id"] in self._missing_now:  # found missing earlier in this scan
                self._missing_now.discard(clip["id"])
                self.counts.missing -= 1
            self._count(
                Change("moved", folder, path, f"from {clip['music_folder']}/{clip['path']}")
            )

    async def _same_bytes(self, hashes: set[str]) -> dict[str, list[dict]]:
        if not hashes:
            return {}
        query = Clip.select(*rows.KNOWN_COLUMNS).where(
            Clip.sha256.in_(list(hashes)) & (Clip.source == LIBRARY)
        )
        found: dict[str, list[dict]] = {}
        for row in await self._raw(query):
            found.setdefault(row["sha256"], []).append(row)
        return found

    async def _moved_from(self, candidates: list[dict], gone: dict) -> dict | None:
        for clip in candidates:
            if clip["id"] in gone or clip["missing_since"] is not None:
                pass
            elif await asyncio.to_thread(self._still_there, clip):
                continue  # a copy: the original is where it was
            candidates.remove(clip)  # two new copies of it: the second is a new clip
            gone.pop(clip["id"], None)
            return clip
        return None

    def _still_there(self, clip: dict) -> bool:
        root = self._roots.get(clip["music_folder"])
        if root is None:
            return False
        try:
            return os.path.isfile(folders.confined(root, clip["path"]))
        except folders.MediaMissing:
            return False

    def _gone(self, clip: dict, batch: _Batch) -> None:
        batch.missing.append(clip)
        batch.touched.clip(clip, -1)
        self._missing_now.add(clip["id"])
        self._count(Change("missing", clip["music_folder"], clip["path"]))

    def _count(self, change: Change) -> None:
        setattr(self.counts, change.kind, getattr(self.counts, change.kind) + 1)
        self._on_change(change)

    async def _write(self, folder: str, batch: _Batch) -> None:
        """The batch's changes and the derived rows they touch, in one transaction."""
        if not (batch.inserts or batch.updates or batch.missing or batch.holding or batch.covers):
            return  # an unchanged batch costs no transaction
        now = utcnow()
        async with self._db.aio_atomic():
            for start in range(0, len(batch.inserts), INSERT_BATCH):
                chunk = batch.inserts[start : start + INSERT_BATCH]
                await self._db.aio_execute(Clip.insert_many(chunk).returning(Clip.id))
            for clip_id, changes in batch.updates:
                await self._db.aio_execute(Clip.update(**changes).where(Clip.id == clip_id))
            if batch.lyrics:
                found = [r for i, lyrics in batch.lyrics.items() for r in lyrics_rows(i, lyrics)]
                await replace_lyrics(self._db, batch.lyrics, found)
            if batch.missing:
                ids = [clip["id"] for clip in batch.missing]
                await self._db.aio_execute(
                    Clip.update(missing_since=now, updated_at=now).where(Clip.id.in_(ids))
                )
            await directories.upsert(self._db, folder, batch.holding, self._directories)
            await directories.remember_covers(self._db, batch.covers)
            if batch.touched:
                await Aggregates(db=self._db).refresh(batch.touched)
        for column, name in batch.drop:
            if name and self.drop_if_unused is not None:
                await self.drop_if_unused(column, name)

    async def _vanished(self, unit: Unit, visited: set[str], unreadable: list[str]) -> None:
        """Clips of directories under the unit that the walk did not find (gone, or left
        without audio) are missing, except under a directory that could not be read."""
        query = Clip.select(Clip.directory_id).where(Clip.missing_since.is_null() & _under(unit))
        ids = {row[0] for row in await self._db.aio_execute(query.distinct().tuples())}
        lost = sorted(ids - visited)
        for start in range(0, len(lost), INSERT_BATCH):
            query = Clip.select(*rows.KNOWN_COLUMNS).where(
                Clip.directory_id.in_(lost[start : start + INSERT_BATCH])
                & Clip.missing_since.is_null()
            )
            batch = _Batch()
            for clip in await self._raw(query):
                if not any(_within(clip["path"], prefix) for prefix in unreadable):
                    self._gone(clip, batch)
            await self._write(unit.folder, batch)


INSERT_BATCH = 200


def _within(path: str, prefix: str) -> bool:
    return not prefix or path.startswith(prefix + "/")


def _under(unit: Unit):
    """Clips the unit covers: its directory, and what is below it when recursive."""
    if not unit.recursive:  # the id names the folder: its index alone serves
        return Clip.directory_id == grouping.directory_id(unit.folder, unit.start)
    below = Clip.music_folder == unit.folder
    if not unit.start:
        return below
    return below & (Clip.path > unit.start + "/") & (Clip.path < unit.start + "0")


def _settled(clip: dict, lyrics: str | None) -> bool:
    """A known clip whose unchanged file needs nothing: listed, with the same lyrics (its
    directory's cover picture is compared once for all its tracks, ``_covers_changed``)."""
    return clip["missing_since"] is None and clip["lyrics_path"] == lyrics


def _same(clip: dict, stat: FileStat) -> bool:
    """The file as the clip knew it, read under the current rules (a clip read under older
    ones, before lyrics were kept, say, is read once again: the upgrade's backfill)."""
    return (
        clip["size"] == stat.size
        and clip["mtime_ns"] == stat.mtime_ns
        and clip["media_version"] == MEDIA_VERSION
    )


def _take(walker: Iterator[Listing], limit: int) -> list[Listing]:
    """The walk's next directories, up to about ``limit`` files (one directory may hold
    more; it is never split, so its sidecars are seen with its tracks)."""
    chunk, files = [], 0
    for listing in walker:
        chunk.append(listing)
        files += len(listing.files)
        if files >= limit:
            break
    return chunk
