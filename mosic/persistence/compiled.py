"""Queries whose SQL text is built once, then run with fresh values.

peewee turns a query object into SQL on every execution; for the single-row read behind
``GET /play/{id}`` and ``/stats`` that was 27 % of the request's time (bench/profiles). A
``CompiledQuery`` builds the text once per database and keeps peewee's row handling, so the
rows are the same model objects as before.
"""

from __future__ import annotations

from typing import Any


class CompiledQuery:
    """``query`` compiled for ``db``. ``slots`` name the values that change per call, each as
    (field, the placeholder value the query was built with)."""

    def __init__(self, db, query, **slots: tuple[Any, Any]) -> None:
        self._db = db
        self._query = query
        self.sql, params = db.get_sql_context().sql(query).query()
        by_value = {field.db_value(dummy): (name, field) for name, (field, dummy) in slots.items()}
        self._params = [by_value.get(value, (None, value)) for value in params]
        if len({name for name, _ in self._params if name}) != len(slots):
            raise ValueError(f"each slot needs its own placeholder value in {self.sql}")

    async def run(self, **values: Any) -> list:
        params = [field.db_value(values[name]) if name else field for name, field in self._params]
        return await self._db.aio_execute_sql(
            self.sql, params, fetch_results=self._query.fetch_results
        )
