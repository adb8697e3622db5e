"""The access log: one line per request, with the route template rather than the raw path
(so no signed-link signature or id-bearing query ever reaches a log)."""

from __future__ import annotations

import logging
import time

from mosic.metrics import route_label

log = logging.getLogger("mosic.access")


class AccessLog:
    async def process_request(self, req, resp) -> None:
        req.context.access_started = time.perf_counter()

    async def process_response(self, req, resp, resource, req_succeeded) -> None:
        if not log.isEnabledFor(logging.INFO):
            return
        started = req.context.get("access_started", time.perf_counter())
        duration_ms = round((time.perf_counter() - started) * 1000, 2)
        route = route_label(req.uri_template)
        length = resp.headers.get("content-length")
        if length and length.isdigit():
            size = int(length)
        elif resp.stream is None:
            # Rendering is cached by Falcon, so the body is not serialised twice.
            size = len(await resp.render_body() or b"")
        else:
            size = None
        client = (req.scope.get("client") or ("-",))[0]
        log.info(
            "%s %s %s %.2fms %s",
            req.method,
            route,
            resp.status_code,
            duration_ms,
            size if size is not None else "-",
            extra={
                "method": req.method,
                "route": route,
                "status": resp.status_code,
                "duration_ms": duration_ms,
                "bytes": size,
                "client": client,
            },
        )
