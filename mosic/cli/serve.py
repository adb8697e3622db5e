"""``mosic serve``: migrate, make sure of the credentials, then serve with uvicorn (one
worker) or gunicorn with uvicorn workers (several)."""

from __future__ import annotations

import asyncio
import errno
import gc
import logging
import os
import shutil
import socket
import tempfile
from pathlib import Path

from mosic.cli import migrate
from mosic.media.storage import StorageUnavailable
from mosic.observability import MULTIPROC_ENV
from mosic.settings import Settings

log = logging.getLogger("mosic")

# The cycle collector's youngest generation runs after this many new container objects (the
# default, 700, runs it two or three times for every 500-row list page, each pass walking
# the rows just made: 1.3x the rows/s with this, bench/ab_lists.py). Requests make few
# cycles, so what waits for the collector is small.
GC_YOUNG_THRESHOLD = 20_000
GC_OLDER_THRESHOLDS = (20, 20)


def announce_api_key(api_key: str, path: Path) -> None:
    # Printed once, on standard output: the log stream (standard error) never carries it.
    print(
        f"\nGenerated an API key (stored in {path}, mode 0600):\n\n    {api_key}\n\n"
        "Send it as the X-API-Key header. Set MOSIC_API_KEY to choose your own.\n",
        flush=True,
    )


class CannotListen(Exception):
    """A port Mosic was told to listen on cannot be had; the message says which and what to do."""


def _bind(host: str, port: int, setting: str) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        address = f"[{host}]:{port}" if family == socket.AF_INET6 else f"{host}:{port}"
        if exc.errno == errno.EADDRINUSE:
            raise CannotListen(
                f"cannot listen on {address}: another program already uses that port; "
                f"choose another with {setting}"
            ) from None
        raise CannotListen(f"cannot listen on {address}: {exc.strerror or exc}") from None
    sock.set_inheritable(True)
    return sock


def bind_ports(settings: Settings) -> list[socket.socket]:
    """The API port's socket and the metrics port's, bound (not yet listening) before anything
    else happens, so a port that is taken stops ``mosic serve`` before it says it listens."""
    wanted = [(settings.port, "--port or MOSIC_PORT")]
    if settings.metrics_port:
        wanted.append((settings.metrics_port, "MOSIC_METRICS_PORT"))
    sockets: list[socket.socket] = []
    try:
        for port, setting in wanted:
            sockets.append(_bind(settings.host, port, setting))
    except CannotListen:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def collect_less() -> None:
    """Run the cycle collector less often (``GC_YOUNG_THRESHOLD``), and leave what start-up
    made, which lives as long as the process, out of its passes (gunicorn's workers inherit
    both when they fork)."""
    gc.collect()
    gc.set_threshold(GC_YOUNG_THRESHOLD, *GC_OLDER_THRESHOLDS)
    gc.freeze()


def serve(settings: Settings) -> int:
    if settings.workers > 1:
        # Must precede the first import of prometheus-client, in this process and the workers.
        metrics_dir = tempfile.mkdtemp(prefix="mosic-metrics-")
        os.environ[MULTIPROC_ENV] = metrics_dir
        try:
            return _serve(settings)
        finally:
            shutil.rmtree(metrics_dir, ignore_errors=True)
    return _serve(settings)


def _serve(settings: Settings) -> int:
    try:
        sockets = bind_ports(settings)
    except CannotListen as exc:
        log.error("%s", exc)
        return 1
    try:
        return _serve_on(settings, sockets)
    finally:
        for sock in sockets:
            sock.close()


def _serve_on(settings: Settings, sockets: list[socket.socket]) -> int:
    code = migrate(settings)
    if code:
        return code
    from mosic.app import sweep_leftovers
    from mosic.media.renditions import RenditionCache
    from mosic.persistence.secrets import resolve_credentials

    credentials = resolve_credentials(settings, announce=announce_api_key)
    try:
        swept = asyncio.run(sweep_leftovers(settings))
    except StorageUnavailable as exc:  # readiness reports it; serving may still start
        log.warning("%s: %s", settings.describe_storage(), exc)
    else:
        log.info("%s (%d leftover partial uploads removed)", settings.describe_storage(), swept)
    renditions = RenditionCache(settings.transcode_cache_dir, settings.transcode_cache_bytes)
    asyncio.run(renditions.sweep())  # half-written renditions that crashed transcodes left
    collect_less()
    log.info(
        "listening on http://%s:%d with %d worker(s)",
        settings.host,
        settings.port,
        settings.workers,
    )
    if settings.workers > 1:
        from mosic.cli.gunicorn import MosicGunicorn

        # gunicorn binds its own sockets: ours only proved the ports free, a moment ago.
        for sock in sockets:
            sock.close()
        MosicGunicorn(settings).run()
        return 0

    import uvicorn

    from mosic.app import create_app
    from mosic.cli.connections import connection_class
    from mosic.observability.logs import logging_config

    config = uvicorn.Config(
        create_app(settings, credentials),
        host=settings.host,
        port=settings.port,
        http=connection_class(settings),
        # On SIGTERM: stop accepting, let running streams end, within the grace period.
        timeout_graceful_shutdown=settings.shutdown_grace_s,
        lifespan="on",
        log_config=logging_config(settings),
        access_log=False,
        proxy_headers=False,
        server_header=False,
    )
    # Our own sockets: a second uvicorn.Config would reset logging to uvicorn's defaults.
    uvicorn.Server(config).run(sockets=sockets)
    return 0
