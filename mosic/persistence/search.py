"""Substring search through an index: every word a case-insensitive substring of a row's
``search_text`` (stored case-folded).

SQLite answers from an FTS5 table with the trigram tokenizer (``<table>_fts``), PostgreSQL
from a pg_trgm GIN index on the column itself (migration 0004). A trigram index needs words
of three characters or more; shorter words are checked on the rows the longer ones found,
and a query of short words alone reads every row (documented in the README).
"""

from __future__ import annotations

import peewee

TRIGRAM = 3


def words(query: str | None) -> list[str]:
    return (query or "").casefold().split()


def like_pattern(word: str) -> str:
    escaped = word.replace("!", "!!").replace("%", "!%").replace("_", "!_")
    return f"%{escaped}%"


def _like(column, word: str):
    return peewee.NodeList(
        (column, peewee.SQL("LIKE"), like_pattern(word), peewee.SQL("ESCAPE '!'"))
    )


def fts_query(found: list[str]) -> str:
    """An FTS5 query that asks for every word as a substring (a quoted phrase each)."""
    return " ".join('"' + word.replace('"', '""') + '"' for word in found)


def contains_all(db, model: type[peewee.Model], found: list[str]):
    """The condition "every word of ``found`` is in ``model``'s search_text", or None when
    there is no word. Its parameters, in order: ``params(db, found)``."""
    if not found:
        return None
    column = model.search_text
    condition = None
    if getattr(db, "full_text", None) == "fts5" and any(len(w) >= TRIGRAM for w in found):
        # The table name is the model's own, never input; the words are a parameter. The
        # rowid is the model's, named by its alias in the query (a list page joins other
        # tables, where a bare rowid names none).
        table = model._meta.table_name
        long_words = [w for w in found if len(w) >= TRIGRAM]
        matched = peewee.SQL(
            f'IN (SELECT rowid FROM "{table}_fts" WHERE "{table}_fts" MATCH ?)',  # noqa: S608
            [fts_query(long_words)],
        )
        condition = peewee.NodeList((peewee.Column(model, "rowid"), matched))
    for word in found:
        like = _like(column, word)
        condition = like if condition is None else condition & like
    return condition


def params(db, found: list[str]) -> list:
    """The parameters of ``contains_all(db, model, found)``, in the order of its SQL."""
    if not found:
        return []
    head = []
    if getattr(db, "full_text", None) == "fts5" and any(len(w) >= TRIGRAM for w in found):
        head = [fts_query([w for w in found if len(w) >= TRIGRAM])]
    return head + [like_pattern(word) for word in found]


SEARCHED = ("clip", "library_album", "library_artist")


async def rebuild(db) -> None:
    """Rebuild the search index from the rows (SQLite's FTS tables: after a VACUUM, which may
    renumber the rowids they point at); PostgreSQL's indexes follow their tables."""
    if getattr(db, "full_text", None) != "fts5":
        return
    for table in SEARCHED:
        # Names from SEARCHED, never input.
        await db.aio_execute_sql(f"INSERT INTO {table}_fts({table}_fts) VALUES ('rebuild')")  # noqa: S608
