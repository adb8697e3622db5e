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
from mosic.core.keys import EVERY_FOLDER, Folders
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


# What a user may see: every folder, one, two, none (music_folder may narrow each).
SEEN = (EVERY_FOLDER, Folders.of(["Music"]), Folders.of(["Music", "Uploads"]), Folders.of([]))
DATABASES = pytest.mark.parametrize(
    "db",
    [SqliteDatabase(":memory:"), PostgresqlDatabase("mosic", host="127.0.0.1")],
    ids=["sqlite", "postgresql"],
)


def _seen_shapes():
    for sort, q, seen, folder, source, paging in itertools.product(
        ("-created_at", "title"), QUERIES[:2], SEEN, (None, "Music", "Other"),
        (None, *listing.SOURCES), ("first", "cursor", "offset"),
    ):  # fmt: skip
        yield ListQuery(
            limit=20, sort=sort, q=q, music_folder=folder, source=source, seen=seen,
            cursor=_cursor(sort) if paging == "cursor" else None,
            offset=40 if paging == "offset" else None, genre="Jazz" if q else None,
        )  # fmt: skip


@DATABASES
def test_every_shape_of_a_users_folders_computes_the_parameters_peewee_would(db):
    pages = listing.Listing(db=db)
    for query in _seen_shapes():
        sql, params = pages.statement(query)
        assert sql.count("?" if isinstance(db, SqliteDatabase) else "%s") == len(params)
        names = query.folders.names
        # The folders listed are the ones seen, narrowed (to none, for a folder not seen).
        if names is None:
            assert not {"Music", "Other"} & set(params)
        elif not names:
            assert "0 = 1" in sql
        else:
            assert all(name in params for name in names)
            assert "Other" not in params or query.seen is EVERY_FOLDER


@DATABASES
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
