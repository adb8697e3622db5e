"""``create_app(settings)``: builds the stores, middleware and routes of one Mosic app."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import falcon
import falcon.asgi
import peewee

from mosic import secrets_store
from mosic.access import AccessLog
from mosic.catalogue import Catalogue, ClipNotFound
from mosic.clips import ClipCollection, ClipItem, ClipStats, ClipUpload
from mosic.database import make_database, pool_stats
from mosic.health import Health, MetricsResource, OpenApi, Ready
from mosic.metrics import Metrics, RequestMetrics
from mosic.settings import Settings
from mosic.signing import Signer
from mosic.storage import MediaStore
from mosic.stream import ClipStream, DisconnectWatcher

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Credentials:
    api_key: str
    signing_secret: str


def resolve_credentials(settings: Settings, announce=None) -> Credentials:
    """The configured API key and signing secret, or ones generated and kept in the data dir.

    A generated key is announced once (through ``announce``) by whichever process made it.
    """
    api_key = settings.api_key
    if api_key is None:
        api_key, created = secrets_store.load_or_create(
            settings.data_dir / secrets_store.API_KEY_FILE
        )
        if created and announce is not None:
            announce(api_key, settings.data_dir / secrets_store.API_KEY_FILE)
    secret = settings.signing_secret
    if secret is None:
        secret, _ = secrets_store.load_or_create(
            settings.data_dir / secrets_store.SIGNING_SECRET_FILE
        )
    return Credentials(api_key=api_key, signing_secret=secret)


class DatabaseLifespan:
    """Opens the pool when a worker starts and closes it when it stops: a pool belongs to
    the event loop that opened it, so it must be opened inside the server's loop."""

    def __init__(self, db) -> None:
        self.db = db

    async def process_startup(self, scope, event) -> None:
        await self.db.aio_connect()

    async def process_shutdown(self, scope, event) -> None:
        await self.db.aio_close()


class MetricsPortGuard:
    """On the separate metrics port (``MOSIC_METRICS_PORT``) only probes and metrics answer,
    so a scraper given that port never reaches the API; with ``metrics_on_api_port`` False the
    API port no longer serves /metrics, so an Ingress in front of it does not publish them."""

    ALLOWED = frozenset({"/metrics", "/healthz", "/readyz"})

    def __init__(self, port: int, metrics_on_api_port: bool = True) -> None:
        self.port = port
        self.metrics_on_api_port = metrics_on_api_port

    async def process_request(self, req, resp) -> None:
        server = req.scope.get("server") or (None, None)
        if server[1] == self.port and req.path not in self.ALLOWED:
            raise falcon.HTTPNotFound(
                title="Not found", description="this port serves /metrics only"
            )
        if server[1] != self.port and req.path == "/metrics" and not self.metrics_on_api_port:
            raise falcon.HTTPNotFound(
                title="Not found", description="/metrics is served on the metrics port only"
            )


def create_app(settings: Settings, credentials: Credentials | None = None):
    """Return the ASGI application for ``settings``."""
    credentials = credentials or resolve_credentials(settings)
    db = make_database(settings)
    store = MediaStore(settings.media_root)
    store.prepare()
    catalogue = Catalogue(db, store)
    metrics = Metrics()
    signer = Signer(credentials.signing_secret, settings.signed_url_ttl)

    middleware = [
        DatabaseLifespan(db),
        RequestMetrics(metrics, lambda: pool_stats(db)),
        AccessLog(),
    ]
    if settings.metrics_port:
        middleware.append(MetricsPortGuard(settings.metrics_port, settings.metrics_on_api_port))
    app = falcon.asgi.App(middleware=middleware)
    app.req_options.strip_url_path_trailing_slash = True
    app.req_options.keep_blank_qs_values = False

    clip_args = (catalogue, signer, credentials.api_key, settings.max_upload_bytes, metrics)
    app.add_route("/play", ClipCollection(*clip_args))
    app.add_route("/play/upload", ClipUpload(*clip_args))
    app.add_route("/play/{clip_id:uuid}", ClipItem(*clip_args))
    app.add_route("/play/{clip_id:uuid}/stats", ClipStats(*clip_args))
    app.add_route(
        "/play/{clip_id:uuid}/stream", ClipStream(catalogue, signer, credentials.api_key, metrics)
    )
    app.add_route("/healthz", Health())
    app.add_route("/readyz", Ready(catalogue))
    app.add_route("/metrics", MetricsResource(metrics, catalogue))
    app.add_route("/openapi.json", OpenApi())

    async def not_found(req, resp, ex, params):
        raise falcon.HTTPNotFound(title="Not found", description="no clip has this id")

    async def database_error(req, resp, ex, params):
        metrics.database_error(type(ex).__name__)
        log.error("database error on %s %s: %s", req.method, req.path, ex)
        raise falcon.HTTPServiceUnavailable(
            title="Database unavailable",
            description="the database did not answer; try again shortly",
            retry_after=5,
        )

    async def no_route(req, resp, ex, params):
        if req.path.startswith("/play/"):
            raise falcon.HTTPNotFound(title="Not found", description="no clip has this id")
        raise falcon.HTTPNotFound(
            title="Not found", description="no such path; the API is described at /openapi.json"
        )

    app.add_error_handler(ClipNotFound, not_found)
    app.add_error_handler(falcon.HTTPRouteNotFound, no_route)
    app.add_error_handler(peewee.OperationalError, database_error)
    app.add_error_handler(peewee.InterfaceError, database_error)
    return DisconnectWatcher(app)
