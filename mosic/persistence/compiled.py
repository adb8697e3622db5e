"""Queries whose SQL text is built once, then run with fresh values, and rows as plain records.

peewee turns a query object into SQL on every execution, and peewee-async then builds a model
object per row through a cursor wrapper. For the single-row read behind ``GET /play/{id}`` and
``/stats`` those two were three quarters of the database time (bench/profiles). Here the text
is built once per database, the rows come back as tuples (``fetch_rows`` of the databases in
mosic.persistence.database) and become records: slotted dataclasses with the model's fields as
attributes, converted by the same fields as peewee would.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import peewee


def record_type(model: type[peewee.Model], **members: Any) -> type:
    """A slotted dataclass named ``<Model>Record`` with every field of ``model`` in column
    order (positional, as rows come), and ``members`` (properties shared with the model)."""
    names = [field.name for field in model._meta.sorted_fields]
    return dataclasses.make_dataclass(
        f"{model.__name__}Record", names, slots=True, namespace=members
    )


class Records:
    """Turns rows of ``fields`` (in that order) into ``record`` instances."""

    def __init__(self, record: type, fields: Sequence[peewee.Field]) -> None:
        self._record = record
        self._width = len(fields)
        # Only the columns a driver may return raw (ids, times) pass through their field.
        self._convert = [
            (i, convert) for i, field in enumerate(fields) if (convert := _converter(field))
        ]

    def __call__(self, rows: Iterable[Sequence[Any]]) -> list:
        make, width, convert = self._record, self._width, self._convert
        records = []
        # A row may carry more after the fields (a list's count of matches).
        for row in rows:
            values = list(row[:width])
            for i, python_value in convert:
                values[i] = python_value(values[i])
            records.append(make(*values))
        return records


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
        return self._records(await self._db.fetch_rows(self.sql, params))
