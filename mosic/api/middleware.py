"""Falcon middleware, and the app class: lifespan, request metrics and access log, the
metrics-port guard, and the disconnect watch that lets a stream stop for a listener who left.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import logging
import math
import re
import time
from collections.abc import Awaitable, Callable

import falcon
import falcon.asgi

from mosic.core.periodic import Periodic
from mosic.core.scanning.service import LibraryScans
from mosic.media.storage import MediaStore
from mosic.observability.access_log import AccessLog
from mosic.observability.metrics import Metrics

log = logging.getLogger(__name__)
DISCONNECT_EVENT = "mosic.disconnected"
UNMATCHED_ROUTE = "unmatched"
# A resource that serves several operations under one template names the one it served
# here (a label from a fixed set, never the raw path).
ROUTE_LABEL = "route_label"
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_CONVERTER = re.compile(r"\{(\w+):[^}]*\}")


@functools.lru_cache(maxsize=64)
def route_label(uri_template: str | None) -> str:
    """``/play/{clip_id:uuid}/stream`` -> ``/play/{clip_id}/stream``: the template, never a
    raw path, and without Falcon's converter syntax."""
    if not uri_template:
        return UNMATCHED_ROUTE
    return _CONVERTER.sub(r"{\1}", uri_template)


def request_route(req) -> str:
    """The route label of a request: what its resource named it (the Subsonic API names
    each method: ``/rest/ping``), else its template."""
    return req.context.get(ROUTE_LABEL) or route_label(req.uri_template)


class Lifespan:
    """Opens the database pool and the media store's client when a worker starts, and closes
    them when it stops: both belong to the event loop that opened them, so they must be
    opened inside the server's loop. The library's scans (at start, on changes, on an
    interval) run in the background of every worker, one at a time by their lease."""

    def __init__(self, *, db, store: MediaStore, scans: LibraryScans | None = None) -> None:
        self._db = db
        self._store = store
        self._scans = scans

    async def process_startup(self, scope, event) -> None:
        await self._db.aio_connect()
        await self._store.start()
        if self._scans is not None:
            await self._scans.start()

    async def process_shutdown(self, scope, event) -> None:
        if self._scans is not None:
            await self._scans.stop()
        await self._store.close()
        await self._db.aio_close()


class IncomingSweep:
    """Removes what crashed uploads left in the media store every ``interval`` seconds for as
    long as a worker runs (``mosic serve`` sweeps once at start; a replica that crashed leaves
    its part files in the shared store, and nobody restarts for it)."""

    def __init__(self, sweep: Callable[[], Awaitable[int]], interval: float) -> None:
        self._sweep = sweep
        self._rounds = Periodic(self._sweep_once, interval, name="sweeping partial uploads")

    async def _sweep_once(self) -> None:
        removed = await self._sweep()
        if removed:
            log.info("removed %d partial upload(s) left by a crash", removed)

    async def process_startup(self, scope, event) -> None:
        self._rounds.start()

    async def process_shutdown(self, scope, event) -> None:
        await self._rounds.stop()


class RequestObserver:
    """What every request leaves behind: its latency and count by route template in the
    metrics, the database pool's use after it, and one access-log line. A streamed response
    is logged when its stream ends, with the bytes really sent and the whole duration, so a
    listener who left early shows. (One middleware for both: each is a hook per request.)"""

    def __init__(
        self,
        *,
        metrics: Metrics,
        pool_usage: Callable[[], tuple[int, int]],
        access_log: AccessLog,
    ) -> None:
        self._metrics = metrics
        self._pool_usage = pool_usage
        self._log = access_log

    async def process_startup(self, scope, event) -> None:
        self._metrics.set_pool(*self._pool_usage())

    async def process_request(self, req, resp) -> None:
        req.context.started = time.perf_counter()

    async def process_response(self, req, resp, resource, req_succeeded) -> None:
        started = req.context.get("started")
        if started is None:
            return
        # Methods come from clients: an unbounded label set unless folded.
        method = req.method if req.method in KNOWN_METHODS else "OTHER"
        route, status = request_route(req), resp.status_code
        self._metrics.request(method, route, str(status), time.perf_counter() - started)
        self._metrics.set_pool(*self._pool_usage())
        if not self._log.enabled():
            return
        if resp.stream is not None:
            resp.stream = self._logged_stream(resp.stream, req, route, status, started)
            return
        length = resp.headers.get("content-length")
        # Rendering is cached by Falcon, so the body is not serialised twice.
        size = int(length) if length and length.isdigit() else len(await resp.render_body() or b"")
        self._write(req, route, status, started, size)

    async def _logged_stream(self, stream, req, route: str, status: int, started: float):
        sent = 0
        try:
            async for chunk in stream:
                sent += len(chunk)
                yield chunk
        finally:
            self._write(req, route, status, started, sent)

    def _write(self, req, route: str, status: int, started: float, size: int | None) -> None:
        self._log.write(
            method=req.method,
            route=route,
            status=status,
            started=started,
            size=size,
            client=(req.scope.get("client") or ("-",))[0],
        )


class MetricsPortGuard:
    """On the separate metrics port (``MOSIC_METRICS_PORT``) only probes and metrics answer,
    so a scraper given that port never reaches the API; with ``metrics_on_api_port`` False the
    API port no longer serves /metrics, so an Ingress in front of it does not publish them."""

    ALLOWED = frozenset({"/metrics", "/healthz", "/readyz"})

    def __init__(self, port: int, *, metrics_on_api_port: bool = True) -> None:
        self._port = port
        self._metrics_on_api_port = metrics_on_api_port

    async def process_request(self, req, resp) -> None:
        server = req.scope.get("server") or (None, None)
        if server[1] == self._port and req.path not in self.ALLOWED:
            raise falcon.HTTPNotFound(
                title="Not found", description="this port serves /metrics only"
            )
        if server[1] != self._port and req.path == "/metrics" and not self._metrics_on_api_port:
            raise falcon.HTTPNotFound(
                title="Not found", description="/metrics is served on the metrics port only"
            )


class BodyStalled(Exception):
    """The client stopped sending its request body (no byte for the body timeout)."""


class BodyTooSlow(BodyStalled):
    """The client sends its request body, but slower than the minimum rate: answered like a
    stalled one (a trickle holds a connection and an upload slot as long as a stall)."""


# Arrivals within one grain (window / RATE_GRAINS) share one entry: a fast body keeps a few
# dozen entries, not one per network read, and the rule is judged to within one grain.
RATE_GRAINS = 30


class Pace:
    """The minimum-rate rule for one request body: once its first byte has arrived, every
    ``window`` seconds must bring at least ``rate * window`` bytes (Apache's
    ``mod_reqtimeout`` MinRate, judged over a sliding window).

    Pure (the caller passes the time) so that the rule is tested without a clock or socket.
    A rate of 0 turns the rule off."""

    def __init__(self, rate: float, window: float) -> None:
        self._need = rate * window
        self.window = window
        self._grain = window / RATE_GRAINS
        self._first: float | None = None
        # [grain number, time of its last arrival, bytes in it], oldest first
        self._arrivals: collections.deque[list] = collections.deque()

    def arrived(self, now: float, size: int) -> None:
        if size <= 0:
            return
        if self._first is None:
            self._first = now
        grain = int(now // self._grain)
        if self._arrivals and self._arrivals[-1][0] == grain:
            self._arrivals[-1][1:] = [now, self._arrivals[-1][2] + size]
        else:
            self._arrivals.append([grain, now, size])
        # Bytes older than a window count in no window still to come.
        while self._arrivals[0][1] <= now - self.window:
            self._arrivals.popleft()

    def deadline(self) -> float | None:
        """When the window ending then falls short if nothing more arrives; None while the
        rule does not apply (before the first byte, or with a rate of 0)."""
        if self._first is None or self._need <= 0:
            return None
        counted = 0
        for _, when, size in reversed(self._arrivals):
            counted += size
            if counted >= self._need:
                # The window holds enough until this arrival leaves it.
                return when + self.window
        return self._first + self.window


class BodyWatch:
    """Bounds each wait for the next piece of one request body: ``BodyStalled`` after
    ``timeout`` seconds without a byte, ``BodyTooSlow`` once its ``pace`` falls short.

    The pace is judged on the time spent waiting for the client only: while the app is busy
    (a slow disk or object store), the server reads nothing, and that is not the client's
    slowness."""

    def __init__(self, receive, *, timeout: float, pace: Pace) -> None:
        self._receive = receive
        self._timeout = timeout
        self._pace = pace
        self._waited = 0.0

    async def receive(self) -> dict:
        deadline = self._pace.deadline()
        slow_in = math.inf if deadline is None else deadline - self._waited
        if slow_in <= 0:
            raise self._too_slow()
        loop = asyncio.get_running_loop()
        began = loop.time()
        try:
            async with asyncio.timeout(min(self._timeout, slow_in)):
                message = await self._receive()
        except TimeoutError:
            if slow_in < self._timeout:
                raise self._too_slow() from None
            raise BodyStalled(
                f"no body byte for {self._timeout:g} s; send the body without pausing "
                "(MOSIC_BODY_TIMEOUT_S)"
            ) from None
        self._waited += loop.time() - began
        self._pace.arrived(self._waited, len(message.get("body", b"")))
        return message

    def _too_slow(self) -> BodyTooSlow:
        return BodyTooSlow(
            f"the body arrived slower than the minimum rate over {self._pace.window:g} s; "
            "send it faster (MOSIC_BODY_MIN_RATE bytes per second)"
        )


def _declares_body(scope) -> bool:
    # ASGI allows any iterables here, even one-shot ones (Falcon's test client sends those):
    # read them into pairs the app can read again. Servers send a list of tuples.
    headers = scope["headers"]
    if not isinstance(headers, list) or (headers and not isinstance(headers[0], tuple)):
        scope["headers"] = headers = [tuple(pair) for pair in headers]
    for name, value in headers:
        if name == b"transfer-encoding" or (name == b"content-length" and value != b"0"):
            return True
    return False


class DisconnectAwareApp(falcon.asgi.App):
    """Falcon's ASGI app, bounding how long a request body may stall or trickle, and telling
    a running stream when its listener has gone.

    Until the body has fully arrived, each wait for the next piece of it goes through a
    ``BodyWatch``: a client that stops sending (a slowloris), or sends fewer than
    ``body_min_rate`` bytes a second over any ``body_rate_window`` seconds, gets
    ``BodyStalled`` raised where its body is read, which undoes what it had written and
    answers 408.

    Servers turn ``send`` into a no-op after a disconnect, so without this a stream would keep
    reading its file to the end for nobody. Once a streamed body has started (the request
    body is consumed by then in every Mosic route), a task waits for ``http.disconnect`` and
    sets the event that ``scope[DISCONNECT_EVENT]`` holds.
    """

    def __init__(
        self,
        *args,
        body_timeout: float,
        body_min_rate: float,
        body_rate_window: float,
        **kwargs,
    ) -> None:
        super().__init__(*args, **kwargs)
        self._body_timeout = body_timeout
        self._body_min_rate = body_min_rate
        self._body_rate_window = body_rate_window

    def _bounded(self, receive):
        """``receive`` bounded by the body rules while the body arrives, plain after it."""
        watch = BodyWatch(
            receive,
            timeout=self._body_timeout,
            pace=Pace(self._body_min_rate, self._body_rate_window),
        )
        body_done = False

        async def bounded_receive():
            nonlocal body_done
            if body_done:
                return await receive()
            message = await watch.receive()
            body_done = message["type"] != "http.request" or not message.get("more_body")
            return message

        return bounded_receive

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        disconnected = asyncio.Event()
        scope[DISCONNECT_EVENT] = disconnected
        watcher: asyncio.Task | None = None
        # A request that declares no body has nothing to wait for (its one empty message
        # is there at once): no timer for it.
        bounded_receive = self._bounded(receive) if _declares_body(scope) else receive

        async def watch() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            disconnected.set()

        async def send_and_watch(message) -> None:
            nonlocal watcher
            await send(message)
            # Only a body sent in pieces (a stream) has a "while" for the listener to leave.
            if watcher is None and message.get("more_body"):
                watcher = asyncio.create_task(watch())

        try:
            await super().__call__(scope, bounded_receive, send_and_watch)
        finally:
            if watcher is not None:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher
