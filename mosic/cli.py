"""The ``mosic`` command: ``serve``, ``migrate``, ``--version``.

Imports of the app and of prometheus-client happen inside the commands: multiprocess metrics
need ``PROMETHEUS_MULTIPROC_DIR`` set before prometheus-client is first imported.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import socket
import sys
import tempfile
from pathlib import Path

from mosic import __version__
from mosic.settings import Settings, SettingsError, check_port, load_settings

log = logging.getLogger("mosic")
# prometheus-client reads this name; importing mosic.metrics here would defeat its purpose.
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mosic", description="Mosic: a minimalist, fast, async audio streaming backend."
    )
    parser.add_argument("--version", action="version", version=f"mosic {__version__}")
    parser.add_argument(
        "--env-file", default=".env", help="settings file to read if it exists (default: ./.env)"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="apply pending migrations, then serve the API")
    serve.add_argument("--host", help="address to listen on (MOSIC_HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (MOSIC_PORT, default 8000)")
    serve.add_argument(
        "--workers", type=int, help="worker processes; more than 1 runs gunicorn (MOSIC_WORKERS)"
    )
    commands.add_parser("migrate", help="apply pending schema migrations and exit")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = load_settings(args.env_file)
        if args.command == "serve":
            overrides = {
                k: getattr(args, k)
                for k in ("host", "port", "workers")
                if getattr(args, k) is not None
            }
            check_port("--port", overrides.get("port", settings.port))
            if overrides.get("workers", 1) < 1:
                raise SettingsError("--workers must be at least 1")
            settings = settings.replace(**overrides)
    except SettingsError as exc:
        print(f"mosic: invalid setting: {exc}", file=sys.stderr)
        return 2
    from mosic.logs import configure_logging

    configure_logging(settings)
    if args.command == "migrate":
        return migrate(settings)
    return serve(settings)


def migrate(settings: Settings) -> int:
    from mosic.database import make_sync_database
    from mosic.migrations import apply_pending

    log.info("database: %s", settings.describe_database())
    db = make_sync_database(settings)
    try:
        applied = apply_pending(db)
    except Exception as exc:  # the operator needs one clear line, not a traceback
        log.error("migration failed on %s: %s", settings.describe_database(), exc)
        return 1
    finally:
        db.close()
    log.info("migrations: %s", ", ".join(applied) if applied else "up to date")
    return 0


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
    from mosic.app import resolve_credentials
    from mosic.storage import MediaStore

    credentials = resolve_credentials(settings, announce=announce_api_key)
    MediaStore(settings.media_root).clean_incoming()
    log.info("media directory: %s", settings.media_root)
    log.info(
        "listening on http://%s:%d with %d worker(s)",
        settings.host,
        settings.port,
        settings.workers,
    )
    if settings.workers > 1:
        from mosic.gunicorn import MosicGunicorn

        MosicGunicorn(settings).run()
        return 0

    import uvicorn

    from mosic.app import create_app
    from mosic.logs import logging_config

    config = uvicorn.Config(
        create_app(settings, credentials),
        host=settings.host,
        port=settings.port,
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
