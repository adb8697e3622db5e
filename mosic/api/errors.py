"""Domain errors turned into HTTP answers: the one place exceptions become status codes."""

from __future__ import annotations

import logging
import uuid

import falcon
import peewee

from mosic.api.middleware import BodyStalled, request_route
from mosic.core.catalogue import ClipNotFound, InLibraryFolder, NotYours
from mosic.core.covers import NoCover
from mosic.core.lyrics import NoLyrics
from mosic.core.share_songs import NotShareable
from mosic.core.shares import BadShare, NotYourShare, ShareGone, ShareNotFound
from mosic.core.users import BadUser, KeyNotFound, UserConflict, UserNotFound
from mosic.core.waveform import NoWaveform
from mosic.media.storage import StorageFull, StorageUnavailable
from mosic.media.transcode import TranscodeFailed, TranscoderBusy
from mosic.observability.metrics import Metrics

log = logging.getLogger(__name__)
DATABASE_RETRY_AFTER_S = 5
STORAGE_RETRY_AFTER_S = 5
# About how long a busy transcoder takes to free a slot: a few minutes of music at the ~30-70x
# real time PyAV encodes here.
TRANSCODE_RETRY_AFTER_S = 5


def bad_request(description: str) -> falcon.HTTPBadRequest:
    return falcon.HTTPBadRequest(title="Invalid request", description=description)


def too_large(limit: int) -> falcon.HTTPContentTooLarge:
    return falcon.HTTPContentTooLarge(
        title="Upload too large",
        description=f"uploads are limited to {limit // (1024 * 1024)} MB (MOSIC_MAX_UPLOAD_MB)",
    )


class DuplicateUpload(falcon.HTTPConflict):
    def __init__(self, existing_id: uuid.UUID) -> None:
        super().__init__(
            title="Duplicate audio",
            description=f"the same audio is already stored as clip {existing_id}",
            headers={"Location": f"/play/{existing_id}"},
        )
        self.existing_id = str(existing_id)

    def to_dict(self, obj_type=dict):
        body = super().to_dict(obj_type)
        body["existing_id"] = self.existing_id
        return body


# A clip that exists but lacks the part asked for: 404, saying what is missing.
MISSING_PARTS = {
    NoCover: ("No cover", "the clip's file has no embedded picture"),
    NoLyrics: ("No lyrics", "the clip's tags hold no lyrics, and it has no .lrc beside it"),
    NoWaveform: (
        "No waveform",
        "the clip has no stored audio to draw (metadata-only, or undecodable)",
    ),
}


def _not_found(title: str, description: str):
    async def not_found(req, resp, ex, params):
        raise falcon.HTTPNotFound(title=title, description=description)

    return not_found


async def storage_full(req, resp, ex, params):
    # Whatever the upload had written is gone by now (its receiver discards it).
    raise falcon.HTTPInsufficientStorage(
        title="Storage full",
        description="the media store has no space left for this upload",
    )


async def body_stalled(req, resp, ex, params):
    # Closing the connection: the rest of a stalled body is never worth waiting for.
    raise falcon.HTTPError(
        falcon.HTTP_408,
        title="Request body timeout",
        description=str(ex),
        headers={"Connection": "close"},
    )


def register_error_handlers(app: falcon.asgi.App, metrics: Metrics) -> None:
    async def clip_not_found(req, resp, ex, params):
        raise falcon.HTTPNotFound(title="Not found", description="no clip has this id")

    async def no_route(req, resp, ex, params):
        if req.path.startswith("/play/"):
            raise falcon.HTTPNotFound(title="Not found", description="no clip has this id")
        raise falcon.HTTPNotFound(
            title="Not found", description="no such path; the API is described at /openapi.json"
        )

    async def database_error(req, resp, ex, params):
        metrics.database_error(type(ex).__name__)
        # The route, not the path: a share's path is its link's secret.
        log.error("database error on %s %s: %s", req.method, request_route(req), ex)
        raise falcon.HTTPServiceUnavailable(
            title="Database unavailable",
            description="the database did not answer; try again shortly",
            retry_after=DATABASE_RETRY_AFTER_S,
        )

    async def storage_unavailable(req, resp, ex, params):
        metrics.storage_error()
        raise falcon.HTTPServiceUnavailable(
            title="Media store unavailable",
            description=f"{ex}; try again shortly",
            retry_after=STORAGE_RETRY_AFTER_S,
        )

    async def transcoder_busy(req, resp, ex, params):
        raise falcon.HTTPServiceUnavailable(
            title="Transcoders busy",
            description=f"{ex.limit} transcodes are running (MOSIC_TRANSCODE_MAX); try again "
            "shortly, or ask for the original (no 'format')",
            retry_after=TRANSCODE_RETRY_AFTER_S,
        )

    async def transcode_failed(req, resp, ex, params):
        log.warning("cannot transcode %s: %s", req.path, ex)
        raise falcon.HTTPUnprocessableEntity(
            title="Cannot transcode",
            description="the clip's audio could not be decoded for transcoding; "
            "the original is still available (no 'format')",
        )

    _register_refusals(app)
    _register_share_answers(app)
    app.add_error_handler(ClipNotFound, clip_not_found)
    app.add_error_handler(BodyStalled, body_stalled)
    app.add_error_handler(StorageFull, storage_full)
    app.add_error_handler(StorageUnavailable, storage_unavailable)
    app.add_error_handler(TranscoderBusy, transcoder_busy)
    app.add_error_handler(TranscodeFailed, transcode_failed)
    for missing, (title, description) in MISSING_PARTS.items():
        app.add_error_handler(missing, _not_found(title, description))
    app.add_error_handler(falcon.HTTPRouteNotFound, no_route)
    # Every database failure (peewee wraps the drivers' errors in these) is "try again": the
    # client's input was checked before any query ran.
    app.add_error_handler(peewee.PeeweeException, database_error)


def _register_refusals(app: falcon.asgi.App) -> None:
    """What a caller may not change (a library file, another's upload, the admin), and
    users or keys that are not there."""

    async def in_library_folder(req, resp, ex, params):
        raise falcon.HTTPConflict(title="In a music folder", description=str(ex))

    async def user_not_found(req, resp, ex, params):
        raise falcon.HTTPNotFound(title="Not found", description=f"no user is named {str(ex)!r}")

    async def key_not_found(req, resp, ex, params):
        raise falcon.HTTPNotFound(title="Not found", description="the user has no key with this id")

    async def user_conflict(req, resp, ex, params):
        raise falcon.HTTPConflict(title="Conflict", description=str(ex))

    async def bad_user(req, resp, ex, params):
        raise bad_request(str(ex))

    async def not_yours(req, resp, ex, params):
        raise falcon.HTTPForbidden(
            title="Not yours", description="a listener may change and delete its own uploads only"
        )

    app.add_error_handler(InLibraryFolder, in_library_folder)
    app.add_error_handler(NotYours, not_yours)
    app.add_error_handler(UserNotFound, user_not_found)
    app.add_error_handler(KeyNotFound, key_not_found)
    app.add_error_handler(UserConflict, user_conflict)
    app.add_error_handler(BadUser, bad_user)


def _register_share_answers(app: falcon.asgi.App) -> None:
    """Shares: to their owner (``/shares``) and to anyone with their link (``/share/...``)."""

    async def share_not_found(req, resp, ex, params):
        raise falcon.HTTPNotFound(title="Not found", description="no share has this id")

    async def share_gone(req, resp, ex, params):
        raise falcon.HTTPGone(
            title="Share gone", description="this share has expired or was deleted"
        )

    async def not_your_share(req, resp, ex, params):
        raise falcon.HTTPForbidden(
            title="Not yours", description="only its owner or an admin may see or change a share"
        )

    async def bad_share(req, resp, ex, params):
        raise bad_request(str(ex))

    async def not_shareable(req, resp, ex, params):
        raise falcon.HTTPNotFound(
            title="Not found",
            description=f"no song, album or playlist you see has the id {str(ex)[:80]!r}",
        )

    app.add_error_handler(ShareNotFound, share_not_found)
    app.add_error_handler(ShareGone, share_gone)
    app.add_error_handler(NotYourShare, not_your_share)
    app.add_error_handler(BadShare, bad_share)
    app.add_error_handler(NotShareable, not_shareable)
