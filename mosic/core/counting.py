"""The statements that count a play: the clip's global count, and the listener's own.

A play by a user adds one to ``clip.play_count``, one to the user's ``user_play`` row (made at
its first play) and a row to the user's history (``user_play_event``); a play that starts
now (a REST stream, not a scrobble after the end) also becomes the user's "now playing" on
its player. Every count is an increment in the database, never a read-modify-write in Python,
so concurrent plays are exact.

- **PostgreSQL:** one statement per play (data-modifying CTEs), so its parts agree at every
  moment and no two plays interleave between them.
- **SQLite:** one writer at a time, and a transaction of a play's four statements held the
  write lock across six trips to the driver's thread, while other connections slept in
  SQLite's busy handler: plays/s fell to a third (bench.user_plays). So the plays asked in
  one pass of the event loop are counted together, in one transaction of four batched
  statements (a group commit): each play is still exact and all-or-nothing.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from dataclasses import dataclass

from mosic.persistence.compiled import CompiledQuery, Records
from mosic.persistence.models import Clip, NowPlaying

_SOME_ID = uuid.UUID(int=0)
_SOME_TIME = dt.datetime(2000, 1, 1)
_COUNTS = Records(int, [Clip.play_count])

# One statement on PostgreSQL. ``mine`` and ``event`` read the rows ``counted`` returns, so a
# clip that is gone counts nothing anywhere.
_PG_PLAY = """
WITH counted AS (
    UPDATE clip SET play_count = play_count + 1, last_played_at = %(now)s
    WHERE id = %(clip)s::uuid
    RETURNING id
), mine AS (
    INSERT INTO user_play (user_id, clip_id, play_count, last_played_at)
    SELECT %(user)s, id, 1, %(now)s FROM counted
    ON CONFLICT (user_id, clip_id) DO UPDATE
    SET play_count = user_play.play_count + 1, last_played_at = EXCLUDED.last_played_at
), event AS (
    INSERT INTO user_play_event (user_id, clip_id, played_at)
    SELECT %(user)s, id, %(now)s FROM counted
){playing}
SELECT 1 FROM counted
"""
_PG_PLAYING = """, playing AS (
    INSERT INTO user_now_playing (user_id, player, clip_id, started_at)
    SELECT %(user)s, %(player)s, id, %(now)s FROM counted
    ON CONFLICT (user_id, player) DO UPDATE
    SET clip_id = EXCLUDED.clip_id, started_at = EXCLUDED.started_at
)"""
_PLACEHOLDERS = {"now": "%s", "clip": "%s", "user": "%s", "player": "%s"}

# SQLite's batch: each clip's count, which clips exist, then the users' part of every play
# that counted.
_SQLITE_EXISTING = "SELECT id FROM clip WHERE id IN ({})"
_SQLITE_GLOBAL = "UPDATE clip SET play_count = play_count + 1, last_played_at = ? WHERE id = ?"
_SQLITE_MINE = (
    "INSERT INTO user_play (user_id, clip_id, play_count, last_played_at) VALUES (?, ?, 1, ?)"
    " ON CONFLICT (user_id, clip_id) DO UPDATE"
    " SET play_count = play_count + 1, last_played_at = excluded.last_played_at"
)
_SQLITE_EVENT = "INSERT INTO user_play_event (user_id, clip_id, played_at) VALUES (?, ?, ?)"
_SQLITE_PLAYING = (
    "INSERT INTO user_now_playing (user_id, player, clip_id, started_at) VALUES (?, ?, ?, ?)"
    " ON CONFLICT (user_id, player) DO UPDATE"
    " SET clip_id = excluded.clip_id, started_at = excluded.started_at"
)
# Plays counted by one SQLite transaction at most (the rest wait for the next).
BATCH_MAX = 256


@dataclass(frozen=True)
class _Play:
    clip_id: uuid.UUID
    user_id: int | None
    now: dt.datetime
    player: str | None
    counted: asyncio.Future


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
        self._waiting: list[_Play] = []
        self._running: set[asyncio.Task] = set()

    async def count(
        self,
        clip_id: uuid.UUID,
        user_id: int | None,
        now: dt.datetime,
        player: str | None = None,
    ) -> bool:
        """Count one play of ``clip_id`` by ``user_id`` (None: nobody's), starting now on
        ``player`` when given; False when the clip is gone (nothing was counted)."""
        if user_id is None and self._postgres:
            return bool(await self._global.run(clip_id=clip_id, now=now))
        if self._postgres:
            return await self._count_in_one_statement(clip_id, user_id, now, player)
        return await self._count_in_a_group(clip_id, user_id, now, player)

    async def _count_in_one_statement(self, clip_id, user_id, now, player) -> bool:
        # The placeholders in the order they appear in the text.
        params = [now, clip_id.hex, user_id, now, user_id, now]
        if player is not None:
            params += [user_id, player, now]
        return bool(await self._db.fetch_rows(self._pg_sql[player is not None], params))

    # -- SQLite: a group commit per pass of the event loop -----------------------------------
    async def _count_in_a_group(self, clip_id, user_id, now, player) -> bool:
        loop = asyncio.get_running_loop()
        if not self._waiting:
            loop.call_soon(self._flush)
        play = _Play(clip_id, user_id, now, player, loop.create_future())
        self._waiting.append(play)
        if len(self._waiting) >= BATCH_MAX:
            self._flush()
        return await play.counted

    def _flush(self) -> None:
        batch, self._waiting = self._waiting, []
        if batch:
            task = asyncio.create_task(self._count_batch(batch))
            self._running.add(task)  # the loop keeps only weak references to tasks
            task.add_done_callback(self._running.discard)

    async def _count_batch(self, batch: list[_Play]) -> None:
        try:
            async with self._db.aio_atomic():
                # A write first: a transaction that read first cannot wait for another
                # process's write lock ("database is locked" at once, as its snapshot is old).
                await self._count_globally(batch)
                existing = await self._existing({play.clip_id for play in batch})
                await self._count_for_users([p for p in batch if p.clip_id.hex in existing])
        except Exception as exc:  # nothing of the batch was counted: each caller hears why
            for play in batch:
                if not play.counted.done():
                    play.counted.set_exception(exc)
            return
        except BaseException:  # cancelled (the worker stops): so are the plays waiting
            for play in batch:
                play.counted.cancel()
            raise
        for play in batch:
            if not play.counted.done():  # its caller may have gone
                play.counted.set_result(play.clip_id.hex in existing)

    async def _existing(self, clip_ids: set[uuid.UUID]) -> set[str]:
        marks = ", ".join("?" * len(clip_ids))
        rows = await self._db.fetch_rows(
            _SQLITE_EXISTING.format(marks), [clip_id.hex for clip_id in clip_ids]
        )
        return {row[0] for row in rows}

    async def _count_globally(self, plays: list[_Play]) -> None:
        """Add each play to its clip's count (a clip that is gone takes none)."""
        time = Clip.last_played_at.db_value
        await self._db.execute_many(_SQLITE_GLOBAL, [(time(p.now), p.clip_id.hex) for p in plays])

    async def _count_for_users(self, plays: list[_Play]) -> None:
        time = Clip.last_played_at.db_value
        mine = [p for p in plays if p.user_id is not None]
        rows = [(p.user_id, p.clip_id.hex, time(p.now)) for p in mine]
        if rows:
            await self._db.execute_many(_SQLITE_MINE, rows)
            await self._db.execute_many(_SQLITE_EVENT, rows)
        playing = [(p.user_id, p.player, p.clip_id.hex, time(p.now)) for p in mine if p.player]
        if playing:
            await self._db.execute_many(_SQLITE_PLAYING, playing)


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
