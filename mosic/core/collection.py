"""What the listener keeps besides the clips: stars, ratings, playlists and the play queue.

One listener (the Subsonic API has one user). Songs are referred to by clip id; an entry
whose clip was deleted is left in its table and dropped when read, so deleting a clip stays
a single statement in the catalogue.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import uuid
from dataclasses import dataclass, field

from mosic.core.aggregates import move_library_version
from mosic.core.grouping import ARTIST_PREFIX
from mosic.persistence.models import (
    Playlist,
    PlaylistEntry,
    PlayQueue,
    PlayQueueEntry,
    Rating,
    Star,
    utcnow,
)

QUEUE_ROW = 1
RATING_MAX = 5


class PlaylistNotFound(Exception):
    pass


@dataclass
class PlaylistInfo:
    id: uuid.UUID
    name: str
    comment: str | None
    public: bool
    created_at: dt.datetime
    changed_at: dt.datetime
    clip_ids: list[uuid.UUID] = field(default_factory=list)


@dataclass
class QueueInfo:
    clip_ids: list[uuid.UUID]
    current: uuid.UUID | None
    position_ms: int
    changed_at: dt.datetime
    changed_by: str


class Collection:
    # Inserts say RETURNING: peewee-async needs it to run an insert on PostgreSQL.
    def __init__(self, *, db) -> None:
        self._db = db

    # -- stars and ratings -------------------------------------------------------------------
    async def stars(self) -> dict[str, dt.datetime]:
        rows = await self._db.aio_execute(Star.select())
        return {row.item_id: row.starred_at for row in rows}

    async def star(self, item_ids: list[str]) -> None:
        now = utcnow()
        rows = [{"item_id": item_id, "starred_at": now} for item_id in dict.fromkeys(item_ids)]
        if rows:
            # Starring twice keeps the first time, as Subsonic servers do.
            async with self._marking(item_ids):
                await self._db.aio_execute(
                    Star.insert_many(rows).on_conflict_ignore().returning(Star.item_id)
                )

    async def unstar(self, item_ids: list[str]) -> None:
        if item_ids:
            async with self._marking(item_ids):
                await self._db.aio_execute(Star.delete().where(Star.item_id.in_(item_ids)))

    @contextlib.asynccontextmanager
    async def _marking(self, item_ids: list[str]):
        """Around a change to stars or ratings: the artist lists show artists' marks, so a
        change that names an artist moves the library's version in the same transaction."""
        if not any(item_id.startswith(ARTIST_PREFIX) for item_id in item_ids):
            yield
            return
        async with self._db.aio_atomic():
            yield
            await move_library_version(self._db)

    async def ratings(self) -> dict[str, int]:
        rows = await self._db.aio_execute(Rating.select())
        return {row.item_id: row.rating for row in rows}

    async def rate(self, item_id: str, rating: int) -> None:
        """Rate 1–5; 0 removes the rating. One statement either way, so two clients rating
        at once never collide on the row."""
        async with self._marking([item_id]):
            if not rating:
                await self._db.aio_execute(Rating.delete().where(Rating.item_id == item_id))
                return
            await self._db.aio_execute(
                Rating.insert(item_id=item_id, rating=rating)
                .on_conflict(conflict_target=[Rating.item_id], update={Rating.rating: rating})
                .returning(Rating.item_id)
            )

    # -- playlists ---------------------------------------------------------------------------
    async def playlists(self) -> list[PlaylistInfo]:
        rows = await self._db.aio_execute(Playlist.select().order_by(Playlist.name, Playlist.id))
        entries = await self._db.aio_execute(
            PlaylistEntry.select().order_by(PlaylistEntry.playlist_id, PlaylistEntry.position)
        )
        by_playlist: dict[uuid.UUID, list[uuid.UUID]] = {}
        for entry in entries:
            by_playlist.setdefault(entry.playlist_id, []).append(entry.clip_id)
        return [_playlist_info(row, by_playlist.get(row.id, [])) for row in rows]

    async def playlist(self, playlist_id: uuid.UUID) -> PlaylistInfo:
        rows = await self._db.aio_execute(
            Playlist.select().where(Playlist.id == playlist_id).limit(1)
        )
        if not rows:
            raise PlaylistNotFound(playlist_id)
        entries = await self._db.aio_execute(
            PlaylistEntry.select()
            .where(PlaylistEntry.playlist_id == playlist_id)
            .order_by(PlaylistEntry.position)
        )
        return _playlist_info(rows[0], [entry.clip_id for entry in entries])

    async def create_playlist(self, name: str, clip_ids: list[uuid.UUID]) -> uuid.UUID:
        now = utcnow()
        playlist_id = uuid.uuid4()
        async with self._db.aio_atomic():
            await self._db.aio_execute(
                Playlist.insert(
                    id=playlist_id, name=name, created_at=now, changed_at=now
                ).returning(Playlist.id)
            )
            await self._write_entries(playlist_id, clip_ids)
        return playlist_id

    async def update_playlist(
        self,
        playlist_id: uuid.UUID,
        *,
        changes: dict,
        clip_ids: list[uuid.UUID] | None = None,
    ) -> None:
        """Change name/comment/public (``changes``) and, when given, replace the songs."""
        async with self._db.aio_atomic():
            updated = await self._db.aio_execute(
                Playlist.update(changed_at=utcnow(), **changes).where(Playlist.id == playlist_id)
            )
            if not updated:
                raise PlaylistNotFound(playlist_id)
            if clip_ids is not None:
                await self._db.aio_execute(
                    PlaylistEntry.delete().where(PlaylistEntry.playlist_id == playlist_id)
                )
                await self._write_entries(playlist_id, clip_ids)

    async def delete_playlist(self, playlist_id: uuid.UUID) -> None:
        async with self._db.aio_atomic():
            deleted = await self._db.aio_execute(
                Playlist.delete().where(Playlist.id == playlist_id)
            )
            if not deleted:
                raise PlaylistNotFound(playlist_id)
            await self._db.aio_execute(
                PlaylistEntry.delete().where(PlaylistEntry.playlist_id == playlist_id)
            )

    async def _write_entries(self, playlist_id: uuid.UUID, clip_ids: list[uuid.UUID]) -> None:
        rows = [
            {"playlist_id": playlist_id, "position": n, "clip_id": clip_id}
            for n, clip_id in enumerate(clip_ids)
        ]
        if rows:
            await self._db.aio_execute(
                PlaylistEntry.insert_many(rows).returning(PlaylistEntry.position)
            )

    # -- the play queue ----------------------------------------------------------------------
    async def queue(self) -> QueueInfo | None:
        rows = await self._db.aio_execute(PlayQueue.select().where(PlayQueue.id == QUEUE_ROW))
        if not rows:
            return None
        entries = await self._db.aio_execute(
            PlayQueueEntry.select().order_by(PlayQueueEntry.position)
        )
        row = rows[0]
        return QueueInfo(
            clip_ids=[entry.clip_id for entry in entries],
            current=row.current,
            position_ms=row.position_ms,
            changed_at=row.changed_at,
            changed_by=row.changed_by,
        )

    async def save_queue(
        self, clip_ids: list[uuid.UUID], current: uuid.UUID | None, position_ms: int, by: str
    ) -> None:
        """Replace the queue; an empty list clears it. The queue row is written first, so a
        second save waits on its row lock (PostgreSQL) until this one commits, and the two
        never interleave their entries."""
        row = {"current": current, "position_ms": position_ms, "changed_at": utcnow()}
        row["changed_by"] = by
        async with self._db.aio_atomic():
            await self._db.aio_execute(
                PlayQueue.insert(id=QUEUE_ROW, **row)
                .on_conflict(conflict_target=[PlayQueue.id], update=row)
                .returning(PlayQueue.id)
            )
            await self._db.aio_execute(PlayQueueEntry.delete())
            if not clip_ids:
                await self._db.aio_execute(PlayQueue.delete())
                return
            await self._db.aio_execute(
                PlayQueueEntry.insert_many(
                    [{"position": n, "clip_id": c} for n, c in enumerate(clip_ids)]
                ).returning(PlayQueueEntry.position)
            )


def _playlist_info(row: Playlist, clip_ids: list[uuid.UUID]) -> PlaylistInfo:
    return PlaylistInfo(
        id=row.id,
        name=row.name,
        comment=row.comment,
        public=row.public,
        created_at=row.created_at,
        changed_at=row.changed_at,
        clip_ids=clip_ids,
    )
