"""Users and their keys: who a key belongs to, and the admin's changes to users and keys.

Row 1 is the admin whose keys are the configured ones (``MOSIC_API_KEY``, its ``read`` keys in
``MOSIC_READ_API_KEYS``), named by ``MOSIC_ADMIN_USER``; those never touch the database. Every
other key is found by its fingerprint and kept sealed for Subsonic's token login
(``mosic.core.sealing``), never as itself. Nothing is cached, so a removed key or user is
refused at once by every worker and replica.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import secrets
import unicodedata
from dataclasses import dataclass

import peewee

from mosic.core.keys import Grant, KeyRing, User
from mosic.core.sealing import Sealer
from mosic.persistence.compiled import BatchedLookup, Records, row_type
from mosic.persistence.models import (
    ADMIN,
    ADMIN_ID,
    FULL_SCOPE,
    LISTENER,
    READ_SCOPE,
    USER_NAME_MAX,
    Bookmark,
    Clip,
    KeyRow,
    Listen,
    MusicFolder,
    NowPlaying,
    PlayEvent,
    Playlist,
    PlaylistEntry,
    PlayQueue,
    PlayQueueEntry,
    Rating,
    ShareEntry,
    ShareRow,
    Star,
    UserPlay,
    UserRow,
    name_key,
    utcnow,
)

ROLES = (ADMIN, LISTENER)
SCOPES = (FULL_SCOPE, READ_SCOPE)
KEY_BYTES = 32  # as strong as the generated API key
KEY_ID_BYTES = 9
PASSWORD_MIN = 12  # a password a person chose, kept as a key (changePassword)


class UserNotFound(Exception):
    pass


class KeyNotFound(Exception):
    pass


class UserConflict(Exception):
    """A change the users' rules refuse (a taken name, the configured admin's row)."""


class BadUser(ValueError):
    """A name, role, scope or music folder that cannot be."""


@dataclass(frozen=True)
class UserInfo:
    user: User
    created_at: dt.datetime


@dataclass(frozen=True)
class KeyInfo:
    id: str
    scope: str
    created_at: dt.datetime


@dataclass(frozen=True)
class NewKey:
    """A key as made: the only time its text is known."""

    info: KeyInfo
    key: str


def valid_name(name: object) -> str:
    if not isinstance(name, str) or not name.strip():
        raise BadUser("name must be a non-empty string")
    if len(name) > USER_NAME_MAX:
        raise BadUser(f"name must be at most {USER_NAME_MAX} characters")
    if name != name.strip() or any(unicodedata.category(c) == "Cc" for c in name):
        raise BadUser("name must not start or end with spaces, nor hold control characters")
    if "/" in name:
        raise BadUser("name must not hold '/' (it is part of the user's URL)")
    return name


def valid_role(role: object) -> str:
    if role not in ROLES:
        raise BadUser(f"role must be one of {', '.join(ROLES)}")
    return role


def valid_password(password: str) -> str:
    if len(password) < PASSWORD_MIN:
        raise BadUser(f"a password must be at least {PASSWORD_MIN} characters")
    return password


def valid_scope(scope: object) -> str:
    if scope not in SCOPES:
        raise BadUser(f"scope must be one of {', '.join(SCOPES)}")
    return scope


def _user(row) -> User:
    return as_user(row.id, row.name, row.role, row.music_folders)


def as_user(user_id: int, name: str, role: str, folders: str | None) -> User:
    """A user from its row's columns (``folders``: the stored JSON list, or null for all)."""
    seen = tuple(json.loads(folders)) if folders is not None else None
    return User(id=user_id, name=name, role=role, music_folders=seen)


# What a user key's lookup reads: its fingerprint (the lookup's key), scope and user.
_GRANT_FIELDS = (KeyRow.digest, KeyRow.scope, UserRow.id, UserRow.name, UserRow.role,
                 UserRow.music_folders)  # fmt: skip
_grant_rows = Records(row_type(KeyRow, _GRANT_FIELDS), _GRANT_FIELDS)


class Users:
    def __init__(self, *, db, ring: KeyRing, sealer: Sealer) -> None:
        self._db = db
        self._ring = ring
        self._sealer = sealer
        # A user key is looked up on every request it comes with (nothing cached: a revoked
        # key is refused at once); lookups asked together share one statement.
        query = KeyRow.select(*_GRANT_FIELDS).join(UserRow, on=UserRow.id == KeyRow.user_id)
        self._by_fingerprint = BatchedLookup(db, query, KeyRow.digest, _grant_rows)

    # -- who is calling ----------------------------------------------------------------------
    async def grant(self, key: str | None) -> Grant | None:
        """What ``key`` may do, and as whom; None when it is no key."""
        if not key:
            return None
        configured = self._ring.grant(key)
        if configured is not None:
            return configured
        row = await self._by_fingerprint.get(self._sealer.fingerprint(key))
        if row is None:
            return None
        user = as_user(row.id, row.name, row.role, row.music_folders)
        return Grant(writes=row.scope == FULL_SCOPE, user=user)

    async def grant_for_password(self, name: str, password: str) -> Grant | None:
        """Subsonic's ``u`` and ``p``: the password is one of that user's keys, or the
        password ``changePassword`` set (a key of that user alone)."""
        found = await self.grant(password)
        if found is not None:
            return found if _same_name(found.user, name) else None
        row = await self._row(name)
        if row is None:
            return None
        bound = self._sealer.fingerprint(_bound(row.id, password))
        keys = await self._db.aio_execute(
            KeyRow.select(KeyRow.scope).where(KeyRow.digest == bound).tuples()
        )
        return Grant(writes=keys[0][0] == FULL_SCOPE, user=_user(row)) if keys else None

    async def grant_for_token(self, name: str, token: str, salt: str) -> Grant | None:
        """Subsonic's ``u``, ``t`` = md5(key + ``s``) and ``s``: each of the user's keys is
        tried (the configured ones for the admin)."""
        configured = self._ring.grant_for_token(token, salt)
        if configured is not None:
            return configured if _same_name(configured.user, name) else None
        row = await self._row(name)
        if row is None:
            return None
        user = _user(row)
        keys = await self._db.aio_execute(
            KeyRow.select(KeyRow.scope, KeyRow.sealed).where(KeyRow.user_id == user.id).tuples()
        )
        given = token.lower().encode()
        for scope, sealed in keys:
            key = self._sealer.unseal(sealed)
            if key is not None and hmac.compare_digest(given, _md5(key + salt)):
                return Grant(writes=scope == FULL_SCOPE, user=user)
        return None

    async def link_grant(self, user_id: int) -> Grant | None:
        """What a signed link made for the user ``user_id`` may do: read, as that user as it
        is now (read afresh for every link: a removed user's links stop at once, and a change
        to its folders applies at once); None when that user is gone."""
        rows = await self._db.aio_execute(UserRow.select().where(UserRow.id == user_id).limit(1))
        return Grant(writes=False, user=_user(rows[0])) if rows else None

    # -- users -------------------------------------------------------------------------------
    async def list(self) -> list[UserInfo]:
        rows = await self._db.aio_execute(UserRow.select().order_by(UserRow.name_key))
        return [UserInfo(_user(row), row.created_at) for row in rows]

    async def get(self, name: str) -> UserInfo:
        row = await self._row(name)
        if row is None:
            raise UserNotFound(name)
        return UserInfo(_user(row), row.created_at)

    async def add(
        self, name: str, role: str, music_folders: list[str] | None
    ) -> tuple[UserInfo, NewKey]:
        """A new user and its first ``full`` key."""
        name, role = valid_name(name), valid_role(role)
        folders = await self._folders(music_folders)
        now = utcnow()
        try:
            async with self._db.aio_atomic():
                user_id = await self._db.aio_execute(
                    UserRow.insert(name=name, name_key=name_key(name), role=role,
                                   music_folders=folders, created_at=now)
                    .returning(UserRow.id)
                )  # fmt: skip
                user_id = _inserted_id(user_id)
                key = await self._make_key(user_id, FULL_SCOPE, now)
        except peewee.IntegrityError:
            raise UserConflict(f"a user named {name!r} exists (names ignore case)") from None
        return await self.get(name), key

    async def update(self, name: str, changes: dict) -> UserInfo:
        """Change a user's ``name``, ``role`` and ``music_folders`` (any of them)."""
        info = await self.get(name)
        fields: dict = {}
        if "name" in changes:
            fields |= {"name": valid_name(changes["name"]), "name_key": name_key(changes["name"])}
        if "role" in changes:
            fields["role"] = valid_role(changes["role"])
        if "music_folders" in changes:
            fields["music_folders"] = await self._folders(changes["music_folders"])
        demoted = fields.get("role") == LISTENER
        if info.user.id == ADMIN_ID and (fields.keys() - {"role"} or demoted):
            raise UserConflict(
                "the configured keys' user is named by MOSIC_ADMIN_USER, stays an admin and "
                "sees every folder"
            )
        if fields:
            try:
                await self._db.aio_execute(
                    UserRow.update(**fields).where(UserRow.id == info.user.id)
                )
            except peewee.IntegrityError:
                raise UserConflict(f"a user named {changes['name']!r} exists") from None
        return await self.get(fields.get("name", name))

    async def remove(self, name: str, heir: int) -> None:
        """Remove a user, its keys and everything it keeps (stars, ratings, playlists, queue,
        bookmarks, its own counts and history); its shares are deleted (their links answer
        "gone"); its uploads pass to the user ``heir`` (the admin who removed it). Its plays
        stay in the global counts."""
        info = await self.get(name)
        if info.user.id == ADMIN_ID:
            raise UserConflict("the configured keys' user cannot be removed")
        async with self._db.aio_atomic():
            await self._db.aio_execute(
                Clip.update(owner_id=heir).where(Clip.owner_id == info.user.id)
            )
            await self._db.aio_execute(KeyRow.delete().where(KeyRow.user_id == info.user.id))
            for statement in _state_of(info.user.id):
                await self._db.aio_execute(statement)
            await self._db.aio_execute(UserRow.delete().where(UserRow.id == info.user.id))

    # -- keys --------------------------------------------------------------------------------
    async def new_key(self, name: str, scope: str) -> NewKey:
        scope = valid_scope(scope)
        info = await self.get(name)
        return await self._make_key(info.user.id, scope, utcnow())

    async def keys(self, name: str) -> list[KeyInfo]:
        info = await self.get(name)
        rows = await self._db.aio_execute(
            KeyRow.select(KeyRow.id, KeyRow.scope, KeyRow.created_at)
            .where(KeyRow.user_id == info.user.id)
            .order_by(KeyRow.created_at, KeyRow.id)
        )
        return [KeyInfo(row.id, row.scope, row.created_at) for row in rows]

    async def set_password(self, name: str, password: str) -> None:
        """Subsonic's ``changePassword``: ``password`` becomes the user's ``full`` key with
        the id ``password-N``, in place of the one set before. Chosen by a person, it is
        bound to its user (its fingerprint covers the user's id): it logs in with ``u``
        only, and two users may choose the same one."""
        valid_password(password)
        info = await self.get(name)
        if info.user.id == ADMIN_ID:
            raise UserConflict("the admin's keys are MOSIC_API_KEY and MOSIC_READ_API_KEYS")
        key_id = f"password-{info.user.id}"
        async with self._db.aio_atomic():
            await self._db.aio_execute(KeyRow.delete().where(KeyRow.id == key_id))
            await self._make_key(info.user.id, FULL_SCOPE, utcnow(), password, key_id)

    async def revoke(self, name: str, key_id: str) -> None:
        info = await self.get(name)
        gone = await self._db.aio_execute(
            KeyRow.delete().where((KeyRow.id == key_id) & (KeyRow.user_id == info.user.id))
        )
        if not gone:
            raise KeyNotFound(key_id)

    # -- helpers -----------------------------------------------------------------------------
    async def _make_key(
        self, user_id: int, scope: str, now: dt.datetime, key: str | None = None,
        key_id: str | None = None,
    ) -> NewKey:  # fmt: skip
        found_by = _bound(user_id, key) if key else None
        key = key or secrets.token_urlsafe(KEY_BYTES)
        key_id = key_id or secrets.token_urlsafe(KEY_ID_BYTES)
        await self._db.aio_execute(
            KeyRow.insert(
                id=key_id,
                user_id=user_id,
                scope=scope,
                digest=self._sealer.fingerprint(found_by or key),
                sealed=self._sealer.seal(key),
                created_at=now,
            ).returning(KeyRow.id)
        )
        return NewKey(KeyInfo(key_id, scope, now), key)

    async def _row(self, name: str):
        rows = await self._db.aio_execute(
            UserRow.select().where(UserRow.name_key == name_key(name)).limit(1)
        )
        return rows[0] if rows else None

    async def _folders(self, names: object) -> str | None:
        """``music_folders`` as stored: null for all, else a JSON list of known names."""
        if names is None:
            return None
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise BadUser("music_folders must be a list of music folder names, or null")
        known = {
            row[0]
            for row in await self._db.aio_execute(MusicFolder.select(MusicFolder.name).tuples())
        }
        unknown = [name for name in names if name not in known]
        if unknown:
            raise BadUser(f"no music folder named {', '.join(map(repr, unknown))}")
        return json.dumps(list(dict.fromkeys(names)))


def _bound(user_id: int, password: str) -> str:
    """What a chosen password is found by: itself with its user's id."""
    return f"{user_id}\x00{password}"


def _same_name(user: User, name: str) -> bool:
    return hmac.compare_digest(name_key(user.name).encode(), name_key(name).encode())


def _md5(text: str) -> bytes:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest().encode()


def _inserted_id(result) -> int:
    # An insert's RETURNING comes back as its rows (models), or as the id itself.
    return result if isinstance(result, int) else list(result)[0].id


def _state_of(user_id: int) -> list:
    """The statements that delete what a user keeps."""
    owned = Playlist.select(Playlist.id).where(Playlist.owner_id == user_id)
    statements = [PlaylistEntry.delete().where(PlaylistEntry.playlist_id.in_(owned))]
    statements.append(Playlist.delete().where(Playlist.owner_id == user_id))
    kept = (
        Star, Rating, PlayQueue, PlayQueueEntry, Bookmark, UserPlay, PlayEvent, NowPlaying,
        Listen,
    )  # fmt: skip
    statements += [model.delete().where(model.user_id == user_id) for model in kept]
    return statements + _shares_ended(user_id)


def _shares_ended(user_id: int) -> list:
    """The user's shares deleted as ``DELETE /shares/{id}`` deletes one: each keeps its row,
    marked, so its link answers "gone" (mosic.core.shares), and loses its songs."""
    shares = ShareRow.select(ShareRow.id).where(ShareRow.owner_id == user_id)
    return [
        ShareEntry.delete().where(ShareEntry.share_id.in_(shares)),
        ShareRow.update(deleted_at=utcnow()).where(
            (ShareRow.owner_id == user_id) & ShareRow.deleted_at.is_null()
        ),
    ]
