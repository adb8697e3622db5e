"""Operations resources, unauthenticated: liveness, readiness, metrics, the API description."""

from __future__ import annotations

import asyncio
import json
import logging
from importlib.resources import files

import falcon

from mosic.core.probes import Probes
from mosic.observability.metrics import Metrics

log = logging.getLogger(__name__)
READY_TIMEOUT_S = 3


class Health:
    """``/healthz``: the process serves. Touches nothing else, so a slow database never
    gets a healthy pod restarted."""

    async def on_get(self, req, resp) -> None:
        resp.media = {"status": "ok"}


class Ready:
    """``/readyz``: the database answers and the media store takes writes."""

    def __init__(self, *, probes: Probes) -> None:
        self._probes = probes

    async def on_get(self, req, resp) -> None:
        problems = []
        try:
            # Bounded: a probe that hangs on a black-holed database is worse than a "no".
            await asyncio.wait_for(self._probes.ping(), READY_TIMEOUT_S)
        except Exception as exc:  # any failure means "not ready"; the reason goes out
            log.warning("readiness: database check failed: %s", exc)
            problems.append(f"database: {type(exc).__name__}")
        store_problem = await self._probes.store_problem()
        if store_problem:
            problems.append(store_problem)
        if problems:
            resp.status = falcon.HTTP_503
            resp.media = {"status": "unavailable", "reasons": problems}
        else:
            resp.media = {"status": "ok"}


class MetricsExposition:
    """``/metrics``: Prometheus text exposition, summed over workers."""

    def __init__(self, *, metrics: Metrics, probes: Probes) -> None:
        self._metrics = metrics
        self._probes = probes

    async def on_get(self, req, resp) -> None:
        try:
            self._metrics.set_catalogue_size(await self._probes.count())
            self._metrics.set_users(*await self._probes.users())
        except Exception as exc:  # a scrape must still answer while the database is down
            log.warning("metrics: could not count clips and users: %s", exc)
            self._metrics.database_error(type(exc).__name__)
        body, content_type = self._metrics.exposition()
        resp.data = body
        resp.content_type = content_type


def load_openapi() -> dict:
    text = files("mosic.api").joinpath("openapi.json").read_text(encoding="utf-8")
    return json.loads(text)


class OpenApi:
    """``/openapi.json``: the API description that the tests hold true to the routes."""

    def __init__(self) -> None:
        self._document = load_openapi()

    async def on_get(self, req, resp) -> None:
        resp.media = self._document
