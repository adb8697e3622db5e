"""The access log: one line per request, with the route template rather than the raw path
(so no signed-link signature or id-bearing query ever reaches a log).

A streamed response is logged when its stream ends, with the bytes really sent and the
whole duration, so a listener who left early shows as such.
"""

from __future__ import annotations

import logging
import time

from mosic.metrics import route_label

log = logging.getLogger("mosic.access")


def _write(req, status: int, started: float, size: int | None) -> None:
    duration_ms = round((time.perf_counter() - started) * 1000, 2)
    route = route_label(req.uri_template)
    client = (req.scope.get("client") or ("-",))[0]
    log.info(
        "%s %s %s %.2fms %s",
        req.method,
        route,
        status,
        duration_ms,
        size if size is not None else "-",
        extra={
            "method": req.method,
            "route": route,
            "status": status,
            "duration_ms": duration_ms,
            "bytes": size,
            "client": client,
        },
    )


async def _logged_stream(stream, req, status: int, started: float):
    sent = 0
    try:
        async for chunk in stream:
            sent += len(chunk)
            yield chunk
    finally:
        _write(req, status, started, sent)


class AccessLog:
    async def process_request(self, req, resp) -> None:
        req.context.access_started = time.perf_counter()

    async def process_response(self, req, resp, resource, req_succeeded) -> None:
        if not log.isEnabledFor(logging.INFO):
            return
        started = req.context.get("access_started", time.perf_counter())
        if resp.stream is not None:
            resp.stream = _logged_stream(resp.stream, req, resp.status_code, started)
            return
        length = resp.headers.get("content-length")
        # Rendering is cached by Falcon, so the body is not serialised twice.
        size = int(length) if length and length.isdigit() else len(await resp.render_body() or b"")
        _write(req, resp.status_code, started, size)
