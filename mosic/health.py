"""Liveness, readiness, metrics and the API description: the unauthenticated routes."""

from __future__ import annotations

import asyncio
import json
import logging
from importlib.resources import files

import falcon

from mosic.catalogue import Catalogue
from mosic.metrics import Metrics

log = logging.getLogger(__name__)
READY_TIMEOUT_S = 3


class Health:
    """``/healthz``: the process serves. Touches nothing else, so a slow database never
    gets a healthy pod restarted."""

    async def on_get(self, req, resp) -> None:
        resp.media = {"status": "ok"}


class Ready:
    """``/readyz``: the database answers and the media store takes writes."""

    def __init__(self, catalogue: Catalogue) -> None:
        self.catalogue = catalogue

    async def on_get(self, req, resp) -> None:
        problems = []
        try:
            # Bounded: a probe that hangs on a black-holed database is worse than a "no".
            await asyncio.wait_for(self.catalogue.db.aio_execute_sql("SELECT 1"), READY_TIMEOUT_S)
        except Exception as exc:  # any failure means "not ready"; the reason goes out
            log.warning("readiness: database check failed: %s", exc)
            problems.append(f"database: {type(exc).__name__}")
        if not await asyncio.to_thread(self.catalogue.store.is_writable):
            problems.append("media store is not writable")
        if problems:
            resp.status = falcon.HTTP_503
            resp.media = {"status": "unavailable", "reasons": problems}
        else:
            resp.media = {"status": "ok"}


class MetricsResource:
    """``/metrics``: Prometheus text exposition, summed over workers."""

    def __init__(self, metrics: Metrics, catalogue: Catalogue) -> None:
        self.metrics = metrics
        self.catalogue = catalogue

    async def on_get(self, req, resp) -> None:
        try:
            self.metrics.set_catalogue_size(await self.catalogue.count())
        except Exception as exc:  # a scrape must still answer while the database is down
            log.warning("metrics: could not count clips: %s", exc)
            self.metrics.database_error("count")
        body, content_type = self.metrics.exposition()
        resp.data = body
        resp.content_type = content_type


def load_openapi() -> dict:
    return json.loads(files("mosic").joinpath("openapi.json").read_text(encoding="utf-8"))


class OpenApi:
    """``/openapi.json``: the API description that the tests hold true to the routes."""

    def __init__(self) -> None:
        self.document = load_openapi()

    async def on_get(self, req, resp) -> None:
        resp.media = self.document
