"""What each user keeps besides the clips: stars, ratings, the play queue and bookmarks.

Everything here is one user's (``user_id``); playlists, which others may read, are in
``mosic.core.playlists``. Songs are referred to by clip id; an entry whose clip was deleted is
left in its table and dropped when read, so deleting a clip stays a single statement in the
catalogue.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import uuid
from dataclasses import dataclass

from mosic.core.aggregates import move_library_version
from mosic.core.grouping import ARTIST_PREFIX
from mosic.persistence.models import (
    Bookmark,
    PlayQueue,
    PlayQueueEntry,
    Rating,
    Star,
    utcnow,
)

RATING_MAX = 5


@dataclass
class QueueInfo:
    clip_ids: list[uuid.UUID]
    current: uuid.UUID | None
    position_ms: int
    changed_at: dt.datetime
    changed_by: str
    current_index: int | None = None  # saved by index; None when saved by song id

    def current_at(self) -> int | None:
        """The index of the current entry: the one saved by index when it still holds the
        current song, else the current song's first entry (None without a current song)."""
        at = self.current_index
        if at is not None and 0 <= at < len(self.clip_ids) and self.clip_ids[at] == self.current:
            return at
        if self.current in self.clip_ids:
            return self.clip_ids.index(self.current)
        return None


@dataclass(frozen=True)
class BookmarkInfo:
    clip_id: uuid.UUID
    position_ms: int
    comment: str | None
    created_at: dt.datetime
    changed_at: dt.datetime


class Collection:
    # Inserts say RETURNING: peewee-async needs it to run an insert on PostgreSQL.
    def __init__(self, *, db) -> None:
        self._db = db

    # -- stars and ratings -------------------------------------------------------------------
    async def stars(self, user_id: int, item_ids: list[str] | None = None) -> dict:
        """The user's stars (item id -> when): of ``item_ids``, or all of them."""
        query = Star.select(Star.item_id, Star.starred_at).where(Star.user_id == user_id)
        if item_ids is not None:
            query = query.where(Star.item_id.in_(list(set(item_ids))))
        return dict(await self._db.aio_execute(query.tuples()))

    async def star(self, user_id: int, item_ids: list[str]) -> None:
        now = utcnow()
        rows = [
            {"user_id": user_id, "item_id": item_id, "starred_at": now}
            for item_id in dict.fromkeys(item_ids)
        ]
        if rows:
            # Starring twice keeps the first time, as Subsonic servers do.
            async with self._marking(item_ids):
                await self._db.aio_execute(
                    Star.insert_many(rows).on_conflict_ignore().returning(Star.item_id)
                )

    async def unstar(self, user_id: int, item_ids: list[str]) -> None:
        if item_ids:
            async with self._marking(item_ids):
                await self._db.aio_execute(
                    Star.delete().where((Star.user_id == user_id) & Star.item_id.in_(item_ids))
                )

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

    async def ratings(self, user_id: int, item_ids: list[str] | None = None) -> dict:
        """The user's ratings (item id -> 1..5): of ``item_ids``, or all of them."""
        query = Rating.select(Rating.item_id, Rating.rating).where(Rating.user_id == user_id)
        if item_ids is not None:
            query = query.where(Rating.item_id.in_(list(set(item_ids))))
        return dict(await self._db.aio_execute(query.tuples()))

    async def rate(self, user_id: int, item_id: str, rating: int) -> None:
        """Rate 1–5; 0 removes the rating. One statement either way, so two clients rating
        at once never collide on the row."""
        async with self._marking([item_id]):
            mine = (Rating.user_id == user_id) & (Rating.item_id == item_id)
            if not rating:
                await self._db.aio_execute(Rating.delete().where(mine))
                return
            await self._db.aio_execute(
                Rating.insert(user_id=user_id, item_id=item_id, rating=rating)
                .on_conflict(
                    conflict_target=[Rating.user_id, Rating.item_id],
                    update={Rating.rating: rating},
                )
                .returning(Rating.item_id)
            )

    # -- the play queue ----------------------------------------------------------------------
    async def queue(self, user_id: int) -> QueueInfo | None:
        rows = await self._db.aio_execute(PlayQueue.select().where(PlayQueue.user_id == user_id))
        if not rows:
            return None
        entries = await self._db.aio_execute(
            PlayQueueEntry.select(PlayQueueEntry.clip_id)
            .where(PlayQueueEntry.user_id == user_id)
            .order_by(PlayQueueEntry.position)
            .tuples()
        )
        row = rows[0]
        return QueueInfo(
            clip_ids=[_uuid(clip_id) for (clip_id,) in entries],
            current=row.current,
            position_ms=row.position_ms,
            changed_at=row.changed_at,
            changed_by=row.changed_by,
            current_index=row.current_index,
        )

    async def save_queue(
        self,
        user_id: int,
        clip_ids: list[uuid.UUID],
        current: uuid.UUID | None,
        position_ms: int,
        by: str,
        current_index: int | None = None,
    ) -> None:
        """Replace the user's queue; an empty list clears it. ``current_index`` says which
        entry is ``current`` when the queue holds it twice. The queue row is written
        first, so a second save waits on its row lock (PostgreSQL) until this one commits,
        and the two never interleave their entries."""
        row = {"current": current, "position_ms": position_ms, "changed_at": utcnow()}
        row.update(changed_by=by, current_index=current_index)
        entries = PlayQueueEntry.user_id == user_id
        async with self._db.aio_atomic():
            await self._db.aio_execute(
                PlayQueue.insert(user_id=user_id, **row)
                .on_conflict(conflict_target=[PlayQueue.user_id], update=row)
                .returning(PlayQueue.user_id)
            )
            await self._db.aio_execute(PlayQueueEntry.delete().where(entries))
            if not clip_ids:
                await self._db.aio_execute(PlayQueue.delete().where(PlayQueue.user_id == user_id))
                return
            await self._db.aio_execute(
                PlayQueueEntry.insert_many(
                    [
                        {"user_id": user_id, "position": n, "clip_id": c}
                        for n, c in enumerate(clip_ids)
                    ]
                ).returning(PlayQueueEntry.position)
            )

    # -- bookmarks ---------------------------------------------------------------------------
    async def bookmarks(self, user_id: int) -> list[BookmarkInfo]:
        rows = await self._db.aio_execute(
            Bookmark.select()
            .where(Bookmark.user_id == user_id)
            .order_by(Bookmark.changed_at.desc(), Bookmark.clip_id)
        )
        return [
            BookmarkInfo(r.clip_id, r.position_ms, r.comment, r.created_at, r.changed_at)
            for r in rows
        ]

    async def save_bookmark(
        self, user_id: int, clip_id: uuid.UUID, position_ms: int, comment: str | None
    ) -> None:
        """Make or move the user's bookmark in a song: one statement, so two saves at once
        leave the later one."""
        now = utcnow()
        await self._db.aio_execute(
            Bookmark.insert(
                user_id=user_id,
                clip_id=clip_id,
                position_ms=position_ms,
                comment=comment,
                created_at=now,
                changed_at=now,
            )
            .on_conflict(
                conflict_target=[Bookmark.user_id, Bookmark.clip_id],
                update={
                    Bookmark.position_ms: position_ms,
                    Bookmark.comment: comment,
                    Bookmark.changed_at: now,
                },
            )
            .returning(Bookmark.clip_id)
        )

    async def delete_bookmark(self, user_id: int, clip_id: uuid.UUID) -> None:
        await self._db.aio_execute(
            Bookmark.delete().where((Bookmark.user_id == user_id) & (Bookmark.clip_id == clip_id))
        )


def _uuid(value) -> uuid.UUID:
    # SQLite returns a UUID column's text from a tuple query; PostgreSQL a uuid.UUID.
    return value if isinstance(value, uuid.UUID) else uuid.UUID(value)
