"""The directory rows of music folders (Subsonic's folder browsing): one for every directory
that holds tracks and for each of its ancestors up to the folder itself (path ""), each gone
once nothing visible is under it any more. Ids come from ``grouping.directory_id``, so they
are the same on every replica and across restarts. A scan keeps them as it goes; ``rebuild``
makes them again from the clips alone (``mosic reindex``)."""

from __future__ import annotations

from collections.abc import Iterable

from mosic.core import grouping
from mosic.core.aggregates import REBUILD_BATCH, visible
from mosic.persistence.models import LIBRARY, Clip, DirectoryRow


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


async def rebuild(db) -> None:
    """The rows of every directory a visible library clip lies in, and of its ancestors,
    and no others: what the scans would have written for these clips. One transaction, so
    a browser sees the old tree or the new."""
    wanted = await _clip_directories(db)
    known: set[str] = set()
    async with db.aio_atomic():
        for folder, paths in wanted.items():
            await upsert(db, folder, sorted(paths), known)
        existing = await db.aio_execute(DirectoryRow.select(DirectoryRow.id).tuples())
        gone = [directory_id for (directory_id,) in existing if directory_id not in known]
        for start in range(0, len(gone), UPSERT_BATCH):
            batch = gone[start : start + UPSERT_BATCH]
            await db.aio_execute(DirectoryRow.delete().where(DirectoryRow.id.in_(batch)))


async def _clip_directories(db) -> dict[str, set[str]]:
    """The paths of the directories visible library clips lie in, by music folder."""
    wanted: dict[str, set[str]] = {}
    placed = visible() & (Clip.source == LIBRARY) & Clip.path.is_null(False)
    after = None
    while True:
        query = Clip.select(Clip.id, Clip.music_folder, Clip.path).where(placed)
        if after is not None:
            query = query.where(Clip.id > after)
        rows = list(await db.aio_execute(query.order_by(Clip.id).limit(REBUILD_BATCH).tuples()))
        if not rows:
            return wanted
        for _, folder, path in rows:
            wanted.setdefault(folder, set()).add(grouping.parent_path(path))
        after = rows[-1][0]


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
