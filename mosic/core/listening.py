"""What each user has listened to: its own play counts, its history and what it plays now.

Written by ``mosic.core.counting`` (a play) and here (now playing); read per user and per
page, never for the whole catalogue: a user's counts are read for the clips of one answer.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import uuid
from dataclasses import dataclass

import peewee
from peewee import Tuple, fn

from mosic.core.counting import playing
from mosic.core.cursors import CURSOR_NUMBER_MAX
from mosic.persistence.models import (
    Clip,
    Listen,
    NowPlaying,
    PlayEvent,
    UserPlay,
    UserRow,
    utcnow,
)

HISTORY_MAX = 500
# What "now" means for getNowPlaying: a song started longer ago than this is over.
NOW_PLAYING_FOR = dt.timedelta(minutes=15)
# Players kept per answer: a household's, with room to spare.
NOW_PLAYING_MAX = 100

_TIME = peewee.DateTimeField()  # converts SQLite's text times (PostgreSQL's come typed)


class InvalidHistoryCursor(ValueError):
    pass


@dataclass(frozen=True)
class Mine:
    """A user's own plays of one clip."""

    play_count: int
    last_played_at: dt.datetime | None


NEVER_PLAYED = Mine(0, None)


@dataclass(frozen=True)
class Played:
    clip_id: uuid.UUID
    played_at: dt.datetime


@dataclass(frozen=True)
class Reported:
    """Where the player said it was, in its last playback report of the song."""

    state: str
    position_ms: int
    playback_rate: float
    reported_at: dt.datetime


@dataclass(frozen=True)
class Playing:
    user: str
    player: str
    clip_id: uuid.UUID
    started_at: dt.datetime
    reported: Reported | None = None  # None: no playback report of this song


class Listening:
    def __init__(self, *, db) -> None:
        self._db = db

    async def mine(self, user_id: int, clip_ids) -> dict[uuid.UUID, Mine]:
        """The user's counts of ``clip_ids`` (those it never played are left out)."""
        ids = list(set(clip_ids))
        if not ids:
            return {}
        rows = await self._db.aio_execute(
            UserPlay.select(UserPlay.clip_id, UserPlay.play_count, UserPlay.last_played_at)
            .where((UserPlay.user_id == user_id) & UserPlay.clip_id.in_(ids))
            .tuples()
        )
        return {_uuid(clip_id): Mine(count, last) for clip_id, count, last in rows}

    async def album_plays(self, user_id: int, album_ids) -> dict[str, Mine]:
        """The user's plays of each album of ``album_ids`` (the sum over its songs, and the
        latest): read through the albums' songs, so it costs the songs shown, not the user's
        history or the catalogue."""
        ids = list(set(album_ids))
        if not ids:
            return {}
        rows = await self._db.aio_execute(
            Clip.select(Clip.album_id, fn.SUM(UserPlay.play_count), fn.MAX(UserPlay.last_played_at))
            .join(UserPlay, on=(UserPlay.clip_id == Clip.id))
            .where((UserPlay.user_id == user_id) & Clip.album_id.in_(ids))
            .group_by(Clip.album_id)
            .tuples()
        )
        return {album_id: Mine(int(n), _TIME.python_value(at)) for album_id, n, at in rows}

    async def history(
        self, user_id: int, limit: int, cursor: str | None
    ) -> tuple[list[Played], str | None]:
        """The user's plays, newest first: a page, and the cursor of the next (None at the
        end). Keyset paging on the (user_id, played_at, id) index, so a page costs its size
        at any depth; ``id`` breaks ties between plays of the same moment."""
        query = PlayEvent.select(PlayEvent.id, PlayEvent.clip_id, PlayEvent.played_at).where(
            PlayEvent.user_id == user_id
        )
        if cursor is not None:
            at, event_id = decode_history_cursor(cursor)
            query = query.where(Tuple(PlayEvent.played_at, PlayEvent.id) < Tuple(at, event_id))
        rows = await self._db.aio_execute(
            query.order_by(PlayEvent.played_at.desc(), PlayEvent.id.desc())
            .limit(limit + 1)
            .tuples()
        )
        page = [Played(_uuid(clip_id), at) for _, clip_id, at in rows[:limit]]
        if len(rows) <= limit:
            return page, None
        last_id, _, last_at = rows[limit - 1]
        return page, encode_history_cursor(last_at, last_id)

    async def playing(self, user_id: int, player: str, clip_id: uuid.UUID) -> None:
        """``user_id`` started ``clip_id`` on ``player``: replaces what it played there."""
        await self._db.aio_execute(playing(user_id, player, clip_id, utcnow()))

    async def now_playing(self) -> list[Playing]:
        """What is playing now, newest first: songs started within ``NOW_PLAYING_FOR``."""
        since = utcnow() - NOW_PLAYING_FOR
        reported = (Listen.state, Listen.position_ms, Listen.playback_rate, Listen.reported_at)
        listen_of_the_song = (
            (Listen.user_id == NowPlaying.user_id)
            & (Listen.player == NowPlaying.player)
            & (Listen.clip_id == NowPlaying.clip_id)
        )
        rows = await self._db.aio_execute(
            NowPlaying.select(
                UserRow.name,
                NowPlaying.player,
                NowPlaying.clip_id,
                NowPlaying.started_at,
                *reported,
            )  # fmt: skip
            .join(UserRow, on=(UserRow.id == NowPlaying.user_id))
            .join(Listen, peewee.JOIN.LEFT_OUTER, on=listen_of_the_song)
            .where(NowPlaying.started_at >= since)
            .order_by(NowPlaying.started_at.desc())
            .limit(NOW_PLAYING_MAX)
            .tuples()
        )
        return [_playing(*row) for row in rows]


def _playing(name, player, clip, at, state, position_ms, rate, reported_at) -> Playing:
    reported = None
    if state is not None:
        reported = Reported(state, position_ms, rate, reported_at)
    return Playing(name, player, _uuid(clip), at, reported)


def encode_history_cursor(played_at: dt.datetime, event_id: int) -> str:
    raw = json.dumps([played_at.isoformat(), event_id], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_history_cursor(cursor: str) -> tuple[dt.datetime, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        at, event_id = json.loads(raw)
        if not isinstance(event_id, int) or not 0 < event_id <= CURSOR_NUMBER_MAX:
            raise ValueError
        played_at = dt.datetime.fromisoformat(at)
        if played_at.tzinfo is not None:  # ours are naive UTC, as stored
            raise ValueError
        return played_at, event_id
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError):
        raise InvalidHistoryCursor("the cursor is not one this server issued") from None


def _uuid(value) -> uuid.UUID:
    # SQLite returns a UUID column's text from a tuple query; PostgreSQL a uuid.UUID.
    return value if isinstance(value, uuid.UUID) else uuid.UUID(value)
