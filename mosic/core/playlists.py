"""Playlists: each has an owner; a ``public`` one is readable by every user.

A user sees its own playlists and the public ones of others; only the owner (or an admin)
changes or deletes one. A playlist the user may not see is not found, as one that does not
exist. Songs are clip ids; an entry whose clip was deleted stays in its table and is dropped
when read.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field

from mosic.core.keys import User
from mosic.persistence.models import Playlist, PlaylistEntry, UserRow, utcnow


class PlaylistNotFound(Exception):
    pass


class NotYourPlaylist(Exception):
    """A user changing or deleting a public playlist of another user."""


@dataclass
class PlaylistInfo:
    id: uuid.UUID
    name: str
    comment: str | None
    public: bool
    created_at: dt.datetime
    changed_at: dt.datetime
    owner_id: int | None = None
    owner: str = ""  # the owner's name
    clip_ids: list[uuid.UUID] = field(default_factory=list)


def _with_owner():
    return Playlist.select(Playlist, UserRow.name.alias("owner_name")).join(
        UserRow, on=(UserRow.id == Playlist.owner_id)
    )


def _visible_to(user: User):
    return (Playlist.owner_id == user.id) | (Playlist.public == True)  # noqa: E712


class Playlists:
    # Inserts say RETURNING: peewee-async needs it to run an insert on PostgreSQL.
    def __init__(self, *, db) -> None:
        self._db = db

    async def visible(self, user: User) -> list[PlaylistInfo]:
        """The user's playlists and the public ones of others, by name, with their songs."""
        rows = await self._db.aio_execute(
            _with_owner().where(_visible_to(user)).order_by(Playlist.name, Playlist.id).objects()
        )
        if not rows:
            return []
        entries = await self._db.aio_execute(
            PlaylistEntry.select()
            .where(PlaylistEntry.playlist_id.in_([row.id for row in rows]))
            .order_by(PlaylistEntry.playlist_id, PlaylistEntry.position)
        )
        by_playlist: dict[uuid.UUID, list[uuid.UUID]] = {}
        for entry in entries:
            by_playlist.setdefault(entry.playlist_id, []).append(entry.clip_id)
        return [_playlist_info(row, by_playlist.get(row.id, [])) for row in rows]

    async def get(self, user: User, playlist_id: uuid.UUID) -> PlaylistInfo:
        rows = await self._db.aio_execute(
            _with_owner().where((Playlist.id == playlist_id) & _visible_to(user)).limit(1).objects()
        )
        if not rows:
            raise PlaylistNotFound(playlist_id)
        entries = await self._db.aio_execute(
            PlaylistEntry.select()
            .where(PlaylistEntry.playlist_id == playlist_id)
            .order_by(PlaylistEntry.position)
        )
        return _playlist_info(rows[0], [entry.clip_id for entry in entries])

    async def create(self, user: User, name: str, clip_ids: list[uuid.UUID]) -> uuid.UUID:
        now = utcnow()
        playlist_id = uuid.uuid4()
        async with self._db.aio_atomic():
            await self._db.aio_execute(
                Playlist.insert(
                    id=playlist_id, name=name, created_at=now, changed_at=now, owner_id=user.id
                ).returning(Playlist.id)
            )
            await self._write_entries(playlist_id, clip_ids)
        return playlist_id

    async def update(
        self,
        user: User,
        playlist_id: uuid.UUID,
        *,
        changes: dict,
        clip_ids: list[uuid.UUID] | None = None,
    ) -> None:
        """Change name/comment/public (``changes``) and, when given, replace the songs."""
        async with self._db.aio_atomic():
            await self._check_owner(user, playlist_id)
            await self._db.aio_execute(
                Playlist.update(changed_at=utcnow(), **changes).where(Playlist.id == playlist_id)
            )
            if clip_ids is not None:
                await self._db.aio_execute(
                    PlaylistEntry.delete().where(PlaylistEntry.playlist_id == playlist_id)
                )
                await self._write_entries(playlist_id, clip_ids)

    async def delete(self, user: User, playlist_id: uuid.UUID) -> None:
        async with self._db.aio_atomic():
            await self._check_owner(user, playlist_id)
            await self._db.aio_execute(Playlist.delete().where(Playlist.id == playlist_id))
            await self._db.aio_execute(
                PlaylistEntry.delete().where(PlaylistEntry.playlist_id == playlist_id)
            )

    async def _check_owner(self, user: User, playlist_id: uuid.UUID) -> None:
        """Raise unless ``user`` may change the playlist: not found when it may not even see
        it, not yours when it may only read it."""
        rows = await self._db.aio_execute(
            Playlist.select(Playlist.owner_id, Playlist.public)
            .where(Playlist.id == playlist_id)
            .tuples()
        )
        if not rows:
            raise PlaylistNotFound(playlist_id)
        owner_id, public = rows[0]
        if owner_id == user.id or user.is_admin:
            return
        if public:
            raise NotYourPlaylist(playlist_id)
        raise PlaylistNotFound(playlist_id)

    async def _write_entries(self, playlist_id: uuid.UUID, clip_ids: list[uuid.UUID]) -> None:
        rows = [
            {"playlist_id": playlist_id, "position": n, "clip_id": clip_id}
            for n, clip_id in enumerate(clip_ids)
        ]
        if rows:
            await self._db.aio_execute(
                PlaylistEntry.insert_many(rows).returning(PlaylistEntry.position)
            )


def _playlist_info(row: Playlist, clip_ids: list[uuid.UUID]) -> PlaylistInfo:
    return PlaylistInfo(
        id=row.id,
        name=row.name,
        comment=row.comment,
        public=row.public,
        created_at=row.created_at,
        changed_at=row.changed_at,
        owner_id=row.owner_id,
        owner=row.owner_name,
        clip_ids=clip_ids,
    )
