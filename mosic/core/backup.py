"""Backups: everything Mosic needs to come back, copied into a directory, and back.

A backup directory holds one media pool shared by all its backups (files are named by content,
so a name already there is the same bytes, and a later backup copies only what is new) and a
snapshot per backup::

    DEST/media/ab/ab12….mp3                      the media store's files
    DEST/snapshots/20261206T210000123456Z/        one backup
        mosic.sqlite3  api_key  signing_secret    the database (SQLite), the generated secrets
        manifest.json                             every file's SHA-256, and the counts

A snapshot appears under its final name only once complete. A PostgreSQL database is the
operator's to take with ``pg_dump``; media in S3 stay in the bucket (its versioning is the
backup). Library folders are the user's own and never copied.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import fcntl
import hashlib
import json
import logging
import os
import shutil
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from mosic.core.periodic import Periodic
from mosic.media.local import INCOMING_DIR
from mosic.persistence.secrets import API_KEY_FILE, SIGNING_SECRET_FILE
from mosic.settings import Settings

log = logging.getLogger(__name__)
MANIFEST = "manifest.json"
SNAPSHOTS = "snapshots"
MEDIA = "media"
LOCK = ".lock"
MANIFEST_FORMAT = 1
STAMP = "%Y%m%dT%H%M%S%fZ"  # sorts as it was taken
SECRET_FILES = (API_KEY_FILE, SIGNING_SECRET_FILE)
COPY_CHUNK = 1024 * 1024


class BackupError(Exception):
    """A backup or restore cannot go on; the message says why and what to do."""


@dataclass
class Backup:
    """What one backup did."""

    snapshot: Path
    database: str  # "sqlite" (in the snapshot) or "postgresql" (for pg_dump)
    storage: str
    copied: int = 0  # media files new to the pool
    present: int = 0  # media files the pool already had
    counts: dict | None = None
    files: dict[str, str] = field(default_factory=dict)
    media: dict[str, str] = field(default_factory=dict)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(COPY_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def copy_hashed(source: Path, target: Path) -> str:
    """Copy ``source`` to ``target`` through a temporary name (a crash never leaves part of
    a file under a real name); the SHA-256 of the bytes copied."""
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(f".{target.name}.part")
    digest = hashlib.sha256()
    with source.open("rb") as src, part.open("wb") as dst:
        while chunk := src.read(COPY_CHUNK):
            digest.update(chunk)
            dst.write(chunk)
        dst.flush()
        os.fsync(dst.fileno())
    os.replace(part, target)
    return digest.hexdigest()


def copy_sqlite(source: Path, target: Path) -> dict:
    """A consistent copy of a live SQLite database (the backup API, in one step: a read
    transaction, which in WAL mode never blocks the server's writers); its counts."""
    src = sqlite3.connect(source, timeout=30)
    dst = sqlite3.connect(target)
    try:
        src.backup(dst)
        query = "SELECT COUNT(*), COALESCE(SUM(play_count), 0) FROM clip"
        clips, plays = dst.execute(query).fetchone()
    finally:
        dst.close()
        src.close()
    return {"clips": clips, "plays": plays}


def media_files(root: Path) -> Iterator[Path]:
    """Every file of a local media store, partial uploads left out."""
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d != INCOMING_DIR]
        for name in files:
            if not name.startswith("."):
                yield Path(folder) / name


def known_hashes(dest: Path) -> dict[str, str]:
    """The SHA-256 of every pool file, as the manifests already there recorded it."""
    known: dict[str, str] = {}
    for manifest in (dest / SNAPSHOTS).glob(f"*/{MANIFEST}"):
        known.update(json.loads(manifest.read_text())["media"])
    return known


def copy_media(root: Path, pool: Path, known: dict[str, str], backup: Backup) -> None:
    """Copy into the pool the media files it does not have; note every file's hash."""
    for path in sorted(media_files(root)):
        name = path.relative_to(root).as_posix()
        target = pool / name
        if target.exists():
            backup.media[name] = known.get(name) or sha256_of(target)
            backup.present += 1
            continue
        try:
            backup.media[name] = copy_hashed(path, target)
        except FileNotFoundError:
            continue  # removed since it was listed (its clip was deleted)
        backup.copied += 1


def snapshot_files(settings: Settings, snapshot: Path, backup: Backup) -> None:
    """The database (SQLite) and the generated secrets, into the snapshot."""
    if settings.postgres is None and settings.sqlite_path.exists():
        backup.counts = copy_sqlite(settings.sqlite_path, snapshot / settings.sqlite_path.name)
        backup.files[settings.sqlite_path.name] = sha256_of(snapshot / settings.sqlite_path.name)
    for name in SECRET_FILES:
        if (settings.data_dir / name).is_file():
            backup.files[name] = copy_hashed(settings.data_dir / name, snapshot / name)


def take_backup(settings: Settings, dest: Path) -> Backup:
    """Back up into ``dest``: the database first, so every file it names is copied after."""
    dest = dest.resolve()
    stamp = dt.datetime.now(dt.UTC).strftime(STAMP)
    part = dest / SNAPSHOTS / f".{stamp}.part"
    part.mkdir(parents=True)
    backup = Backup(
        snapshot=dest / SNAPSHOTS / stamp,
        database="postgresql" if settings.postgres is not None else "sqlite",
        storage=settings.storage,
    )
    try:
        snapshot_files(settings, part, backup)
        if not settings.uses_s3:
            copy_media(settings.media_root, dest / MEDIA, known_hashes(dest), backup)
        write_manifest(part / MANIFEST, backup, stamp)
        os.rename(part, backup.snapshot)
    except BaseException:
        shutil.rmtree(part, ignore_errors=True)
        raise
    return backup


def write_manifest(path: Path, backup: Backup, stamp: str) -> None:
    manifest = {
        "format": MANIFEST_FORMAT,
        "taken": stamp,
        "database": backup.database,
        "storage": backup.storage,
        "counts": backup.counts,
        "files": backup.files,
        "media": backup.media,
    }
    path.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")


# -- restore ---------------------------------------------------------------------------------


def find_snapshot(src: Path) -> Path:
    """``src`` itself when it is a snapshot, else the newest snapshot in it."""
    src = src.resolve()
    if (src / MANIFEST).is_file():
        return src
    taken = sorted(p for p in (src / SNAPSHOTS).glob("*") if (p / MANIFEST).is_file())
    if not taken:
        raise BackupError(f"{src} holds no backup (no {SNAPSHOTS}/*/{MANIFEST})")
    return taken[-1]


def damaged(snapshot: Path, manifest: dict) -> list[str]:
    """Every file of the backup that is missing or does not hash as the manifest says."""
    pool = snapshot.parent.parent / MEDIA
    expected = [(snapshot / n, h) for n, h in manifest["files"].items()]
    expected += [(pool / n, h) for n, h in manifest["media"].items()]
    bad = []
    for path, digest in expected:
        if not path.is_file() or sha256_of(path) != digest:
            bad.append(str(path))
    return bad


def refuse_unless_empty(settings: Settings) -> None:
    for root in (settings.data_dir, settings.media_root):
        if root.exists() and any(p.is_file() for p in root.rglob("*")):
            raise BackupError(f"{root} is not empty: restore only into an empty data directory")


def restore_backup(settings: Settings, src: Path) -> dict:
    """Restore the backup at ``src`` into the settings' (empty) data directory, once every
    file's hash has been checked; its manifest."""
    snapshot = find_snapshot(src)
    manifest = json.loads((snapshot / MANIFEST).read_text())
    if manifest["database"] == "sqlite" and settings.postgres is not None:
        raise BackupError("this backup holds a SQLite database: restore it without MOSIC_DB_*")
    refuse_unless_empty(settings)
    bad = damaged(snapshot, manifest)
    if bad:
        raise BackupError(f"{len(bad)} file(s) missing or damaged, nothing restored: {bad[:3]}")
    for name in manifest["files"]:
        copy_hashed(snapshot / name, settings.data_dir / name)
    for name in SECRET_FILES:
        if name in manifest["files"]:
            (settings.data_dir / name).chmod(0o600)
    if not settings.uses_s3:
        pool = snapshot.parent.parent / MEDIA
        for name in manifest["media"]:
            copy_hashed(pool / name, settings.media_root / name)
    return manifest


# -- the schedule ----------------------------------------------------------------------------


def taken_at(snapshot: Path) -> dt.datetime:
    return dt.datetime.strptime(snapshot.name, STAMP).replace(tzinfo=dt.UTC)


def prune(dest: Path, keep: int) -> None:
    """Keep the newest ``keep`` backups, and the pool files they name."""
    taken = sorted(p for p in (dest / SNAPSHOTS).glob("*") if (p / MANIFEST).is_file())
    # With the lock held, a part left is a backup that died half way.
    for old in [*taken[:-keep], *(dest / SNAPSHOTS).glob(".*.part")]:
        shutil.rmtree(old)
    named = set(known_hashes(dest))
    pool = dest / MEDIA
    for path in media_files(pool):
        if path.relative_to(pool).as_posix() not in named:
            path.unlink(missing_ok=True)


@contextlib.contextmanager
def exclusive(lock: Path) -> Iterator[bool]:
    """True when this process holds ``lock``; False when another one does."""
    lock.parent.mkdir(parents=True, exist_ok=True)
    with lock.open("a") as fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True


def backup_if_due(settings: Settings) -> Backup | None:
    """Take a scheduled backup when the newest one in ``MOSIC_BACKUP_DIR`` is older than the
    interval. Every worker and replica asks; the lock and the check under it let exactly one
    take each."""
    dest = settings.backup_dir
    with exclusive(dest / LOCK) as held:
        if not held:
            return None
        taken = sorted(p for p in (dest / SNAPSHOTS).glob("*") if (p / MANIFEST).is_file())
        interval = dt.timedelta(hours=settings.backup_interval_h)
        if taken and dt.datetime.now(dt.UTC) - taken_at(taken[-1]) < interval:
            return None
        backup = take_backup(settings, dest)
        prune(dest, settings.backup_keep)
        return backup


# How often (at most) each worker asks whether a scheduled backup is due.
BACKUP_CHECK_S = 300.0


class ScheduledBackups:
    """A lifespan task of every worker: asks whether a backup is due (``backup_if_due``) at
    start and then every check; a failure is logged and tried again at the next one."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        check_s = min(BACKUP_CHECK_S, settings.backup_interval_h * 3600 / 4)
        # A full or missing backup disk fails a round, never the server.
        name = f"scheduled backup into {settings.backup_dir}"
        self._rounds = Periodic(self._once, check_s, name=name, at_start=True)

    async def _once(self) -> None:
        backup = await asyncio.to_thread(backup_if_due, self._settings)
        if backup is not None:
            log.info(
                "scheduled backup %s: %d media file(s) copied, %d already there",
                backup.snapshot, backup.copied, backup.present,
            )  # fmt: skip

    async def process_startup(self, scope, event) -> None:
        self._rounds.start()

    async def process_shutdown(self, scope, event) -> None:
        await self._rounds.stop()
