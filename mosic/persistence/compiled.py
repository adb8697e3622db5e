"""Queries whose SQL text is built once, then run with fresh values, and rows as plain records.

peewee turns a query object into SQL on every execution, and peewee-async then builds a model
object per row through a cursor wrapper. For the single-row read behind ``GET /play/{id}`` and
``/stats`` those two were three quarters of the database time (bench/profiles). Here the text
is built once per database, the rows come back as tuples (``fetch_rows`` of the databases in
mosic.persistence.database) and become records: slotted dataclasses with the model's fields as
attributes, converted by the same fields as peewee would where the driver returned text (SQLite's
ids and times; psycopg returns them typed).
"""

from __future__ import annotations

import asyncio
import collections
import copy
import dataclasses
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import peewee


def record_type(model: type[peewee.Model], **members: Any) -> type:
    """A slotted dataclass named ``<Model>Record`` with every field of ``model`` in column
    order (positional, as rows come), and ``members`` (properties shared with the model)."""
    names = [field.name for field in model._meta.sorted_fields]
    return dataclasses.make_dataclass(
        f"{model.__name__}Record", names, slots=True, namespace=members
    )


def row_type(model: type[peewee.Model], fields: Sequence[peewee.Field], *trailing: str) -> type:
    """A read-only record of ``fields`` and the ``trailing`` columns a row has after them (a
    list's count of matches): a named tuple, which ``Records`` makes from a whole row with no
    Python call (a dataclass's ``__init__`` per row was 8 % of a 500-row page)."""
    return collections.namedtuple(f"{model.__name__}Row", [f.name for f in fields] + [*trailing])


class Records:
    """Turns rows of ``fields`` (in that order) into ``record`` instances: dataclasses from
    ``record_type`` (given the fields' values), or named tuples from ``row_type`` (given the
    whole row)."""

    def __init__(self, record: type, fields: Sequence[peewee.Field]) -> None:
        self._record = record
        self._width = len(fields)
        self._whole_rows = issubclass(record, tuple)
        # Only the columns a driver may return raw (ids, times) pass through their field.
        self._convert = [
            (i, convert) for i, field in enumerate(fields) if (convert := _converter(field))
        ]

    def __call__(self, rows: Sequence[Sequence[Any]], *, typed: bool = False) -> list:
        """``typed``: the driver returned every value as its Python type already (the
        database's ``rows_are_typed``), so no value needs its field's conversion."""
        if not typed and self._convert:
            rows = [self._converted(row) for row in rows]
        make = self._record
        if self._whole_rows:
            if rows and len(rows[0]) != len(make._fields):
                raise ValueError(
                    f"{make.__name__} has {len(make._fields)} columns, not {len(rows[0])}"
                )
            new = tuple.__new__
            return [new(make, row) for row in rows]
        # A call per row, none per value: a third of turning a 500-row page into records. A
        # row may carry more after the fields (a list's count of matches).
        width = self._width
        return [make(*row[:width]) for row in rows]

    def _converted(self, row: Sequence[Any]) -> list:
        values = list(row)
        for i, python_value in self._convert:
            values[i] = python_value(values[i])
        return values


_DRIVER_TYPED = (peewee.CharField, peewee.TextField, peewee.IntegerField, peewee.FloatField)


def _converter(field: peewee.Field) -> Callable[[Any], Any] | None:
    # Text and numbers arrive as Python values from both drivers: skip the call per value.
    if isinstance(field, _DRIVER_TYPED):
        return None
    return field.python_value


class CompiledQuery:
    """``query`` compiled for ``db``, its rows returned as ``records`` make them (so it must
    select or return exactly their fields, in order). ``slots`` name the values that change
    per call, each as (field, the placeholder value the query was built with)."""

    def __init__(self, db, query, records: Records, **slots: tuple[Any, Any]) -> None:
        self._db = db
        self._records = records
        self.sql, params = db.get_sql_context().sql(query).query()
        by_value = {field.db_value(dummy): (name, field) for name, (field, dummy) in slots.items()}
        self._params = [by_value.get(value, (None, value)) for value in params]
        if len({name for name, _ in self._params if name}) != len(slots):
            raise ValueError(f"each slot needs its own placeholder value in {self.sql}")

    async def run(self, **values: Any) -> list:
        params = [field.db_value(values[name]) if name else field for name, field in self._params]
        rows = await self._db.fetch_rows(self.sql, params)
        return self._records(rows, typed=self._db.rows_are_typed)


class BatchedLookup:
    """Reads of one row by key, coalesced: the keys asked for while the event loop runs one
    pass are read by one statement (``WHERE key IN (...)``), so under load many concurrent
    reads cost one round trip, one pooled connection and one cursor instead of one each
    (those were over half of a ``GET /play/{id}`` at 64 connections; bench/profiles).

    Nothing is cached: the statement runs after every read in it was asked for, so each sees
    the database as of then, as its own statement would. Not for reads inside a transaction
    (the statement runs on a connection of its own). Each caller gets its own record, as
    callers may change theirs."""

    def __init__(self, db, query, key: peewee.Field, records: Records, most: int = 64) -> None:
        self._db = db
        self._query = query
        self._key = key
        self._records = records
        self._most = most
        self._sql: dict[int, str] = {}
        self._waiting: dict[Any, list[asyncio.Future]] = {}
        self._running: set[asyncio.Task] = set()
        # Reads served and statements run, for a look at how much is coalesced.
        self.reads = self.statements = 0

    async def get(self, key: Any) -> Any:
        """The record whose key is ``key``, or None when there is none."""
        loop = asyncio.get_running_loop()
        if not self._waiting:
            loop.call_soon(self._flush)
        future = loop.create_future()
        self._waiting.setdefault(key, []).append(future)
        self.reads += 1
        if len(self._waiting) >= self._most:
            self._flush()
        return await future

    def _flush(self) -> None:
        waiting, self._waiting = self._waiting, {}
        if waiting:
            task = asyncio.create_task(self._read(waiting))
            self._running.add(task)  # the loop keeps only weak references to tasks
            task.add_done_callback(self._running.discard)

    async def _read(self, waiting: dict[Any, list[asyncio.Future]]) -> None:
        keys = list(waiting)
        self.statements += 1
        try:
            params = [self._key.db_value(key) for key in keys]
            rows = await self._db.fetch_rows(self._sql_for(len(keys)), params)
        except Exception as exc:
            for future in _pending(waiting):
                future.set_exception(_own_copy(exc))
            return
        except BaseException:  # cancelled (the worker stops): so are its readers
            for future in _pending(waiting):
                future.cancel()
            raise
        name = self._key.name
        found = {getattr(r, name): r for r in self._records(rows, typed=self._db.rows_are_typed)}
        for key, futures in waiting.items():
            record = found.get(key)
            for i, future in enumerate(futures):
                if not future.done():  # its caller may have gone
                    future.set_result(record if i == 0 or record is None else copy.copy(record))

    def _sql_for(self, size: int) -> str:
        sql = self._sql.get(size)
        if sql is None:
            # Built once per batch size; the key values are the statement's only parameters.
            dummies = [_dummy(self._key, i + 1) for i in range(size)]
            query = self._query.where(self._key.in_(dummies))
            sql, params = self._db.get_sql_context().sql(query).query()
            if len(params) != size:
                raise ValueError(f"the query must take no parameters of its own: {sql}")
            self._sql[size] = sql
        return sql


def _dummy(key: peewee.Field, n: int) -> Any:
    """The ``n``-th stand-in key a statement is built with (its own value, so each is a
    parameter of its own)."""
    return uuid.UUID(int=n) if isinstance(key, peewee.UUIDField) else f"key-{n}"


def _pending(waiting: dict[Any, list[asyncio.Future]]) -> list[asyncio.Future]:
    return [f for futures in waiting.values() for f in futures if not f.done()]


def _own_copy(exc: Exception) -> Exception:
    """A copy of ``exc`` for one waiter: one exception raised in several tasks would collect
    all their tracebacks."""
    try:
        mine = copy.copy(exc)
    except Exception:
        return exc
    mine.__cause__ = exc.__cause__ or exc
    return mine


class Coalesced:
    """Single reads gathered over one pass of the event loop into one call of
    ``read_many(group, keys)`` per group, as ``BatchedLookup`` does for one statement: under
    load, many concurrent one-row reads cost one round trip instead of one each. A read's
    answer is ``read_many``'s value for its key, or ``missing``. Nothing is cached."""

    def __init__(self, read_many, missing: Any = None, most: int = 64) -> None:
        self._read_many = read_many
        self._missing = missing
        self._most = most
        self._waiting: dict[Any, dict[Any, list[asyncio.Future]]] = {}
        self._count = 0
        self._running: set[asyncio.Task] = set()

    async def get(self, group: Any, key: Any) -> Any:
        loop = asyncio.get_running_loop()
        if not self._waiting:
            loop.call_soon(self._flush)
        future = loop.create_future()
        self._waiting.setdefault(group, {}).setdefault(key, []).append(future)
        self._count += 1
        if self._count >= self._most:
            self._flush()
        return await future

    def _flush(self) -> None:
        waiting, self._waiting, self._count = self._waiting, {}, 0
        for group, keys in waiting.items():
            task = asyncio.create_task(self._read(group, keys))
            self._running.add(task)  # the loop keeps only weak references to tasks
            task.add_done_callback(self._running.discard)

    async def _read(self, group: Any, waiting: dict[Any, list[asyncio.Future]]) -> None:
        try:
            found = await self._read_many(group, list(waiting))
        except Exception as exc:
            for future in _pending(waiting):
                future.set_exception(_own_copy(exc))
            return
        except BaseException:  # cancelled (the worker stops): so are its readers
            for future in _pending(waiting):
                future.cancel()
            raise
        for key, futures in waiting.items():
            for future in futures:
                if not future.done():  # its caller may have gone
                    future.set_result(found.get(key, self._missing))
