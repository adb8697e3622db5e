"""``GET``/``HEAD /play/{clip_id}/stream``: the audio itself, with seeking, or transcoded
(``?format=opus|mp3&bitrate=K``, made by ``mosic.media.transcode``).

``send_media`` is the one place that turns stored media into an HTTP answer (Range,
validators, chunked body); which bytes to send is decided by ``mosic.media.ranges``, and
whether the request is a listen by ``mosic.core.plays``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import falcon

from mosic.api import params
from mosic.api.middleware import DISCONNECT_EVENT
from mosic.core.catalogue import Catalogue
from mosic.core.plays import PlayRecorder, counts_as_play
from mosic.media import ranges
from mosic.media.storage import MediaMissing, StoredMedia
from mosic.media.transcode import Rendition, Transcoder
from mosic.observability.metrics import Metrics
from mosic.persistence.models import Clip

# A redirect's target has a size we do not know; any range end is "before the end".
UNKNOWN_SIZE = sys.maxsize
# Signed links are per listener; shared caches must not keep them.
PRIVATE = ["private", "max-age=0", "must-revalidate"]
# Conditions nginx would judge by the file's own mtime (Mosic ignores them), and If-Range,
# which Mosic may judge differently from nginx: such requests are served by Mosic itself.
NOT_OFFLOADED_IF = ("If-Range", "If-Match", "If-Unmodified-Since")


@dataclass(frozen=True)
class Validators:
    etag: str
    last_modified: dt.datetime
    content_type: str
    # "/internal-media/<file name>" when nginx may send the bytes (X-Accel-Redirect).
    offload_uri: str | None = None


class ClipStream:
    def __init__(
        self,
        *,
        catalogue: Catalogue,
        plays: PlayRecorder,
        transcoder: Transcoder,
        metrics: Metrics,
        link_ttl: int,
        accel_redirect: str | None = None,
    ) -> None:
        self._catalogue = catalogue
        self._plays = plays
        self._transcoder = transcoder
        self._metrics = metrics
        self._link_ttl = link_ttl
        self._accel = accel_redirect

    def _link_lifetime(self, req) -> int:
        """How long a presigned URL may live: as long as the signed link that asked for it
        (verified by the guard before we get here), else as long as a new signed link."""
        expires = req.get_param("expires")
        if expires is None:
            return self._link_ttl
        return max(1, int(expires) - int(time.time()))

    async def on_get(self, req, resp, clip_id: uuid.UUID) -> None:
        await self._serve(req, resp, clip_id)

    async def on_head(self, req, resp, clip_id: uuid.UUID) -> None:
        await self._serve(req, resp, clip_id)

    async def _serve(self, req, resp, clip_id: uuid.UUID) -> None:
        rendition = params.rendition(req)
        clip = await self._catalogue.get(clip_id)
        if rendition is None and clip.is_external:
            await self._redirect(req, resp, clip_id, clip.external_url)
            return

        async def count_listen(byte_range, size) -> None:
            if counts_as_play(req.method, byte_range, size):
                await self._plays.record(clip_id)

        try:
            if rendition is not None:
                await serve_rendition(
                    req,
                    resp,
                    clip,
                    rendition,
                    catalogue=self._catalogue,
                    transcoder=self._transcoder,
                    metrics=self._metrics,
                    link_lifetime=self._link_lifetime(req),
                    on_sent=count_listen,
                )
                return
            await serve_stored(
                req,
                resp,
                clip,
                catalogue=self._catalogue,
                metrics=self._metrics,
                link_lifetime=self._link_lifetime(req),
                on_sent=count_listen,
                offload_prefix=self._accel,
            )
        except MediaMissing:
            raise falcon.HTTPNotFound(
                title="Audio missing",
                description="the clip exists but its audio file is gone from the media store",
            ) from None

    async def _redirect(self, req, resp, clip_id: uuid.UUID, url: str) -> None:
        resp.status = falcon.HTTP_307
        resp.location = url
        # The player follows the redirect with the same Range, so the same rule applies;
        # the size is unknown, so only a plain GET or a long range from 0 counts.
        try:
            asked = ranges.parse_range(req.get_header("Range"), UNKNOWN_SIZE)
        except ranges.RangeNotSatisfiable:
            return
        if counts_as_play(req.method, asked, UNKNOWN_SIZE):
            await self._plays.record(clip_id)


OnSent = Callable[[ranges.ByteRange | None, int], Awaitable[None]]


async def serve_stored(
    req,
    resp,
    clip: Clip,
    *,
    catalogue: Catalogue,
    metrics: Metrics,
    link_lifetime: int,
    on_sent: OnSent | None = None,
    offload_prefix: str | None = None,
) -> None:
    """Answer with a stored clip's bytes, or a 307 to the store's own URL for them (valid
    ``link_lifetime`` seconds); ``on_sent(byte_range, size)`` is awaited once the answer
    sends or redirects to bytes (for the play rule). Raises ``MediaMissing`` when the file is
    gone. With ``offload_prefix`` (MOSIC_ACCEL_REDIRECT), nginx may be asked to send them."""
    # Opened before anything is decided or counted: a file that vanished is never a counted
    # play with a broken body.
    media = await catalogue.open_media(clip)
    # nginx sends from the media root; a library clip's file is in its music folder.
    offloads = offload_prefix and getattr(clip, "source", None) != "library"
    offload = offload_prefix + clip.file_name if offloads else None
    validators = Validators(
        ranges.etag_for(clip.sha256), clip.created_at, clip.content_type, offload
    )
    await serve_media(
        req,
        resp,
        media,
        validators,
        metrics=metrics,
        link_lifetime=link_lifetime,
        on_sent=on_sent,
    )


async def serve_rendition(
    req,
    resp,
    clip: Clip,
    rendition: Rendition,
    *,
    catalogue: Catalogue,
    transcoder: Transcoder,
    metrics: Metrics,
    link_lifetime: int,
    on_sent: OnSent | None = None,
) -> None:
    """A clip transcoded: a finished rendition is served like a file; otherwise it is made
    while it is sent (200, no length, no ranges), and kept for the next listener."""
    if clip.is_external:
        raise falcon.HTTPNotFound(
            title="Nothing to transcode",
            description="a metadata-only clip has no stored audio to transcode",
        )
    cached = await transcoder.cached(clip.sha256, rendition)
    content_type = rendition.format.content_type
    if cached is not None:
        etag = ranges.etag_for(clip.sha256, rendition.tag)
        validators = Validators(etag, clip.created_at, content_type)
        await serve_media(
            req, resp, cached, validators, metrics=metrics, link_lifetime=link_lifetime,
            on_sent=on_sent,
        )  # fmt: skip
        return
    resp.accept_ranges = "none"
    resp.content_type = content_type
    resp.cache_control = PRIVATE
    # Opened first: a source that vanished is a 404, never a counted play.
    media = await catalogue.open_media(clip)
    if req.method == "HEAD":
        await media.close()
        return  # no work is started for a HEAD
    transcode = await transcoder.start(
        clip.sha256, media, lambda: catalogue.open_media(clip), rendition
    )
    try:
        # A progressive answer always starts at byte 0 and runs to the end: a listen.
        if on_sent is not None:
            await on_sent(None, media.size)
    except BaseException:
        transcode.stop()
        raise
    resp.stream = _body(req.scope.get(DISCONNECT_EVENT), transcode.chunks(), metrics)


async def serve_media(
    req,
    resp,
    media: StoredMedia,
    validators: Validators,
    *,
    metrics: Metrics,
    link_lifetime: int,
    on_sent: OnSent | None = None,
) -> None:
    """As ``serve_stored``, for media already open (a stored clip, or a cached rendition);
    the answer owns ``media`` and closes it."""
    try:
        url = await media.direct_url(link_lifetime)
        if url is not None:
            byte_range = redirect_media(req, resp, media, validators, url)
            sending = resp.status == falcon.HTTP_307
        else:
            byte_range = send_media(req, resp, media, validators, metrics)
            sending = resp.stream is not None
        if sending and on_sent is not None:
            await on_sent(byte_range, media.size)
    except BaseException:
        resp.stream = None  # never started, so it would not close the media itself
        raise
    finally:
        if resp.stream is None:
            await media.close()


def _headers(req, resp, size: int, validators: Validators) -> bool:
    """Set the headers every answer carries; True when the answer is a 304."""
    resp.accept_ranges = "bytes"
    resp.etag = validators.etag
    resp.set_header("Last-Modified", ranges.http_date(validators.last_modified))
    resp.content_type = validators.content_type
    resp.cache_control = PRIVATE
    if ranges.not_modified(
        req.get_header("If-None-Match"),
        req.get_header("If-Modified-Since"),
        validators.etag,
        validators.last_modified,
    ):
        resp.status = falcon.HTTP_304
        return True
    return False


def _asked_range(req, size: int, validators: Validators) -> ranges.ByteRange | None:
    if not ranges.range_applies(
        req.get_header("If-Range"), validators.etag, validators.last_modified
    ):
        return None
    try:
        return ranges.parse_range(req.get_header("Range"), size)
    except ranges.RangeNotSatisfiable:
        description = f"the clip has {size} bytes"
        raise falcon.HTTPRangeNotSatisfiable(size, description=description) from None


def send_media(
    req, resp, media: StoredMedia, validators: Validators, metrics: Metrics
) -> ranges.ByteRange | None:
    """Set status and headers, and the body stream when bytes are to be sent; return the
    range served (None for the whole file). The body closes ``media`` when it ends."""
    size = media.size
    if _headers(req, resp, size, validators):
        return None
    byte_range = _asked_range(req, size, validators)
    start, length = 0, size
    if byte_range is not None:
        resp.status = falcon.HTTP_206
        resp.content_range = (byte_range.start, byte_range.end, size)
        start, length = byte_range.start, byte_range.length
    resp.content_length = length
    if req.method == "HEAD":
        return byte_range
    if validators.offload_uri and _nginx_agrees(req, byte_range):
        _offload(resp, validators.offload_uri, byte_range)
        resp.stream = _closing(media)
    else:
        chunks = media.chunks(start, length)
        resp.stream = _body(req.scope.get(DISCONNECT_EVENT), chunks, metrics)
    return byte_range


def _nginx_agrees(req, byte_range: ranges.ByteRange | None) -> bool:
    """Whether nginx, given the same request, sends exactly the bytes Mosic decided on: no
    Range, or one well-formed range, and no condition nginx would judge by itself."""
    if any(req.get_header(name) for name in NOT_OFFLOADED_IF):
        return False
    asked = req.get_header("Range")
    if asked is None:
        return True
    # A header Mosic ignores, or several ranges (Mosic sends the first), nginx would not.
    return byte_range is not None and asked.startswith("bytes=") and "," not in asked


def _offload(resp, uri: str, byte_range: ranges.ByteRange | None) -> None:
    """Let nginx send the file: it keeps our Content-Type and Cache-Control, takes ETag and
    Last-Modified from us (deploy/nginx/mosic.conf), and applies the Range itself; it adds
    Accept-Ranges of its own to a 200 (not to a 206), where ours would be a duplicate."""
    resp.status = falcon.HTTP_200
    if byte_range is None:
        resp.accept_ranges = None
    resp.content_range = None
    resp.content_length = 0
    resp.set_header("X-Accel-Redirect", uri)


async def _closing(media: StoredMedia):
    """The empty body of an offloaded answer; it closes ``media`` as ``_body`` would."""
    try:
        return
        yield
    finally:
        await media.close()


def redirect_media(
    req, resp, media: StoredMedia, validators: Validators, url: str
) -> ranges.ByteRange | None:
    """As ``send_media``, but a GET that would get bytes is sent to ``url`` (307) to fetch
    them itself, with its Range; HEAD and 304 are answered here. Returns the range asked."""
    if _headers(req, resp, media.size, validators):
        return None
    byte_range = _asked_range(req, media.size, validators)
    if req.method == "HEAD":
        resp.content_length = media.size
        return byte_range
    resp.status = falcon.HTTP_307
    resp.location = url
    return byte_range


async def _body(disconnected: asyncio.Event | None, chunks: AsyncIterator[bytes], metrics: Metrics):
    """Send ``chunks`` until they end or the listener leaves; closing them stops their
    source (the file read, or the encoder)."""
    sent = 0
    metrics.stream_started()
    try:
        async with contextlib.aclosing(chunks):
            async for chunk in chunks:
                if disconnected is not None and disconnected.is_set():
                    break
                sent += len(chunk)
                yield chunk
    finally:
        metrics.stream_finished(sent)
