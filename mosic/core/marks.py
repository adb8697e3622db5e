"""A user's marks of clips for the REST clip object: its own plays, its star and its rating.

Read in one statement for the clips asked at once (one clip's object each, gathered), whatever
the user has played or starred. A list page's come joined to its rows (mosic.core.listing).
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

import peewee

from mosic.persistence.compiled import Coalesced

_TIME = peewee.DateTimeField()  # converts SQLite's text times (PostgreSQL's come typed)


@dataclass(frozen=True)
class ClipMarks:
    my_play_count: int = 0
    my_last_played_at: dt.datetime | None = None
    starred: bool = False
    rating: int = 0


UNMARKED = ClipMarks()

# The clips' ids travel as one bytea of 16 bytes each, cut and cast by the server (and made
# text again for the stars and ratings, which name items by text). Formatting 500 ids in
# Python, or psycopg dumping a list of them one by one, was most of what this cost a 500-row
# page (bench/ab_lists.py --profile); one text cut by substr was 15-40 ms of the server's time
# (substr walks a text's characters), a bytea cut by substring 0.3 ms.
POSTGRES_SQL = (
    "WITH ids AS (SELECT CAST(encode(substring(%s FROM n * 16 + 1 FOR 16), 'hex') AS uuid) AS id"
    " FROM generate_series(0, length(%s) / 16 - 1) AS n)"
    " SELECT 'p', CAST(clip_id AS TEXT), play_count, last_played_at FROM user_play"
    " WHERE user_id = %s AND clip_id IN (SELECT id FROM ids)"
    " UNION ALL SELECT 's', item_id, NULL, starred_at FROM user_star"
    " WHERE user_id = %s AND item_id IN (SELECT CAST(id AS TEXT) FROM ids)"
    " UNION ALL SELECT 'r', item_id, rating, NULL FROM user_rating"
    " WHERE user_id = %s AND item_id IN (SELECT CAST(id AS TEXT) FROM ids)"
)


class Marks:
    """Reads a user's marks of clips. The statement's text is built once (on SQLite once per
    number of clips; peewee building it per request was most of a ``/stats`` read's time;
    bench/profiles), then run with fresh values through the driver, as
    ``mosic.persistence.compiled`` does."""

    def __init__(self, *, db) -> None:
        self._db = db
        self._postgres = db.rows_are_typed
        self._sql: dict[int, str] = {}
        # One clip's marks (GET /play/{id}, /stats) are read together with the others asked
        # in the same pass of the loop: one statement per user, not one per request.
        self._one = Coalesced(self.of, missing=UNMARKED)

    async def of_one(self, user_id: int, clip_id: uuid.UUID) -> ClipMarks:
        """The user's marks of one clip."""
        return await self._one.get(user_id, clip_id)

    async def of(self, user_id: int, clip_ids) -> dict[uuid.UUID, ClipMarks]:
        """The user's marks of ``clip_ids``; clips it never marked are left out."""
        ids = list(clip_ids)  # a repeated id is harmless in the statement, and not hashed
        if not ids:
            return {}
        if self._postgres:
            # One statement text for any number of clips: psycopg keeps it prepared, where
            # 1,500 placeholders were parsed again on every 500-row page (44 % of the page's
            # time; bench/ab_lists.py --profile).
            packed = bytes.fromhex(("%032x" * len(ids)) % tuple(clip_id.int for clip_id in ids))
            params = [packed, packed, user_id, user_id, user_id]
            rows = await self._db.fetch_rows(POSTGRES_SQL, params)
        else:
            item_ids = [str(clip_id) for clip_id in ids]  # stars and ratings name items by text
            params = [user_id, *(clip_id.hex for clip_id in ids), user_id, *item_ids]
            rows = await self._db.fetch_rows(self._sql_for(len(ids)), [*params, user_id, *item_ids])
        found: dict[uuid.UUID, dict] = {}
        for kind, clip_id, number, moment in rows:
            marks = found.setdefault(uuid.UUID(str(clip_id)), {})
            if kind == "p":
                marks["my_play_count"] = number
                marks["my_last_played_at"] = _TIME.python_value(moment)
            elif kind == "s":
                marks["starred"] = True
            else:
                marks["rating"] = number
        return {clip_id: ClipMarks(**marks) for clip_id, marks in found.items()}

    def _sql_for(self, count: int) -> str:
        """SQLite's statement for ``count`` clips (built once per count)."""
        sql = self._sql.get(count)
        if sql is None:
            mark = "?"
            clips = ", ".join([mark] * count)
            items = ", ".join([mark] * count)
            # Only placeholders are formatted in: every value travels as a parameter.
            sql = self._sql[count] = (
                "SELECT 'p', CAST(clip_id AS TEXT), play_count, last_played_at FROM user_play"  # noqa: S608
                f" WHERE user_id = {mark} AND clip_id IN ({clips})"
                " UNION ALL SELECT 's', item_id, NULL, starred_at FROM user_star"
                f" WHERE user_id = {mark} AND item_id IN ({items})"
                " UNION ALL SELECT 'r', item_id, rating, NULL FROM user_rating"
                f" WHERE user_id = {mark} AND item_id IN ({items})"
            )
        return sql
