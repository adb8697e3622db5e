"""``mosic serve``: migrate, make sure of the credentials, then serve with uvicorn (one
worker) or gunicorn with uvicorn workers (several)."""

from __future__ import annotations

import asyncio
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


def announce_api_key(api_key: str, path: Path) -> None:
    # Printed once, on standard output: the log stream (standard error) never carries it.
    print(
        f"\nGenerated an API key (stored in {path}, mode 0600):\n\n    {api_key}\n\n"
        "Send it as the X-API-Key header. Set MOSIC_API_KEY to choose your own.\n",
        flush=True,
    )


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


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
    log.info(
        "listening on http://%s:%d with %d worker(s)",
        settings.host,
        settings.port,
        settings.workers,
    )
    if settings.workers > 1:
        from mosic.cli.gunicorn import MosicGunicorn

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
    try:
        sockets = [
            _bind(settings.host, port) for port in (settings.port, settings.metrics_port) if port
        ]
    except OSError as exc:
        log.error("cannot listen on %s: %s", settings.host, exc)
        return 1
    uvicorn.Server(config).run(sockets=sockets)
    return 0
