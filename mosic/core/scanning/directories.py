"""The directory rows of music folders (Subsonic's folder browsing): one for every directory
that holds tracks and for each of its ancestors up to the folder itself (path ""), each gone
once nothing visible is under it any more. Ids come from ``grouping.directory_id``, so they
are the same on every replica and across restarts."""

from __future__ import annotations

from collections.abc import Iterable

from mosic.core import grouping
from mosic.core.aggregates import visible
from mosic.persistence.models import Clip, DirectoryRow


def with_ancestors(path: str) -> list[str]:
    """``path`` and every directory above it, the folder's own ("") last."""
    chain = [path]
    while path:
        path = grouping.parent_path(path)
        chain.append(path)
    return chain


def row(folder: str, path: str) -> dict:
    name = path.rsplit("/", 1)[-1] if path else folder
    parent = grouping.directory_id(folder, grouping.parent_path(path)) if path else None
    return {
        "id": grouping.directory_id(folder, path),
        "music_folder": folder,
        "path": path,
        "parent_id": parent,
        "name": name,
        "sort_key": name.casefold(),
    }


async def upsert(db, folder: str, paths: Iterable[str], known: set[str]) -> None:
    """Make sure each of ``paths`` has its row, and its ancestors theirs; ``known`` holds
    the ids this scan already wrote (call inside the batch's transaction)."""
    rows = []
    for path in paths:
        for each in with_ancestors(path):
            directory_id = grouping.directory_id(folder, each)
            if directory_id in known:
                break  # and so are its ancestors
            known.add(directory_id)
            rows.append(row(folder, each))
    for start in range(0, len(rows), UPSERT_BATCH):
        await db.aio_execute(
            DirectoryRow.insert_many(rows[start : start + UPSERT_BATCH])
            .on_conflict_ignore()
            .returning(DirectoryRow.id)
        )


UPSERT_BATCH = 200


async def remember_covers(db, covers: dict[str, tuple[str, str | None]]) -> None:
    """Record each directory's cover picture as this scan saw it: ``{id: (stat, blob)}``
    (call inside the batch's transaction, after ``upsert``)."""
    for directory_id, (stat, name) in covers.items():
        await db.aio_execute(
            DirectoryRow.update(cover_stat=stat, cover_name=name).where(
                DirectoryRow.id == directory_id
            )
        )


def _under(prefix: str):
    """Directory rows at ``prefix`` or below it."""
    if not prefix:
        return DirectoryRow.path.is_null(False)
    return (DirectoryRow.path == prefix) | (
        (DirectoryRow.path > prefix + "/") & (DirectoryRow.path < prefix + "0")
    )


async def sweep(db, folder: str, prefix: str) -> int:
    """Remove the rows at or under ``prefix`` with nothing visible under them, then those of
    its ancestors left empty; returns how many went."""
    rows = await db.aio_execute(
        DirectoryRow.select(DirectoryRow.id, DirectoryRow.parent_id)
        .where((DirectoryRow.music_folder == folder) & _under(prefix))
        .tuples()
    )
    parents = dict(rows)
    holding = (
        await db.aio_execute(
            Clip.select(Clip.directory_id)
            .where(visible() & Clip.directory_id.in_(list(parents)))
            .distinct()
            .tuples()
        )
        if parents
        else []
    )
    kept: set[str] = set()
    for (directory_id,) in holding:
        while directory_id is not None and directory_id not in kept:
            kept.add(directory_id)
            directory_id = parents.get(directory_id)
    gone = [directory_id for directory_id in parents if directory_id not in kept]
    for start in range(0, len(gone), UPSERT_BATCH):
        await db.aio_execute(
            DirectoryRow.delete().where(DirectoryRow.id.in_(gone[start : start + UPSERT_BATCH]))
        )
    return len(gone) + await _prune_up(db, folder, prefix)


async def _prune_up(db, folder: str, prefix: str) -> int:
    """Remove the ancestors of ``prefix`` that hold no visible clip and no directory."""
    removed = 0
    for path in with_ancestors(prefix)[1:] if prefix else []:
        directory_id = grouping.directory_id(folder, path)
        child = await db.aio_execute(
            DirectoryRow.select(DirectoryRow.id)
            .where(DirectoryRow.parent_id == directory_id)
            .limit(1)
        )
        clip = await db.aio_execute(
            Clip.select(Clip.id).where((Clip.directory_id == directory_id) & visible()).limit(1)
        )
        if child or clip:
            return removed
        removed += await db.aio_execute(
            DirectoryRow.delete().where(DirectoryRow.id == directory_id)
        )
    return removed
