"""HTTP resources for the clip catalogue: ``/play``, ``/play/upload``, ``/play/{id}``, stats.

Each responder parses the request, calls the catalogue, and shapes the answer.
"""

from __future__ import annotations

import math
import uuid
from urllib.parse import urlencode, urlsplit

import falcon

from mosic import catalogue as cat
from mosic.auth import require_api_key
from mosic.catalogue import DESCRIPTION_MAX, Catalogue, ListQuery
from mosic.metrics import Metrics
from mosic.models import TAG_MAX, TITLE_MAX, Clip
from mosic.signing import Signer
from mosic.storage import UploadTooLarge
from mosic.uploads import BadUpload, receive_upload

LIMIT_MAX = 500
# Deep enough for any catalogue, small enough for every database's integer type.
OFFSET_MAX = 1_000_000_000
URL_MAX = 2000
JSON_CLIP_FIELDS = {"title", "description", "duration", "audio_url", "artist", "album"}
PATCH_FIELDS = {"title", "description"}
# How a failed upload is counted in mosic_uploads_total, by the status it was answered with.
UPLOAD_OUTCOMES = {400: "invalid", 409: "duplicate", 413: "too_large", 415: "not_audio"}


def iso(moment) -> str | None:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ") if moment else None


def clip_json(clip: Clip, signer: Signer) -> dict:
    stream_path = f"/play/{clip.id}/stream"
    return {
        "id": str(clip.id),
        "title": clip.title,
        "description": clip.description,
        "duration": clip.duration,
        "artist": clip.artist,
        "album": clip.album,
        "content_type": clip.content_type,
        "size": clip.size,
        "audio_url": clip.external_url or stream_path,
        "stream_url": f"{stream_path}?{signer.query(str(clip.id))}",
        "play_count": clip.play_count,
        "created_at": iso(clip.created_at),
    }


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


def bad_request(description: str) -> falcon.HTTPBadRequest:
    return falcon.HTTPBadRequest(title="Invalid request", description=description)


def _int_param(req, name: str, minimum: int, maximum: int | None = None) -> int | None:
    raw = req.get_param(name)
    if raw is None:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise bad_request(f"'{name}' must be a whole number, got {raw!r}") from None
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"between {minimum} and {maximum}" if maximum else f"at least {minimum}"
        raise bad_request(f"'{name}' must be {bound}, got {value}")
    return value


def parse_list_query(req) -> ListQuery:
    limit = _int_param(req, "limit", 1, LIMIT_MAX)
    offset = _int_param(req, "offset", 0, OFFSET_MAX)
    cursor = req.get_param("cursor")
    if offset is not None and cursor is not None:
        raise bad_request("use either 'offset' or 'cursor', not both")
    sort = req.get_param("sort") or cat.DEFAULT_SORT
    if sort.lstrip("-") not in cat.SORT_FIELDS or sort.count("-") > 1:
        allowed = ", ".join(f"{f}, -{f}" for f in cat.SORT_FIELDS)
        raise bad_request(f"'sort' must be one of {allowed}; got {sort!r}")
    q = req.get_param("q")
    if q is not None and len(q) > TITLE_MAX * 5:
        raise bad_request("'q' is too long")
    if q is not None and "\x00" in q:
        raise bad_request("'q' must not contain NUL characters")
    return ListQuery(limit=limit or 100, offset=offset, cursor=cursor, q=q or None, sort=sort)


def next_link(req, query: ListQuery, page: cat.Page) -> str | None:
    params = {"limit": query.limit, "sort": query.sort}
    if query.q:
        params["q"] = query.q
    if page.next_offset is not None:
        params["offset"] = page.next_offset
    elif page.next_cursor is not None:
        params["cursor"] = page.next_cursor
    else:
        return None
    return f'<{req.path}?{urlencode(params)}>; rel="next"'


def _text(body: dict, name: str, limit: int, *, required: bool = False) -> str | None:
    value = body.get(name)
    if value is None:
        if required:
            raise bad_request(f"'{name}' is required")
        return None
    if not isinstance(value, str):
        raise bad_request(f"'{name}' must be a string")
    try:
        value = cat.client_text(name, value, limit)
    except cat.InvalidText as exc:
        raise bad_request(str(exc)) from None
    if required and value is None:
        raise bad_request(f"'{name}' must not be empty")
    return value


def _duration(body: dict) -> float:
    value = body.get("duration")
    if value is None:
        raise bad_request("'duration' is required")
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise bad_request("'duration' must be a number of seconds")
    if value < 0:
        raise bad_request("'duration' must not be negative")
    return float(value)


def _audio_url(body: dict) -> str:
    url = _text(body, "audio_url", URL_MAX, required=True)
    try:
        parts = urlsplit(url)
    except ValueError:
        raise bad_request("'audio_url' is not a valid URL") from None
    if parts.scheme not in ("http", "https") or not parts.netloc or any(c.isspace() for c in url):
        raise bad_request("'audio_url' must be an absolute http(s) URL")
    return url


async def json_object(req, allowed: set[str]) -> dict:
    if not (req.content_type or "").lower().startswith("application/json"):
        raise falcon.HTTPUnsupportedMediaType(
            title="Unsupported media type",
            description="send application/json (or multipart/form-data to upload a file)",
        )
    body = await req.get_media()
    if not isinstance(body, dict):
        raise bad_request("the body must be a JSON object")
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise bad_request(
            f"unknown field(s): {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}"
        )
    return body


class ClipsBase:
    def __init__(
        self,
        catalogue: Catalogue,
        signer: Signer,
        api_key: str,
        max_upload_bytes: int,
        metrics: Metrics,
    ) -> None:
        self.catalogue = catalogue
        self.signer = signer
        self.api_key = api_key
        self.max_upload_bytes = max_upload_bytes
        self.metrics = metrics

    def created(self, resp, clip: Clip) -> None:
        resp.status = falcon.HTTP_201
        resp.location = f"/play/{clip.id}"
        resp.media = clip_json(clip, self.signer)

    async def upload(self, req, resp) -> None:
        outcome = "failed"
        try:
            clip = await self._receive(req)
            outcome = "created"
        except falcon.HTTPError as exc:
            outcome = UPLOAD_OUTCOMES.get(exc.status_code, "failed")
            raise
        finally:
            self.metrics.upload(outcome, req.context.get("upload_bytes", 0))
        self.created(resp, clip)

    async def _receive(self, req) -> Clip:
        length = req.content_length
        if length is not None and length > self.max_upload_bytes:
            raise too_large(self.max_upload_bytes)
        try:
            async with receive_upload(req, self.catalogue.store, self.max_upload_bytes) as (
                incoming,
                form,
            ):
                return await self.catalogue.add_upload(incoming, form)
        except UploadTooLarge:
            raise too_large(self.max_upload_bytes) from None
        except BadUpload as exc:
            raise bad_request(str(exc)) from None
        except cat.audio.NotAudio as exc:
            raise falcon.HTTPUnsupportedMediaType(
                title="Not audio",
                description=f"{exc}; supported: MP3, Ogg Vorbis, Opus, FLAC, WAV, AIFF, M4A/AAC",
            ) from None
        except cat.DuplicateClip as exc:
            raise DuplicateUpload(exc.existing_id) from None


def too_large(limit: int) -> falcon.HTTPContentTooLarge:
    return falcon.HTTPContentTooLarge(
        title="Upload too large",
        description=f"uploads are limited to {limit // (1024 * 1024)} MB (MOSIC_MAX_UPLOAD_MB)",
    )


@falcon.before(require_api_key)
class ClipCollection(ClipsBase):
    """``/play``"""

    async def on_get(self, req, resp) -> None:
        query = parse_list_query(req)
        try:
            page = await self.catalogue.list(query)
        except cat.InvalidCursor as exc:
            raise bad_request(f"'cursor': {exc}") from None
        resp.media = [clip_json(clip, self.signer) for clip in page.clips]
        resp.set_header("X-Total-Count", str(page.total))
        link = next_link(req, query, page)
        if link:
            resp.set_header("Link", link)

    async def on_post(self, req, resp) -> None:
        if req.content_type and req.content_type.startswith("multipart/form-data"):
            await self.upload(req, resp)
            return
        body = await json_object(req, JSON_CLIP_FIELDS)
        clip = await self.catalogue.add_external(
            title=_text(body, "title", TITLE_MAX, required=True),
            description=_text(body, "description", DESCRIPTION_MAX),
            duration=_duration(body),
            audio_url=_audio_url(body),
            artist=_text(body, "artist", TAG_MAX),
            album=_text(body, "album", TAG_MAX),
        )
        self.created(resp, clip)


@falcon.before(require_api_key)
class ClipUpload(ClipsBase):
    """``/play/upload``"""

    async def on_post(self, req, resp) -> None:
        if not (req.content_type or "").startswith("multipart/form-data"):
            raise falcon.HTTPUnsupportedMediaType(
                title="Unsupported media type",
                description="send multipart/form-data with a 'file' part",
            )
        await self.upload(req, resp)


@falcon.before(require_api_key)
class ClipItem(ClipsBase):
    """``/play/{clip_id}``"""

    async def on_get(self, req, resp, clip_id: uuid.UUID) -> None:
        resp.media = clip_json(await self.catalogue.get(clip_id), self.signer)

    async def on_patch(self, req, resp, clip_id: uuid.UUID) -> None:
        body = await json_object(req, PATCH_FIELDS)
        changes = {}
        if "title" in body:
            changes["title"] = _text(body, "title", TITLE_MAX, required=True)
        if "description" in body:
            changes["description"] = _text(body, "description", DESCRIPTION_MAX)
        clip = await self.catalogue.update(clip_id, changes)
        resp.media = clip_json(clip, self.signer)

    async def on_delete(self, req, resp, clip_id: uuid.UUID) -> None:
        await self.catalogue.delete(clip_id)
        resp.status = falcon.HTTP_204


@falcon.before(require_api_key)
class ClipStats(ClipsBase):
    """``/play/{clip_id}/stats``"""

    async def on_get(self, req, resp, clip_id: uuid.UUID) -> None:
        clip = await self.catalogue.get(clip_id)
        resp.media = {
            "song_id": str(clip.id),
            "play_count": clip.play_count,
            "last_played_at": iso(clip.last_played_at),
            **clip_json(clip, self.signer),
        }
