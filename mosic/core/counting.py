"""The statements that count a play: the clip's global count, and the listener's own.

A play by a user adds one to ``clip.play_count``, one to the user's ``user_play`` row (made at
its first play) and a row to the user's history (``user_play_event``); a play that starts
now (a REST stream, not a scrobble after the end) also becomes the user's "now playing" on
its player. On PostgreSQL that is
one statement (data-modifying CTEs), so the three agree at every moment and no two plays can
interleave between them; on SQLite it is one transaction, which SQLite's single writer
serialises. Every count is an increment in the database, never a read-modify-write in Python,
so concurrent plays are exact on both.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from mosic.persistence.compiled import CompiledQuery, Records
from mosic.persistence.models import Clip, NowPlaying, PlayEvent, UserPlay

_SOME_ID = uuid.UUID(int=0)
_SOME_TIME = dt.datetime(2000, 1, 1)
_COUNTS = Records(int, [Clip.play_count])

# One statement on PostgreSQL. ``mine`` and ``event`` read the rows ``counted`` returns, so a
# clip that is gone counts nothing anywhere.
_PG_PLAY = """
WITH counted AS (
    UPDATE clip SET play_count = play_count + 1, last_played_at = %(now)s
    WHERE id = %(clip)s::uuid
    RETURNING id, play_count
), mine AS (
    INSERT INTO user_play (user_id, clip_id, play_count, last_played_at)
    SELECT %(user)s, id, 1, %(now)s FROM counted
    ON CONFLICT (user_id, clip_id) DO UPDATE
    SET play_count = user_play.play_count + 1, last_played_at = EXCLUDED.last_played_at
    RETURNING play_count
), event AS (
    INSERT INTO user_play_event (user_id, clip_id, played_at)
    SELECT %(user)s, id, %(now)s FROM counted
){playing}
SELECT counted.play_count, mine.play_count FROM counted, mine
"""
_PG_PLAYING = """, playing AS (
    INSERT INTO user_now_playing (user_id, player, clip_id, started_at)
    SELECT %(user)s, %(player)s, id, %(now)s FROM counted
    ON CONFLICT (user_id, player) DO UPDATE
    SET clip_id = EXCLUDED.clip_id, started_at = EXCLUDED.started_at
)"""
_PLACEHOLDERS = {"now": "%s", "clip": "%s", "user": "%s", "player": "%s"}


@dataclass(frozen=True)
class Counted:
    """A play's counts just after it: the clip's global count, and the listener's own
    (None for a play by nobody: an old signed link that names no user)."""

    play_count: int
    my_play_count: int | None = None


class PlayCounts:
    def __init__(self, db) -> None:
        self._db = db
        self._postgres = db.rows_are_typed  # psycopg: the one-statement path
        self._global = CompiledQuery(
            db,
            Clip.update(play_count=Clip.play_count + 1, last_played_at=_SOME_TIME)
            .where(Clip.id == _SOME_ID)
            .returning(Clip.play_count),
            _COUNTS,
            clip_id=(Clip.id, _SOME_ID),
            now=(Clip.last_played_at, _SOME_TIME),
        )

        # Built once: the statement with and without "now playing" (psycopg prepares each).
        self._pg_sql = {
            False: _PG_PLAY.replace("{playing}", "") % _PLACEHOLDERS,
            True: _PG_PLAY.replace("{playing}", _PG_PLAYING) % _PLACEHOLDERS,
        }

    async def count(
        self,
        clip_id: uuid.UUID,
        user_id: int | None,
        now: dt.datetime,
        player: str | None = None,
    ) -> Counted | None:
        """Count one play of ``clip_id`` by ``user_id``, starting now on ``player`` when
        given; None when the clip is gone."""
        if user_id is None:
            rows = await self._global.run(clip_id=clip_id, now=now)
            return Counted(rows[0]) if rows else None
        if self._postgres:
            return await self._count_in_one_statement(clip_id, user_id, now, player)
        return await self._count_in_one_transaction(clip_id, user_id, now, player)

    async def _count_in_one_statement(self, clip_id, user_id, now, player) -> Counted | None:
        # The placeholders in the order they appear in the text.
        params = [now, clip_id.hex, user_id, now, user_id, now]
        if player is not None:
            params += [user_id, player, now]
        rows = await self._db.fetch_rows(self._pg_sql[player is not None], params)
        return Counted(*rows[0]) if rows else None

    async def _count_in_one_transaction(self, clip_id, user_id, now, player) -> Counted | None:
        async with self._db.aio_atomic():
            rows = await self._global.run(clip_id=clip_id, now=now)
            if not rows:
                return None
            mine = await self._db.aio_execute(
                UserPlay.insert(user_id=user_id, clip_id=clip_id, play_count=1, last_played_at=now)
                .on_conflict(
                    conflict_target=[UserPlay.user_id, UserPlay.clip_id],
                    update={
                        UserPlay.play_count: UserPlay.play_count + 1,
                        UserPlay.last_played_at: now,
                    },
                )
                .returning(UserPlay.play_count)
            )
            await self._db.aio_execute(
                PlayEvent.insert(user_id=user_id, clip_id=clip_id, played_at=now).returning(
                    PlayEvent.id
                )
            )
            if player is not None:
                await self._db.aio_execute(playing(user_id, player, clip_id, now))
        return Counted(rows[0], mine[0].play_count)


def playing(user_id: int, player: str, clip_id: uuid.UUID, started_at: dt.datetime):
    """The upsert that makes ``clip_id`` what ``user_id`` plays now on ``player``."""
    return (
        NowPlaying.insert(user_id=user_id, player=player, clip_id=clip_id, started_at=started_at)
        .on_conflict(
            conflict_target=[NowPlaying.user_id, NowPlaying.player],
            update={NowPlaying.clip_id: clip_id, NowPlaying.started_at: started_at},
        )
        .returning(NowPlaying.user_id)
    )
