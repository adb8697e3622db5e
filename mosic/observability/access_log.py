"""The access log: one line per request, with the route template rather than the raw path
(so no signed-link signature or id-bearing query ever reaches a log).

The HTTP edge decides when a request is over (for a stream, when its last byte went out or
its listener left) and calls ``AccessLog.write`` once.
"""

from __future__ import annotations

import logging
import time

log = logging.getLogger("mosic.access")


class AccessLog:
    def enabled(self) -> bool:
        return log.isEnabledFor(logging.INFO)

    def write(
        self, *, method: str, route: str, status: int, started: float, size: int | None, client
    ) -> None:
        duration_ms = round((time.perf_counter() - started) * 1000, 2)
        # Made and handed over directly: ``log.info`` would also look up the caller's source
        # line, which no access-log format shows (a quarter of the line's cost).
        record = log.makeRecord(
            log.name,
            logging.INFO,
            __file__,
            0,
            "%s %s %s %.2fms %s",
            (method, route, status, duration_ms, size if size is not None else "-"),
            None,
            extra={
                "method": method,
                "route": route,
                "status": status,
                "duration_ms": duration_ms,
                "bytes": size,
                "client": client,
            },
        )
        log.handle(record)
