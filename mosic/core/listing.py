"""Listing clips (``GET /play``): one page, the caller's marks of its clips and the number of
matches, in one statement.

The page's SQL depends only on the query's shape (sort, which filters, cursor or offset), so
peewee builds it once per shape; each request only computes its parameters. Every filter and
the search go through an index, and the total comes from the music folders' counts when only
folder filters apply, so no request reads every clip (``offset`` deep into a list costs what
it skips; ``cursor`` never does).
"""

from __future__ import annotations

import collections
import datetime as dt
from dataclasses import dataclass

import peewee
from peewee import JOIN, SQL, NodeList, fn

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
    Rating,
    Star,
    UserPlay,
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

# A page's rows are plain tuples of these columns, in this order: the listed fields, the
# caller's marks of the clip, and the count of matches. The id comes as its text
# ("1b4e28ba-2fa1-..."), which is what a clip object shows, and times UTC-aware, which a JSON
# encoder writes with their "Z" as they come. The driver's uuid.UUID per row, and a Decimal
# per row for the count (a SUM is numeric on PostgreSQL), were two thirds of reading a
# 500-row page; datetime.replace(tzinfo=...) per row as long as the rest of making its JSON
# (bench/ab_lists.py).
LISTED_COLUMNS = tuple(field.name for field in LISTED_FIELDS)
MARK_COLUMNS = ("my_play_count", "my_last_played_at", "starred", "rating")
ListedRow = collections.namedtuple("ListedRow", [*LISTED_COLUMNS, *MARK_COLUMNS, "matches"])
_CREATED = LISTED_COLUMNS.index("created_at")
_PLAYED_AT = len(LISTED_COLUMNS) + MARK_COLUMNS.index("my_last_played_at")
_STARRED = len(LISTED_COLUMNS) + MARK_COLUMNS.index("starred")

# The caller's marks, joined to each row by their tables' keys, (user, clip) and (user, item),
# so the page needs no second statement: a second one was a round trip more, and the await
# for it kept the page's rows alive while other requests ran, so collections of the young
# generation walked them (with the round trip, a sixth of a page's server time;
# bench/ab_lists.py).
_PLAY = UserPlay.alias("my_play")
_STAR = Star.alias("my_star")
_RATING = Rating.alias("my_rating")
_MARKS = (_PLAY, _STAR, _RATING)

_UUID_GROUPS = ((1, 8), (9, 4), (13, 4), (17, 4), (21, 12))


def _id_text(db):
    """The clip's id as text, with its dashes: PostgreSQL's cast writes them; SQLite keeps a
    UUID as its 32 hex digits (peewee's UUIDField), so they are put in (8-4-4-4-12)."""
    if db.rows_are_typed:
        return Clip.id.cast("TEXT")
    parts = [fn.substr(Clip.id, SQL(str(at)), SQL(str(n))) for at, n in _UUID_GROUPS]
    dashed = [node for part in parts for node in (part, SQL("'-'"))][:-1]
    return NodeList(dashed, glue=" || ", parens=True)


def _utc(db, column):
    """A stored (naive UTC) time as the rows carry it: on PostgreSQL a timestamptz, which
    psycopg makes aware of UTC itself (its sessions are in UTC); SQLite's text is converted
    in ``_typed``."""
    if not db.rows_are_typed:
        return column
    return NodeList((column, SQL("AT TIME ZONE 'UTC'")), parens=True)


def _selected(db) -> tuple:
    """What a page selects, but for the count: its columns (``ListedRow``)."""
    typed = {Clip.id: _id_text(db), Clip.created_at: _utc(db, Clip.created_at)}
    listed = [typed.get(field, field) for field in LISTED_FIELDS]
    marks = (
        fn.COALESCE(_PLAY.play_count, SQL("0")),
        _utc(db, _PLAY.last_played_at),
        _STAR.user_id.is_null(False),
        fn.COALESCE(_RATING.rating, SQL("0")),
    )
    return (*listed, *marks)


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
    # Whose marks (plays, star, rating) the rows carry: the caller's; none for None.
    user_id: int | None = None

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
    rows: list  # ListedRow's columns, as tuples
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
        """One page, its caller's marks and the number of clips that match, in one
        statement: the count is a scalar subquery, which both databases evaluate once."""
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
    """A SQLite row as PostgreSQL's come: times as UTC-aware datetimes, the star a bool."""
    values = list(row)
    values[_CREATED] = _aware(values[_CREATED])
    if values[_PLAYED_AT] is not None:
        values[_PLAYED_AT] = _aware(values[_PLAYED_AT])
    values[_STARRED] = bool(values[_STARRED])
    return tuple(values)


def _aware(text: str) -> dt.datetime:
    """SQLite's text of a stored time, read as peewee's DateTimeField reads it, UTC-aware."""
    return _TIME.python_value(text).replace(tzinfo=dt.UTC)


_TIME = peewee.DateTimeField()


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
    """A page of ``query``, its caller's marks and the number of clips that match, as a
    peewee query.

    A list walks its sort's index and stops at the page's end, joining the marks as it
    goes. A search cannot: it sorts all its matches (a common word's thousands at a million
    clips), so the page's ids are chosen first and only their rows read and joined to the
    marks. For a list, that shape cost PostgreSQL a third of its rate."""
    column = SORT_FIELDS[query.sort_field]
    order = (column.desc(), Clip.id.desc()) if query.descending else (column, Clip.id)
    if query.words:
        ids = _cut(_filtered(db, Clip.select(Clip.id), query), query, column, order)
        page = ids.alias("page")
        rows = Clip.select(*_selected(db), _matches(db, query)).join(page, on=Clip.id == page.c.id)
        return _with_marks(db, rows, query.user_id).order_by(*order)
    rows = _with_marks(db, Clip.select(*_selected(db), _matches(db, query)), query.user_id)
    return _cut(_filtered(db, rows, query), query, column, order)


def _cut(rows, query: ListQuery, column, order):
    """``rows`` sorted, from the cursor or offset, one more than the page."""
    rows = rows.order_by(*order)
    if query.cursor:
        key = peewee.Tuple(column, Clip.id)
        after = peewee.Tuple(*_cursor_params(query, column))
        rows = rows.where(key < after if query.descending else key > after)
    if query.offset:
        rows = rows.offset(query.offset)
    return rows.limit(query.limit + 1)


def _with_marks(db, rows, user_id: int | None):
    """``rows`` with the user's marks of each clip joined, each join with the user as its
    one parameter (in the order of ``_MARKS``): none match for None (= NULL), so the
    statement is the same with or without a user."""
    item = _id_text(db)  # stars and ratings name a clip by its id's text
    same_clip = {_PLAY: _PLAY.clip_id == Clip.id, _STAR: _STAR.item_id == item}
    same_clip[_RATING] = _RATING.item_id == item
    user = peewee.Value(user_id)  # peewee writes "== None" as IS NULL, with no parameter
    for mark in _MARKS:
        rows = rows.join_from(
            Clip, mark, JOIN.LEFT_OUTER, on=(mark.user_id == user) & same_clip[mark]
        )
    return rows


def _page_params(db, query: ListQuery) -> list:
    """The count's parameters (a column, so first), then the user's for the marks' joins
    and those of the page's cut (filters, cursor, limit, offset); for a search the cut's
    first, as its subquery comes before the joins in ``_page_query``'s SQL."""
    cut = _filter_params(db, query)
    if query.cursor:
        cut += _cursor_params(query, SORT_FIELDS[query.sort_field])
    cut.append(query.limit + 1)
    if query.offset:
        cut.append(query.offset)
    marks = [query.user_id] * len(_MARKS)
    return _matches_params(db, query) + (cut + marks if query.words else marks + cut)


def _cursor_params(query: ListQuery, column) -> list:
    value, last_id = decode_cursor(query.cursor, query.sort)
    # Tuple members are not converted by their fields, so convert them here.
    return [column.db_value(value), Clip.id.db_value(last_id)]
