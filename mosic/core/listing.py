"""Listing clips (``GET /play``): one page and the number of matches, in one statement.

The page's SQL depends only on the query's shape (sort, which filters, cursor or offset), so
peewee builds it once per shape; each request only computes its parameters. Every filter and
the search go through an index, and the total comes from the music folders' counts when only
folder filters apply, so no request reads every clip (``offset`` deep into a list costs what
it skips; ``cursor`` never does).
"""

from __future__ import annotations

import collections
import uuid
from dataclasses import dataclass

import peewee
from peewee import SQL, fn

from mosic.core.aggregates import visible
from mosic.core.cursors import decode_cursor, encode_cursor
from mosic.core.keys import EVERY_FOLDER, Folders
from mosic.persistence import search
from mosic.persistence.models import (
    LIBRARY,
    LISTED_FIELDS,
    UPLOAD,
    UPLOADS,
    Clip,
    MusicFolder,
)

# Sort keys a client may ask for; "-" means descending. Each maps to a non-null column, and
# the id breaks ties so pages never overlap or skip.
SORT_FIELDS = {
    "created_at": Clip.created_at,
    "title": Clip.title,
    "play_count": Clip.play_count,
    "duration": Clip.duration,
}
DEFAULT_SORT = "-created_at"
# Exact, case-insensitive filters of a listing: each name maps to its case-folded column.
TEXT_FILTERS = {"genre": Clip.genre_key, "artist": Clip.artist_key, "album": Clip.album_key}
SOURCES = (UPLOAD, LIBRARY)

# A page's rows are plain tuples of these columns, in this order, then the count of matches;
# the id as its text ("1b4e28ba-2fa1-..."), which is what a clip object shows. The driver's
# uuid.UUID per row, and a Decimal per row for the count (a SUM is numeric on PostgreSQL),
# were two thirds of reading a 500-row page (bench/ab_lists.py).
LISTED_COLUMNS = tuple(field.name for field in LISTED_FIELDS)
ListedRow = collections.namedtuple("ListedRow", [*LISTED_COLUMNS, "matches"])
_SELECTED = tuple(f.cast("TEXT") if f is Clip.id else f for f in LISTED_FIELDS)
_CREATED = LISTED_COLUMNS.index("created_at")
_TIME = Clip.created_at  # converts SQLite's text times (PostgreSQL's come typed)


@dataclass(frozen=True)
class ListQuery:
    limit: int = 100
    offset: int | None = None
    cursor: str | None = None
    q: str | None = None
    sort: str = DEFAULT_SORT
    genre: str | None = None
    artist: str | None = None
    album: str | None = None
    year: int | None = None
    music_folder: str | None = None
    source: str | None = None
    # The folders the caller sees: a clip of another is not listed, nor counted.
    seen: Folders = EVERY_FOLDER

    @property
    def folders(self) -> Folders:
        """The folders listed: those seen, narrowed to ``music_folder`` when it is given (to
        none when it is not one of them, as for a folder that does not exist)."""
        return self.seen.narrowed(self.music_folder)

    @property
    def sort_field(self) -> str:
        return self.sort.lstrip("-")

    @property
    def descending(self) -> bool:
        return self.sort.startswith("-")

    @property
    def words(self) -> list[str]:
        return search.words(self.q)

    @property
    def counted_by_folders(self) -> bool:
        """Whether the total is a sum of folder counts: no filter but folder and source."""
        narrowed = [getattr(self, name) for name in TEXT_FILTERS] + [self.year]
        return not self.words and all(value is None for value in narrowed)


@dataclass
class Page:
    rows: list  # tuples of LISTED_COLUMNS (the id as text), each ending with the count
    total: int
    next_offset: int | None = None
    next_cursor: str | None = None


def filter_keys(fields: dict) -> dict:
    """The case-folded columns the exact filters of a listing compare with."""
    return {
        f"{name}_key": fields[name].casefold() if fields.get(name) else None
        for name in TEXT_FILTERS
    }


class Listing:
    def __init__(self, *, db) -> None:
        self._db = db
        self._page_sql: dict[tuple, str] = {}

    async def list(self, query: ListQuery) -> Page:
        """One page, and the number of clips that match, in one statement: the count is a
        scalar subquery, which both databases evaluate once."""
        sql, params = self.statement(query)
        rows = await self._db.fetch_rows(sql, params)
        if not self._db.rows_are_typed:
            rows = [_typed(row) for row in rows]
        # Past the last page there is no row to carry the count.
        total = rows[0][-1] if rows else await self._total(query)
        page = Page(rows=rows[: query.limit], total=int(total or 0))
        if len(rows) > query.limit:
            if query.offset is not None:
                page.next_offset = query.offset + query.limit
            else:
                page.next_cursor = encode_cursor(query.sort, ListedRow._make(page.rows[-1]))
        return page

    @property
    def shapes_built(self) -> int:
        """How many shapes' SQL has been built (once each)."""
        return len(self._page_sql)

    async def _total(self, query: ListQuery) -> int:
        return await _matches(self._db, query).aio_scalar(self._db) or 0

    def statement(self, query: ListQuery) -> tuple[str, list]:
        """The page's SQL and parameters, the text built once per shape and checked against
        peewee's parameters the first time each shape is seen."""
        shape = (
            query.sort,
            tuple(len(word) >= search.TRIGRAM for word in query.words),
            tuple(name for name in TEXT_FILTERS if getattr(query, name) is not None),
            query.year is not None,
            # None (every folder), else how many: IN (?, ?, ...) has one parameter each.
            None if query.folders.names is None else len(query.folders.names),
            query.source,
            bool(query.cursor),
            bool(query.offset),
        )
        params = _page_params(self._db, query)
        sql = self._page_sql.get(shape)
        if sql is None:
            sql, built = self._db.get_sql_context().sql(_page_query(self._db, query)).query()
            if built != params:
                raise AssertionError(f"list parameters {params} are not peewee's {built}")
            self._page_sql[shape] = sql
        return sql, params


def _typed(row: tuple) -> tuple:
    """A SQLite row as PostgreSQL's come: the id as its canonical text (SQLite keeps the hex
    digits alone), the time as a datetime."""
    values = list(row)
    values[0] = str(uuid.UUID(values[0]))
    values[_CREATED] = _TIME.python_value(values[_CREATED])
    return tuple(values)


# -- the statement and its parameters, in the order of its SQL text -------------------------
def _filtered(db, base, query: ListQuery):
    base = base.where(visible())
    found = search.contains_all(db, Clip, query.words)
    if found is not None:
        base = base.where(found)
    for name, column in TEXT_FILTERS.items():
        if getattr(query, name) is not None:
            base = base.where(column == getattr(query, name).casefold())
    if query.year is not None:
        base = base.where(Clip.year == query.year)
    return _by_folder(base, query, Clip.music_folder)


def _by_folder(base, query: ListQuery, column):
    names = query.folders.names
    if names is not None:
        # One folder is an equality, as before folders were per user: the same index path.
        base = base.where(column == names[0] if len(names) == 1 else column.in_(names))
    if query.source == UPLOAD:
        base = base.where(column == UPLOADS)
    elif query.source == LIBRARY:
        base = base.where(column != UPLOADS)
    return base


def _filter_params(db, query: ListQuery) -> list:
    values = search.params(db, query.words)
    values += [getattr(query, n).casefold() for n in TEXT_FILTERS if getattr(query, n) is not None]
    if query.year is not None:
        values.append(query.year)
    return values + _folder_params(query)


def _folder_params(query: ListQuery) -> list:
    names = query.folders.names
    values = list(names) if names is not None else []
    return values + ([UPLOADS] if query.source is not None else [])


def _matches(db, query: ListQuery):
    """The number of clips that match: the folders' counts when only folders narrow the
    list (no clip row read), else a count over the indexed filters."""
    if query.counted_by_folders:
        # A bigint, as COUNT is: PostgreSQL's SUM of bigints is a numeric (a Decimal each).
        folders = MusicFolder.select(fn.SUM(MusicFolder.clips).cast("BIGINT"))
        return _by_folder(folders, query, MusicFolder.name)
    return _filtered(db, Clip.select(fn.COUNT(SQL("*"))), query)


def _matches_params(db, query: ListQuery) -> list:
    return _folder_params(query) if query.counted_by_folders else _filter_params(db, query)


def _page_query(db, query: ListQuery):
    """A page of ``query`` and its count of matches, as a peewee query."""
    column = SORT_FIELDS[query.sort_field]
    order = (column.desc(), Clip.id.desc()) if query.descending else (column, Clip.id)
    rows = _filtered(db, Clip.select(*_SELECTED, _matches(db, query)), query)
    rows = rows.order_by(*order)
    if query.cursor:
        key = peewee.Tuple(column, Clip.id)
        after = peewee.Tuple(*_cursor_params(query, column))
        rows = rows.where(key < after if query.descending else key > after)
    if query.offset:
        rows = rows.offset(query.offset)
    return rows.limit(query.limit + 1)


def _page_params(db, query: ListQuery) -> list:
    """The count's parameters (a column, so first), the filters, the cursor, limit, offset."""
    params = _matches_params(db, query) + _filter_params(db, query)
    if query.cursor:
        params += _cursor_params(query, SORT_FIELDS[query.sort_field])
    params.append(query.limit + 1)
    if query.offset:
        params.append(query.offset)
    return params


def _cursor_params(query: ListQuery, column) -> list:
    value, last_id = decode_cursor(query.cursor, query.sort)
    # Tuple members are not converted by their fields, so convert them here.
    return [column.db_value(value), Clip.id.db_value(last_id)]
