"""Every shape of ``GET /play``'s statement against peewee: the listing builds a shape's SQL
once and computes each request's parameters itself, so a parameter in the wrong place would
be a wrong answer (or a refused request) the first time a client asked for that shape. Here
every shape is checked, on both databases' SQL, without a request.
"""

from __future__ import annotations

import datetime as dt
import itertools
import uuid
from types import SimpleNamespace

import pytest

from mosic.core import listing
from mosic.core.cursors import encode_cursor
from mosic.core.listing import ListQuery
from mosic.persistence.database import PostgresqlDatabase, SqliteDatabase

SORT_VALUES = {"created_at": dt.datetime(2026, 1, 2, 3, 4, 5), "title": "T", "play_count": 7}
SORT_VALUES["duration"] = 12.5
QUERIES = (None, "river", "ox", "river ox blue")  # long words, a short one, a mix


def _cursor(sort: str) -> str:
    last = SimpleNamespace(id=uuid.uuid4(), **{sort.lstrip("-"): SORT_VALUES[sort.lstrip("-")]})
    return encode_cursor(sort, last)


def _shapes():
    sorts = [s + f for f in listing.SORT_FIELDS for s in ("", "-")]
    tags = itertools.product((None, "Jazz"), repeat=len(listing.TEXT_FILTERS))
    filters = [dict(zip(listing.TEXT_FILTERS, values, strict=True)) for values in tags]
    for sort, q, tags, year, folder, source, paging in itertools.product(
        sorts, QUERIES, filters, (None, 1999), (None, "Music"), (None, *listing.SOURCES),
        ("first", "cursor", "offset"),
    ):  # fmt: skip
        yield ListQuery(
            limit=20, sort=sort, q=q, year=year, music_folder=folder, source=source,
            cursor=_cursor(sort) if paging == "cursor" else None,
            offset=40 if paging == "offset" else None, **tags,
        )  # fmt: skip


@pytest.mark.parametrize(
    "db",
    [SqliteDatabase(":memory:"), PostgresqlDatabase("mosic", host="127.0.0.1")],
    ids=["sqlite", "postgresql"],
)
def test_every_shape_computes_the_parameters_peewee_would(db):
    pages = listing.Listing(db=db)
    seen = set()
    for query in _shapes():
        # Raises AssertionError naming both lists when they differ (as a request would).
        sql, params = pages.statement(query)
        seen.add(sql)
        assert sql.count("?" if isinstance(db, SqliteDatabase) else "%s") == len(params)
    # The cache holds one text per shape (shapes may share a text), not one per request.
    assert pages.shapes_built >= len(seen) > 1000
