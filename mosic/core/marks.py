"""A user's marks of clips for the REST clip object: its own plays, its star and its rating.

Read in one statement for the clips of one answer (a page of a list, or one clip), so a page
costs one round trip more, whatever the user has played or starred.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

import peewee

from mosic.persistence.models import Rating, Star, UserPlay

_TIME = peewee.DateTimeField()  # converts SQLite's text times (PostgreSQL's come typed)


@dataclass(frozen=True)
class ClipMarks:
    my_play_count: int = 0
    my_last_played_at: dt.datetime | None = None
    starred: bool = False
    rating: int = 0


UNMARKED = ClipMarks()


class Marks:
    def __init__(self, *, db) -> None:
        self._db = db

    async def of(self, user_id: int, clip_ids) -> dict[uuid.UUID, ClipMarks]:
        """The user's marks of ``clip_ids``; clips it never marked are left out."""
        ids = list(set(clip_ids))
        if not ids:
            return {}
        item_ids = [str(clip_id) for clip_id in ids]  # stars and ratings name items by text
        plays = UserPlay.select(
            peewee.Value("p"),
            UserPlay.clip_id.cast("text"),
            UserPlay.play_count,
            UserPlay.last_played_at,
        ).where((UserPlay.user_id == user_id) & UserPlay.clip_id.in_(ids))
        stars = Star.select(
            peewee.Value("s"), Star.item_id, peewee.Value(None), Star.starred_at
        ).where((Star.user_id == user_id) & Star.item_id.in_(item_ids))
        ratings = Rating.select(
            peewee.Value("r"), Rating.item_id, Rating.rating, peewee.Value(None)
        ).where((Rating.user_id == user_id) & Rating.item_id.in_(item_ids))
        rows = await self._db.aio_execute((plays + stars + ratings).tuples())
        found: dict[uuid.UUID, dict] = {}
        for kind, clip_id, number, moment in rows:
            marks = found.setdefault(uuid.UUID(clip_id), {})
            if kind == "p":
                marks["my_play_count"] = number
                marks["my_last_played_at"] = _TIME.python_value(moment)
            elif kind == "s":
                marks["starred"] = True
            else:
                marks["rating"] = number
        return {clip_id: ClipMarks(**marks) for clip_id, marks in found.items()}
