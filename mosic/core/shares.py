"""Shares: a public link to a fixed list of songs, which a user makes for anyone who holds it.

A share is named by an unguessable id (``SHARE_ID_BYTES`` random bytes, URL-safe): the link
is the secret, as a signed link's signature is. Its songs are clip ids fixed, in order, when it
is made (``mosic.core.share_songs`` says which songs an album or a playlist gives); only its
``description`` and expiry change later. Its owner or an admin may see, change and delete it;
another user gets ``NotYourShare``.

Its public side (``open``, ``visit``) answers anyone, without a key, until the share expires or
is deleted; then it is ``ShareGone``. A deleted share keeps its row, marked (a tombstone), so it
is never taken for one that never was (``ShareNotFound``). A visit of its page adds one to
``visit_count`` in one conditional ``UPDATE``: concurrent visits are all counted, on any
worker, and a visit that races the expiry is not.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import secrets
import uuid
from dataclasses import dataclass

from peewee import JOIN

from mosic.core.keys import User
from mosic.core.users import as_user
from mosic.observability.metrics import Metrics
from mosic.persistence.models import SHARE_ID_MAX, ShareEntry, ShareRow, UserRow, utcnow

SHARE_ID_BYTES = 16  # 128 random bits (a UUID4 has 122)
# What an id may look like (token_urlsafe's alphabet): anything else is no share, and never
# reaches the database (PostgreSQL refuses NUL in text, for one).
SHARE_ID = re.compile(rf"[A-Za-z0-9_-]{{1,{SHARE_ID_MAX}}}")
# A share of a whole playlist may be long; this many songs at most.
SONGS_MAX = 5000
# Songs written per INSERT: 3 values a row stays well under SQLite's 32766 parameters.
ENTRY_BATCH = 500


class ShareNotFound(Exception):
    """No share has this id (or, to its owner, it was deleted)."""


class ShareGone(Exception):
    """The share has expired or was deleted: its link no longer opens anything."""


class NotYourShare(Exception):
    """A user other than its owner (and no admin) asking to see, change or delete a share."""


class BadShare(ValueError):
    """A share that cannot be made or changed so (nothing in it, too much, expired already)."""


@dataclass(frozen=True)
class ShareInfo:
    id: str
    owner: User | None  # None only once deleted with its removed owner
    description: str | None
    created_at: dt.datetime
    expires_at: dt.datetime | None
    last_visited_at: dt.datetime | None
    visit_count: int
    deleted_at: dt.datetime | None
    clip_ids: tuple[uuid.UUID, ...] = ()

    def gone(self, now: dt.datetime) -> bool:
        """Whether the share opens nothing any more (deleted, or expired by ``now``)."""
        expired = self.expires_at is not None and self.expires_at <= now
        return expired or self.deleted_at is not None or self.owner is None


def _open_at(now: dt.datetime):
    """Shares whose link still opens: not deleted, not expired."""
    not_expired = ShareRow.expires_at.is_null() | (ShareRow.expires_at > now)
    return ShareRow.deleted_at.is_null() & not_expired


def _with_owner():
    # LEFT: a tombstone outlives the user who made it (its owner's columns are then null).
    owner = (
        UserRow.name.alias("owner_name"),
        UserRow.role.alias("owner_role"),
        UserRow.music_folders.alias("owner_folders"),
    )
    query = ShareRow.select(ShareRow, *owner)
    return query.join(UserRow, JOIN.LEFT_OUTER, on=(UserRow.id == ShareRow.owner_id)).objects()


def _info(row, clip_ids: list[uuid.UUID]) -> ShareInfo:
    owner = None
    if row.owner_name is not None:
        owner = as_user(row.owner_id, row.owner_name, row.owner_role, row.owner_folders)
    return ShareInfo(
        id=row.id,
        owner=owner,
        description=row.description,
        created_at=row.created_at,
        expires_at=row.expires_at,
        last_visited_at=row.last_visited_at,
        visit_count=row.visit_count,
        deleted_at=row.deleted_at,
        clip_ids=tuple(clip_ids),
    )


class Shares:
    # Inserts say RETURNING: peewee-async needs it to run an insert on PostgreSQL.
    def __init__(self, *, db, metrics: Metrics) -> None:
        self._db = db
        self._metrics = metrics

    # -- the owner's side --------------------------------------------------------------------
    async def create(
        self,
        user: User,
        clip_ids: list[uuid.UUID],
        *,
        description: str | None = None,
        expires_at: dt.datetime | None = None,
    ) -> ShareInfo:
        """A new share of ``clip_ids`` (in that order) by ``user``, open until ``expires_at``
        (naive UTC; None: until deleted)."""
        now = utcnow()
        if not clip_ids:
            raise BadShare("there is nothing to share: no song the sharer sees")
        if len(clip_ids) > SONGS_MAX:
            raise BadShare(f"a share holds at most {SONGS_MAX} songs, not {len(clip_ids)}")
        if expires_at is not None and expires_at <= now:
            raise BadShare("a new share must expire in the future")
        share_id = secrets.token_urlsafe(SHARE_ID_BYTES)
        row = {"id": share_id, "owner_id": user.id, "description": description,
               "created_at": now, "expires_at": expires_at}  # fmt: skip
        async with self._db.aio_atomic():
            await self._db.aio_execute(ShareRow.insert(row).returning(ShareRow.id))
            entries = [
                {"share_id": share_id, "position": n, "clip_id": clip_id}
                for n, clip_id in enumerate(clip_ids)
            ]
            for start in range(0, len(entries), ENTRY_BATCH):
                batch = entries[start : start + ENTRY_BATCH]
                await self._db.aio_execute(
                    ShareEntry.insert_many(batch).returning(ShareEntry.position)
                )
        return await self.get(user, share_id)

    async def manageable(self, user: User) -> list[ShareInfo]:
        """The shares ``user`` may manage (an admin: everyone's), newest first; expired ones
        too (a new expiry opens them again), deleted ones never."""
        query = _with_owner().where(ShareRow.deleted_at.is_null())
        if not user.is_admin:
            query = query.where(ShareRow.owner_id == user.id)
        rows = list(await self._db.aio_execute(query.order_by(ShareRow.created_at.desc())))
        songs = await self._songs([row.id for row in rows])
        return [_info(row, songs.get(row.id, [])) for row in rows]

    async def get(self, user: User, share_id: str) -> ShareInfo:
        """A share ``user`` may manage; ``ShareNotFound`` once deleted."""
        info = await self._find(share_id)
        if info is None or info.deleted_at is not None:
            raise ShareNotFound(share_id)
        if not user.is_admin and (info.owner is None or info.owner.id != user.id):
            raise NotYourShare(share_id)
        return info

    async def update(self, user: User, share_id: str, changes: dict) -> ShareInfo:
        """Change its ``description`` and ``expires_at`` (either; None removes it). An expiry
        in the past ends the share now."""
        await self.get(user, share_id)
        fields = {name: changes[name] for name in ("description", "expires_at") if name in changes}
        if fields:
            await self._db.aio_execute(ShareRow.update(**fields).where(ShareRow.id == share_id))
        return await self.get(user, share_id)

    async def delete(self, user: User, share_id: str) -> None:
        """Delete a share: its link answers "gone" from now on; its songs are forgotten."""
        await self.get(user, share_id)
        async with self._db.aio_atomic():
            await self._db.aio_execute(
                ShareRow.update(deleted_at=utcnow()).where(
                    (ShareRow.id == share_id) & ShareRow.deleted_at.is_null()
                )
            )
            await self._db.aio_execute(ShareEntry.delete().where(ShareEntry.share_id == share_id))

    # -- the public side ---------------------------------------------------------------------
    async def open(self, share_id: str) -> ShareInfo:
        """The share behind a link, for anyone: ``ShareGone`` once it expired or was
        deleted, ``ShareNotFound`` when there never was one."""
        info = await self._find(share_id)
        if info is None:
            raise ShareNotFound(share_id)
        if info.gone(utcnow()):
            raise ShareGone(share_id)
        return info

    async def visit(self, share_id: str) -> ShareInfo:
        """``open``, counting one visit of the share's page."""
        info = await self.open(share_id)
        now = utcnow()
        counted = await self._db.aio_execute(
            ShareRow.update(visit_count=ShareRow.visit_count + 1, last_visited_at=now).where(
                (ShareRow.id == share_id) & _open_at(now)
            )
        )
        if counted != 1:  # it expired, or was deleted, since it was read
            raise ShareGone(share_id)
        self._metrics.share_visit()
        return dataclasses.replace(info, visit_count=info.visit_count + 1, last_visited_at=now)

    # -- reading -----------------------------------------------------------------------------
    async def _find(self, share_id: str) -> ShareInfo | None:
        if not SHARE_ID.fullmatch(share_id):
            return None
        rows = await self._db.aio_execute(_with_owner().where(ShareRow.id == share_id).limit(1))
        if not rows:
            return None
        songs = await self._songs([share_id])
        return _info(rows[0], songs.get(share_id, []))

    async def _songs(self, share_ids: list[str]) -> dict[str, list[uuid.UUID]]:
        if not share_ids:
            return {}
        entries = await self._db.aio_execute(
            ShareEntry.select(ShareEntry.share_id, ShareEntry.clip_id)
            .where(ShareEntry.share_id.in_(share_ids))
            .order_by(ShareEntry.share_id, ShareEntry.position)
            .tuples()
        )
        songs: dict[str, list[uuid.UUID]] = {}
        for share_id, clip_id in entries:
            songs.setdefault(share_id, []).append(clip_id)
        return songs
