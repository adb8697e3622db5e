"""``mosic backup DEST`` and ``mosic restore SRC`` (mosic.core.backup does the work)."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

from mosic.core.backup import LOCK, BackupError, exclusive, restore_backup, take_backup
from mosic.settings import Settings

log = logging.getLogger("mosic")


def backup(settings: Settings, dest: Path) -> int:
    with exclusive(dest.resolve() / LOCK) as held:
        if not held:
            log.error("another backup into %s is running; try again when it is done", dest)
            return 1
        try:
            taken = take_backup(settings, dest)
        except (BackupError, OSError, sqlite3.Error) as exc:
            log.error("backup into %s failed: %s", dest, exc)
            return 1
    log.info("backup %s: %d file(s) and a manifest", taken.snapshot, len(taken.files))
    if taken.database == "postgresql":
        log.warning(
            "the database is on PostgreSQL and is not in this backup: take it with pg_dump "
            "(pg_dump -Fc -f mosic.dump DBNAME) and keep it beside the backup"
        )
    if taken.storage == "s3":
        log.info("media stay in the S3 bucket (keep its versioning on): none copied")
    else:
        log.info("media: %d copied, %d already there", taken.copied, taken.present)
    return 0


def restore(settings: Settings, src: Path) -> int:
    try:
        manifest = restore_backup(settings, src)
    except (BackupError, OSError) as exc:
        log.error("restore from %s failed: %s", src, exc)
        return 1
    log.info(
        "restored the backup of %s into %s: %d file(s), %d media file(s), every hash checked",
        manifest["taken"], settings.data_dir, len(manifest["files"]), len(manifest["media"]),
    )  # fmt: skip
    if manifest["database"] == "postgresql":
        log.warning("restore the database from its pg_dump (pg_restore -d DBNAME mosic.dump)")
    return 0
