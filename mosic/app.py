"""``create_app(settings)``: the composition root.

``Services`` is built once from ``Settings`` and holds every long-lived object; the routes,
their guards and the middleware are wired from it here, and nowhere else.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from dataclasses import dataclass

import falcon
import falcon.asgi
import falcon.media
import orjson

from mosic.api import auth
from mosic.api.clips import ClipCollection, ClipItem, ClipStats, ClipUpload
from mosic.api.covers import ClipCover
from mosic.api.decisions import NginxDecisions
from mosic.api.errors import register_error_handlers
from mosic.api.library import LibraryScan
from mosic.api.lyrics import ClipLyrics
from mosic.api.middleware import (
    DisconnectAwareApp,
    IncomingSweep,
    Lifespan,
    MetricsPortGuard,
    RequestObserver,
)
from mosic.api.ops import Health, MetricsExposition, OpenApi, Ready
from mosic.api.params import BoundedJson
from mosic.api.serving import ByteServer
from mosic.api.shapes import ORJSON_TIMES, rfc3339
from mosic.api.shared import SharedCover, SharedSongs, SharedStream
from mosic.api.shares import ShareCollection, ShareItem
from mosic.api.streams import ClipStream
from mosic.api.subsonic import SubsonicApi
from mosic.api.subsonic.kept import Kept
from mosic.api.uploads import Uploads
from mosic.api.users import Me, MyHistory, UserCollection, UserItem, UserKey, UserKeys
from mosic.api.waveforms import ClipWaveform
from mosic.core import signing
from mosic.core.analysis import UploadAnalysis
from mosic.core.backup import ScheduledBackups
from mosic.core.blobs import UnusedBlobs
from mosic.core.catalogue import Catalogue
from mosic.core.collection import Collection
from mosic.core.counting import PlayCounts
from mosic.core.covers import Covers
from mosic.core.keys import KeyRing, User
from mosic.core.library import Library
from mosic.core.listening import Listening
from mosic.core.listing import Listing
from mosic.core.lyrics import SongLyrics
from mosic.core.marks import Marks
from mosic.core.playlists import Playlists
from mosic.core.plays import PlayRecorder
from mosic.core.probes import Probes
from mosic.core.reports import PlaybackReports
from mosic.core.rereading import Rereader
from mosic.core.scanning.service import LibraryConfig, LibraryScans
from mosic.core.sealing import Sealer
from mosic.core.share_songs import ShareSongs
from mosic.core.shares import Shares
from mosic.core.signing import Signer
from mosic.core.users import Users
from mosic.core.waveform import Waveforms
from mosic.media.folders import FolderFiles
from mosic.media.local import LocalStore, ReadAhead
from mosic.media.renditions import RenditionCache
from mosic.media.storage import MediaStore
from mosic.media.transcode import Transcoder
from mosic.observability.access_log import AccessLog
from mosic.observability.metrics import Metrics
from mosic.persistence.database import make_database, pool_usage
from mosic.persistence.models import ADMIN, ADMIN_ID
from mosic.persistence.secrets import Credentials, resolve_credentials
from mosic.settings import Settings
from mosic.web.pages import Asset, WebAsset, WebPage, load_assets
from mosic.web.share_page import SharePage


@dataclass(frozen=True)
class Services:
    settings: Settings
    db: object
    store: MediaStore
    catalogue: Catalogue
    covers: Covers
    waveforms: Waveforms
    analysis: UploadAnalysis
    probes: Probes
    listing: Listing
    library: Library
    lyrics: SongLyrics
    scans: LibraryScans
    collection: Collection
    playlists: Playlists
    listening: Listening
    marks: Marks
    plays: PlayRecorder
    reports: PlaybackReports
    serving: ByteServer
    uploads: Uploads
    users: Users
    signer: Signer
    transcoder: Transcoder
    metrics: Metrics
    access_log: AccessLog
    web_assets: dict[str, Asset]
    # The artist lists Subsonic apps ask for, encoded, per library version (a few, LRU).
    subsonic_kept: Kept
    shares: Shares
    share_songs: ShareSongs

    @classmethod
    def build(cls, settings: Settings, credentials: Credentials | None = None) -> Services:
        credentials = credentials or resolve_credentials(settings)
        db = make_database(settings)
        read_ahead = ReadAhead()  # one budget for every stream of the process
        store = make_store(settings, read_ahead)
        covers, waveforms = Covers(store=store), Waveforms(store=store)
        folders = FolderFiles(settings.music_folders, read_ahead)
        catalogue = make_catalogue(db, store, folders, covers=covers, waveforms=waveforms)
        analysis = UploadAnalysis(db=db, store=store, waveforms=waveforms)
        metrics = Metrics()
        transcoder = make_transcoder(settings, read_ahead, metrics)
        plays = PlayRecorder(counts=PlayCounts(db), metrics=metrics)
        listening = Listening(db=db)
        library, playlists = Library(db=db), Playlists(db=db)
        return cls(
            settings=settings,
            db=db,
            store=store,
            catalogue=catalogue,
            covers=covers,
            waveforms=waveforms,
            analysis=analysis,
            probes=Probes(db=db, store=store),
            listing=Listing(db=db),
            library=library,
            lyrics=SongLyrics(db=db, folders=folders),
            scans=make_library_scans(settings, db, store, metrics),
            collection=Collection(db=db),
            playlists=playlists,
            listening=listening,
            marks=Marks(db=db),
            plays=plays,
            reports=PlaybackReports(db=db, plays=plays, listening=listening),
            serving=ByteServer(
                catalogue=catalogue,
                covers=covers,
                plays=plays,
                transcoder=transcoder,
                metrics=metrics,
                link_ttl=settings.signed_url_ttl,
                offload_prefix=settings.accel_redirect,
                decides=settings.nginx_auth_request,
            ),
            uploads=Uploads(
                catalogue=catalogue,
                analysis=analysis,
                max_bytes=settings.max_upload_bytes,
                metrics=metrics,
            ),
            users=make_users(settings, db, credentials),
            signer=Signer(credentials.signing_secret, settings.signed_url_ttl),
            transcoder=transcoder,
            metrics=metrics,
            access_log=AccessLog(),
            web_assets=load_assets(),
            subsonic_kept=Kept(),
            shares=Shares(db=db, metrics=metrics),
            share_songs=ShareSongs(library=library, playlists=playlists),
        )


def make_transcoder(settings: Settings, read_ahead: ReadAhead, metrics: Metrics) -> Transcoder:
    """The transcoder over its rendition cache (made ready on disk here)."""
    renditions = RenditionCache(
        settings.transcode_cache_dir, settings.transcode_cache_bytes, read_ahead
    )
    renditions.prepare()
    return Transcoder(cache=renditions, max_running=settings.transcode_max, metrics=metrics)


def make_users(settings: Settings, db, credentials: Credentials) -> Users:
    """Users over ``db``: the configured keys are the admin's, user keys are sealed with a
    key derived from the signing secret (the app and ``mosic user`` share it)."""
    admin = User(id=ADMIN_ID, name=settings.admin_user, role=ADMIN)
    return Users(
        db=db,
        ring=KeyRing(credentials.api_key, settings.read_api_keys, admin),
        sealer=Sealer(credentials.signing_secret),
    )


# The modules of what a local store's background readers run on stored media (the loudness
# and peaks, tags): the fork server imports them once for every worker it starts.
BACKGROUND_READERS = ("mosic.core.waveform", "mosic.core.audio")


def make_store(settings: Settings, read_ahead: ReadAhead | None = None) -> MediaStore:
    """The media backend the settings choose: the local disk, or an S3 bucket."""
    if settings.uses_s3:
        from mosic.media.s3 import S3Store  # aiobotocore loads only where it is used

        return S3Store(settings.s3)
    store = LocalStore(settings.media_root, read_ahead, preload=BACKGROUND_READERS)
    store.prepare()
    return store


async def sweep_leftovers(settings: Settings) -> int:
    """What crashed uploads left in the media store, removed (``mosic serve`` at start)."""
    store = make_store(settings)
    await store.start()
    try:
        return await store.sweep()
    finally:
        await store.close()


def make_catalogue(
    db,
    store: MediaStore,
    folders: FolderFiles | None = None,
    *,
    covers: Covers | None = None,
    waveforms: Waveforms | None = None,
) -> Catalogue:
    """The catalogue over ``db`` and ``store`` (the app and the command line share it), and
    the music folders' files (``folders``) for streaming library clips."""
    return Catalogue(
        db=db,
        store=store,
        covers=covers or Covers(store=store),
        waveforms=waveforms or Waveforms(store=store),
        blobs=UnusedBlobs(db=db, store=store),
        folders=folders,
    )


def make_rereader(db, store: MediaStore) -> Rereader:
    """What reads the files of clips added under older rules again (``mosic migrate``)."""
    return Rereader(
        db=db, store=store, covers=Covers(store=store), waveforms=Waveforms(store=store)
    )


def make_library_scans(settings: Settings, db, store: MediaStore, metrics: Metrics) -> LibraryScans:
    """The library's scans over the settings' music folders (the app and ``mosic scan``)."""
    config = LibraryConfig(
        roots=settings.music_folders,
        watch=settings.library_watch,
        settle_s=settings.library_settle_s,
        interval_s=settings.library_scan_interval_s,
        missing_days=settings.library_missing_days,
    )
    return LibraryScans(
        db=db, store=store, config=config, metrics=metrics,
        blobs=UnusedBlobs(db=db, store=store),
    )  # fmt: skip


def create_app(settings: Settings, credentials: Credentials | None = None) -> falcon.asgi.App:
    """Return the ASGI application for ``settings``."""
    services = Services.build(settings, credentials)
    guards = auth.Guards(services.metrics)
    app = DisconnectAwareApp(
        middleware=_middleware(services, guards),
        body_timeout=settings.body_timeout_s,
        body_min_rate=settings.body_min_rate,
        body_rate_window=settings.body_rate_window_s,
    )
    app.req_options.strip_url_path_trailing_slash = True
    app.req_options.keep_blank_qs_values = False
    app.req_options.media_handlers[falcon.MEDIA_JSON] = BoundedJson(settings.max_json_bytes)
    app.resp_options.media_handlers[falcon.MEDIA_JSON] = falcon.media.JSONHandler(dumps=_dump_json)
    _add_routes(app, services, guards)
    register_error_handlers(app, services.metrics)
    return app


def _dump_json(media) -> bytes:
    """Response bodies (but a clip list's, which mosic.api.shapes.page_json makes). A list
    goes through orjson, ~14x faster than json.dumps on 500 rows (15 % of a clip list
    request's time before); an object keeps json.dumps' text (with its ", " and ": "),
    which the README's examples show verbatim and which costs little for one clip. Both
    write times as RFC 3339 UTC alike. Requests keep the stdlib parser, whose errors
    params.py turns into 400s."""
    if isinstance(media, list):
        return orjson.dumps(media, option=ORJSON_TIMES)
    return json.dumps(media, ensure_ascii=False, default=_json_time).encode()


def _json_time(value) -> str:
    if isinstance(value, dt.datetime):
        return rfc3339(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _middleware(services: Services, guards: auth.Guards) -> list:
    middleware = [
        Lifespan(db=services.db, store=services.store, scans=services.scans),
        RequestObserver(
            metrics=services.metrics,
            pool_usage=lambda: pool_usage(services.db),
            access_log=services.access_log,
        ),
        # nginx's questions before streams get a 204 unless they name a file; always there,
        # so a question to a Mosic without MOSIC_NGINX_AUTH_REQUEST is passed back, not
        # answered with bytes. After the observer: it shapes an answer before it is logged.
        NginxDecisions(),
        guards,
    ]
    # Uploads' loudness, after their 201 and in a sweep, one process at a time.
    middleware.append(services.analysis)
    if not services.settings.uses_s3:
        # The S3 store sweeps what dead instances left from its own heartbeat.
        middleware.append(IncomingSweep(services.store.sweep, SWEEP_INTERVAL_S))
    if services.settings.backup_dir is not None:
        middleware.append(ScheduledBackups(services.settings))
    if services.settings.metrics_port:
        middleware.append(
            MetricsPortGuard(
                services.settings.metrics_port,
                metrics_on_api_port=services.settings.metrics_on_api_port,
            )
        )
    return middleware


# How often a worker removes part files that no live process holds (crash leftovers).
SWEEP_INTERVAL_S = 60

# The methods of a route that change state (a read-only key or a signed link gets a 403), or
# that only an admin may call.
POST = frozenset({"POST"})
PATCH_DELETE = frozenset({"PATCH", "DELETE"})
CHANGES = frozenset({"POST", "PATCH", "DELETE"})
EVERY = frozenset({"GET"}) | CHANGES


def subsonic_api(s: Services) -> SubsonicApi:
    """The Subsonic API of these services (one resource for every method)."""
    return SubsonicApi(
        users=s.users,
        metrics=s.metrics,
        library=s.library,
        lyrics=s.lyrics,
        collection=s.collection,
        playlists=s.playlists,
        listening=s.listening,
        scans=s.scans,
        plays=s.plays,
        reports=s.reports,
        kept=s.subsonic_kept,
        shares=s.shares,
        share_songs=s.share_songs,
        # nginx sends the bytes of REST streams only (README, "nginx in front").
        serving=dataclasses.replace(s.serving, offload_prefix=None),
    )


def _add_routes(app: falcon.asgi.App, s: Services, guards: auth.Guards) -> None:
    key = auth.key_required(s.users, s.metrics)
    stream_link = auth.key_or_signature(s.users, s.signer, s.metrics, signing.STREAM)
    cover_link = auth.key_or_signature(s.users, s.signer, s.metrics, signing.COVER)
    Rule = auth.Rule
    read, admin = Rule(key), Rule(key, writes=CHANGES, admin=EVERY)
    users = {"users": s.users}
    clip = {"catalogue": s.catalogue, "signer": s.signer, "marks": s.marks}
    lists = {"catalogue": s.catalogue, "signer": s.signer}  # a page's rows carry the marks
    routes = [
        ("/play", ClipCollection(**lists, listing=s.listing, uploads=s.uploads), Rule(key, POST)),
        ("/play/upload", ClipUpload(signer=s.signer, uploads=s.uploads), Rule(key, POST)),
        ("/play/{clip_id:uuid}", ClipItem(**clip), Rule(key, PATCH_DELETE)),
        ("/play/{clip_id:uuid}/stats", ClipStats(**clip), read),
        (
            "/play/{clip_id:uuid}/lyrics",
            ClipLyrics(catalogue=s.catalogue, lyrics=s.lyrics),
            read,
        ),
        (
            "/play/{clip_id:uuid}/stream",
            ClipStream(catalogue=s.catalogue, serving=s.serving),
            Rule(stream_link),
        ),
        (
            "/play/{clip_id:uuid}/cover",
            ClipCover(catalogue=s.catalogue, serving=s.serving),
            Rule(cover_link),
        ),
        (
            "/play/{clip_id:uuid}/waveform",
            ClipWaveform(catalogue=s.catalogue, waveforms=s.waveforms),
            read,
        ),
        ("/library/scan", LibraryScan(scans=s.scans), Rule(key, POST, admin=POST)),
        ("/me", Me(), read),
        ("/me/history", MyHistory(listening=s.listening), read),
        ("/users", UserCollection(**users), admin),
        ("/users/{name}", UserItem(**users), admin),
        ("/users/{name}/keys", UserKeys(**users), admin),
        ("/users/{name}/keys/{key_id}", UserKey(**users), admin),
        # Subsonic apps authenticate in the query or form, and get Subsonic errors: the
        # resource checks its own credentials.
        ("/rest/{method}", subsonic_api(s), None),
        ("/healthz", Health(), None),
        ("/readyz", Ready(probes=s.probes), None),
        ("/metrics", MetricsExposition(metrics=s.metrics, probes=s.probes), None),
        ("/openapi.json", OpenApi(), None),
        # The page and its files are public: they hold no data; the page asks for a key.
        ("/", WebPage(assets=s.web_assets), None),
        ("/web/{name}", WebAsset(assets=s.web_assets), None),
        *_share_routes(s, key),
    ]
    for template, resource, rule in routes:
        app.add_route(template, resource)
        if rule is not None:
            guards.protect(template, rule)


def _share_routes(s: Services, key: auth.Guard) -> list:
    """Shares: their owners' ``/shares`` (a full key to change them), and what anyone with a
    share's link opens without a key (a visitor: no user, no writes)."""
    share = {"shares": s.shares, "songs": s.share_songs}
    clip = {"shares": s.shares, "catalogue": s.catalogue, "serving": s.serving}
    owner, visitor = auth.Rule(key, writes=CHANGES), auth.Rule(auth.share_visitor)
    return [
        ("/shares", ShareCollection(**share), owner),
        ("/shares/{share_id}", ShareItem(shares=s.shares), owner),
        ("/share/{share_id}", SharePage(assets=s.web_assets, shares=s.shares), visitor),
        ("/share/{share_id}/songs", SharedSongs(**share), visitor),
        ("/share/{share_id}/stream/{clip_id:uuid}", SharedStream(**clip), visitor),
        ("/share/{share_id}/cover/{clip_id:uuid}", SharedCover(**clip), visitor),
    ]
