"""Playback reports (OpenSubsonic ``playbackReport``): what a player says it is doing, and
when that makes a play.

A user's player (Subsonic's ``c``) reports a song, a state, a position and a rate. Each
report makes the song the user's "now playing" on that player and moves the player's
*listen* (``user_listen``: one row per user and player). A report starts a new listen when

- it names another song than the listen's (or the player has none yet), or
- it is at the song's start (within ``RESTART_WITHIN_MS``) and either says ``starting`` (the
  player starts or restarts the song, as a repeat does) or follows a ``stopped`` report;

every other report moves the current listen (a seek back, a pause, a resume mid-song). A
listen counts one play, through ``PlayRecorder``, at the first report whose position
``reaches_a_play`` (half the song or 240 s), unless that report says ``ignoreScrobble``;
never twice, however many reports follow.

"Once per listen" holds in the database, whichever worker or replica gets the reports:
moving the listen is one upsert that returns the listen's ``generation``, and a report that
reaches a play claims the listen with ``UPDATE ... SET counted = true WHERE generation = ?
AND NOT counted``, which one report alone can win (the row's lock orders concurrent ones on
PostgreSQL; SQLite has one writer). Only the winner counts; if counting fails, it gives the
claim back so a later report may count instead.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from peewee import EXCLUDED, Case

from mosic.core.keys import User
from mosic.core.listening import Listening
from mosic.core.plays import PlayRecorder, reaches_a_play
from mosic.persistence.models import Listen, utcnow

STARTING, PLAYING, PAUSED, STOPPED = "starting", "playing", "paused", "stopped"
STATES = (STARTING, PLAYING, PAUSED, STOPPED)
# A report this close to a song's start (its first second, as players report a start after
# buffering) may begin a new listen of it (see above).
RESTART_WITHIN_MS = 1_000
PLAYBACK_RATE_MAX = 16.0


@dataclass(frozen=True)
class Report:
    clip_id: uuid.UUID
    duration_s: float | None
    state: str
    position_ms: int
    playback_rate: float = 1.0
    ignore_scrobble: bool = False


def _starts_a_listen():
    """In the upsert: whether the incoming report (``EXCLUDED``) begins a new listen."""
    at_start = EXCLUDED.position_ms <= RESTART_WITHIN_MS
    restarted = (EXCLUDED.state == STARTING) | (
        (Listen.state == STOPPED) & (EXCLUDED.state != STOPPED)
    )
    return (Listen.clip_id != EXCLUDED.clip_id) | (at_start & restarted)


def _move(user_id: int, player: str, report: Report, now: dt.datetime):
    """The upsert that applies ``report`` to the player's listen (or starts one), returning
    the listen's generation and whether it has counted. Every ``SET`` reads the row as it
    was, so the new-listen test sees the previous song and state."""
    new = _starts_a_listen()
    fresh = {
        Listen.user_id: user_id,
        Listen.player: player,
        Listen.generation: 1,
        Listen.clip_id: report.clip_id,
        Listen.state: report.state,
        Listen.position_ms: report.position_ms,
        Listen.playback_rate: report.playback_rate,
        Listen.started_at: now,
        Listen.reported_at: now,
        Listen.counted: False,
    }
    moved = {
        Listen.generation: Case(None, [(new, Listen.generation + 1)], Listen.generation),
        Listen.counted: Case(None, [(new, False)], Listen.counted),
        Listen.started_at: Case(None, [(new, EXCLUDED.started_at)], Listen.started_at),
    }
    for column in (Listen.clip_id, Listen.state, Listen.position_ms, Listen.playback_rate):
        moved[column] = getattr(EXCLUDED, column.column_name)
    moved[Listen.reported_at] = EXCLUDED.reported_at
    return (
        Listen.insert(fresh)
        .on_conflict(conflict_target=[Listen.user_id, Listen.player], update=moved)
        .returning(Listen.generation, Listen.counted)
    )


class PlaybackReports:
    def __init__(self, *, db, plays: PlayRecorder, listening: Listening) -> None:
        self._db = db
        self._plays = plays
        self._listening = listening

    async def report(self, user: User, player: str, report: Report) -> bool:
        """Apply ``user``'s report from ``player``; True when it counted a play."""
        await self._listening.playing(user.id, player, report.clip_id)
        rows = await self._db.aio_execute(_move(user.id, player, report, utcnow()).tuples())
        generation, counted = list(rows)[0]
        if counted or report.ignore_scrobble:
            return False
        if not reaches_a_play(report.position_ms, report.duration_s):
            return False
        if not await self._claim(user.id, player, generation, True):
            return False  # another report of this listen counted it
        try:
            return await self._plays.record(report.clip_id, user)
        except Exception:
            await self._claim(user.id, player, generation, False)  # a later report may count
            raise

    async def _claim(self, user_id: int, player: str, generation: int, claim: bool) -> bool:
        """Mark the listen ``generation`` counted (``claim``) or not; whether this changed
        it: of the reports that try at once, one alone finds it unclaimed."""
        changed = await self._db.aio_execute(
            Listen.update(counted=claim).where(
                (Listen.user_id == user_id)
                & (Listen.player == player)
                & (Listen.generation == generation)
                & (Listen.counted == (not claim))
            )
        )
        return changed == 1


def estimated_position_ms(
    state: str, position_ms: int, rate: float, reported_at: dt.datetime, now: dt.datetime
) -> int:
    """Where a player is now, from its last report: moving at ``rate`` while playing."""
    if state != PLAYING:
        return position_ms
    elapsed_ms = max(0.0, (now - reported_at).total_seconds() * 1000)
    return position_ms + int(elapsed_ms * rate)
