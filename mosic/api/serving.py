"""Serving bytes: the one place where a clip's audio, a rendition of it, its cover or its peaks
become an HTTP answer, for every API family (REST, Subsonic, and shares to come).

A family's resource finds the clip, decides whether its requests count plays, and calls
``ByteServer``; which bytes to send is decided by ``mosic.media.ranges``, and whether a request
is a listen by ``mosic.core.plays``.

**The cache policy**, one for every answer about a clip (``revalidate``): a strong ``ETag``
from a hash of what is sent, ``Last-Modified`` when the clip was added, its ``Content-Type``,
and ``Cache-Control: private, max-age=0, must-revalidate``; ``If-None-Match`` or, without it,
``If-Modified-Since`` gives a 304. A rendition being encoded has no validators yet, only the
``Cache-Control``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import logging
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import falcon

from mosic.api.decisions import DECIDE_HEADER, FILE_HEADER, asks_decision
from mosic.api.middleware import DISCONNECT_EVENT
from mosic.core.catalogue import Catalogue
from mosic.core.covers import Covers
from mosic.core.plays import PlayRecorder, counts_as_play
from mosic.media import ranges
from mosic.media.storage import StoredMedia
from mosic.media.transcode import Rendition, Transcoder
from mosic.observability.metrics import Metrics
from mosic.persistence.models import UPLOAD, WholeClip

log = logging.getLogger(__name__)

# Signed links are per listener; shared caches must not keep what they open.
CACHE_CONTROL = ["private", "max-age=0", "must-revalidate"]
# A redirect's target has a size we do not know; any range end is "before the end".
UNKNOWN_SIZE = sys.maxsize
# Conditions nginx would judge by the file's own mtime (Mosic ignores them), and If-Range,
# which Mosic may judge differently from nginx: such requests are served by Mosic itself.
NOT_OFFLOADED_IF = ("If-Range", "If-Match", "If-Unmodified-Since")

# An empty part of a body: the server writes nothing, but its ``send`` first waits until the
# listener has taken what was sent before (ASGI's backpressure: uvicorn waits while writing is
# paused, which mosic.cli.connections makes as soon as bytes are left unsent). Sent after each
# chunk, it makes the stream wait there instead of reading the next chunk and holding it while
# it waits: one chunk per stream alive rather than two (200 listeners: 7 MiB less at the peak).
DRAIN = b""
# A stream whose socket keeps taking its chunks never waits, and the loop never runs the task
# that notices its listener left (uvicorn's send returns at once once the listener is gone,
# and a page-cached read does not wait either): without a turn of the loop now and then, a
# stream whose listener hung up read its file to the end for nobody. When 200 listeners of a
# 200 MiB file left at once, that was 38 GiB read with the loop held for 10 s.
TURN_EVERY_BYTES = 1024 * 1024

# Awaited once an answer sends, or redirects to, bytes: (the range sent, or None for the
# whole; the size of what it is a range of).
OnSent = Callable[[ranges.ByteRange | None, int], Awaitable[None]]


@dataclass(frozen=True)
class Validators:
    """What a client's copy of an answer about a clip is checked against."""

    etag: str
    last_modified: dt.datetime
    content_type: str

    @classmethod
    def of(
        cls, clip: WholeClip, content_hash: str, content_type: str, variant: str | None = None
    ) -> Validators:
        """Every answer about a clip: an ETag from the hash of what it sends (and the
        ``variant`` of it), and, as its date, when the clip was added."""
        return cls(ranges.etag_for(content_hash, variant), clip.created_at, content_type)


def revalidate(req, resp, validators: Validators) -> bool:
    """Put the cache policy's headers on the answer and judge the client's copy: True when it
    is current, and the answer is then a 304 with nothing more to send."""
    resp.etag = validators.etag
    resp.set_header("Last-Modified", ranges.http_date(validators.last_modified))
    resp.content_type = validators.content_type
    resp.cache_control = CACHE_CONTROL
    if ranges.not_modified(
        req.get_header("If-None-Match"),
        req.get_header("If-Modified-Since"),
        validators.etag,
        validators.last_modified,
    ):
        resp.status = falcon.HTTP_304
        return True
    return False


def send_whole(req, resp, validators: Validators, body: Callable[[], bytes]) -> None:
    """A small answer (a cover, peaks) sent whole, without ranges, under the cache policy;
    ``body`` is made only when the client's copy is not current."""
    if revalidate(req, resp, validators):
        return
    resp.data = body()


# The player a counted REST stream is "now playing" on (getNowPlaying's playerName).
REST_PLAYER = "Mosic"


@dataclass(frozen=True, kw_only=True)
class ByteServer:
    """Answers with a clip's bytes: stored, transcoded, kept elsewhere, or its cover.

    ``link_ttl``: how long an object store's presigned URL lives when the caller names no
    lifetime. ``offload_prefix`` (MOSIC_ACCEL_REDIRECT): nginx may be asked to send stored
    files, as ``<prefix><file name>``. ``decides`` (MOSIC_NGINX_AUTH_REQUEST): nginx asks
    before each stream whether to send the file itself (``mosic.api.decisions``)."""

    catalogue: Catalogue
    covers: Covers
    plays: PlayRecorder
    transcoder: Transcoder
    metrics: Metrics
    link_ttl: int
    offload_prefix: str | None = None
    decides: bool = False

    async def clip(
        self,
        req,
        resp,
        clip: WholeClip,
        *,
        counts_plays: bool,
        rendition: Rendition | None = None,
        start_s: float = 0.0,
        link_lifetime: int | None = None,
    ) -> None:
        """Answer with the clip's audio, or ``rendition`` of it (started ``start_s`` seconds
        into the song); a metadata-only clip with a 307 to its own URL. With ``counts_plays``
        a request that is a listen by the play rule counts one play. A presigned URL lives
        ``link_lifetime`` seconds (default ``link_ttl``). Raises ``MediaMissing`` when the
        stored file is gone."""
        if start_s and rendition is None:
            raise ValueError("only a transcode starts later in the song")
        lifetime = self.link_ttl if link_lifetime is None else link_lifetime
        on_sent = self._listen_counter(req, clip, start_s) if counts_plays else None
        if asks_decision(req):
            if not self.decides:
                _warn_undecided()
            elif rendition is None and not clip.is_external and clip.source == UPLOAD:
                await self._decide(req, resp, clip, on_sent)
            return  # anything else: a 204, and nginx passes the request on
        if rendition is not None:
            await self._rendition(req, resp, clip, rendition, start_s, lifetime, on_sent)
        elif clip.is_external:
            await _elsewhere(req, resp, clip.external_url, on_sent)
        else:
            await self._stored(req, resp, clip, lifetime, on_sent)

    async def cover(self, req, resp, clip: WholeClip, size: int | None = None) -> None:
        """Answer with the clip's cover, at most ``size`` pixels a side when given; raises
        ``NoCover`` when it has none."""
        cover = await self.covers.at(clip, size)
        send_whole(req, resp, Validators.of(clip, cover.name, cover.mime), lambda: cover.data)

    def _listen_counter(self, req, clip: WholeClip, start_s: float) -> OnSent:
        async def count(byte_range: ranges.ByteRange | None, size: int) -> None:
            if counts_as_play(req.method, byte_range, size, start_s):
                await self.plays.record(clip.id, req.context.grant.user, REST_PLAYER)

        return count

    async def _stored(
        self, req, resp, clip: WholeClip, link_lifetime: int, on_sent: OnSent | None
    ) -> None:
        # Opened before anything is decided or counted: a file that vanished is never a
        # counted play with a broken body.
        media = await self.catalogue.open_media(clip)
        # nginx sends from the media root; a library clip's file lies in its music folder.
        offloads = self.offload_prefix and clip.source == UPLOAD
        offload = self.offload_prefix + clip.file_name if offloads else None
        validators = Validators.of(clip, clip.sha256, clip.content_type)
        await self._media(req, resp, media, validators, link_lifetime, on_sent, offload)

    async def _decide(self, req, resp, clip: WholeClip, on_sent: OnSent | None) -> None:
        """nginx's question about a stored upload: name the file when nginx, sending it,
        sends exactly what Mosic would, and count the play as if Mosic had sent it; else
        leave the answer a 204 (a 304, 416 or HEAD is Mosic's to answer)."""
        media = await self.catalogue.open_media(clip)  # a vanished file: Mosic's 404
        try:
            validators = Validators.of(clip, clip.sha256, clip.content_type)
            if req.method != "GET" or revalidate(req, resp, validators):
                return
            try:
                byte_range = _asked_range(req, media.size, validators)
            except falcon.HTTPRangeNotSatisfiable:
                return
            if not _nginx_agrees(req, byte_range):
                return
            resp.status = falcon.HTTP_200
            resp.content_length = 0
            resp.set_header(FILE_HEADER, clip.file_name)
            if on_sent is not None:
                await on_sent(byte_range, media.size)
        finally:
            await media.close()

    async def _rendition(
        self,
        req,
        resp,
        clip: WholeClip,
        rendition: Rendition,
        start_s: float,
        link_lifetime: int,
        on_sent: OnSent | None,
    ) -> None:
        """A finished rendition is served like a file; otherwise it is made while it is sent
        (200, no length, no ranges), and kept for the next listener. One that starts later
        (``start_s``) is always made, and never kept (``mosic.media.transcode`` says why)."""
        if clip.is_external:
            raise falcon.HTTPNotFound(
                title="Nothing to transcode",
                description="a metadata-only clip has no stored audio to transcode",
            )
        cached = None if start_s else await self.transcoder.cached(clip.sha256, rendition)
        content_type = rendition.format.content_type
        if cached is not None:
            validators = Validators.of(clip, clip.sha256, content_type, rendition.tag)
            await self._media(req, resp, cached, validators, link_lifetime, on_sent)
            return
        resp.accept_ranges = "none"
        resp.content_type = content_type
        resp.cache_control = CACHE_CONTROL
        # Opened first: a source that vanished is a 404, never a counted play.
        media = await self.catalogue.open_media(clip)
        if req.method == "HEAD":
            await media.close()
            return  # no work is started for a HEAD
        transcode = await self.transcoder.start(
            clip.sha256, media, lambda: self.catalogue.open_media(clip), rendition, start_s
        )
        try:
            # A progressive answer always starts at byte 0 and runs to the end: a listen,
            # when it starts with the song.
            if on_sent is not None:
                await on_sent(None, media.size)
        except BaseException:
            transcode.stop()
            raise
        resp.stream = _body(req.scope.get(DISCONNECT_EVENT), transcode.chunks(), self.metrics)

    async def _media(
        self,
        req,
        resp,
        media: StoredMedia,
        validators: Validators,
        link_lifetime: int,
        on_sent: OnSent | None,
        offload_uri: str | None = None,
    ) -> None:
        """Media already open (a stored clip, or a cached rendition), sent or redirected to;
        the answer owns ``media`` and closes it."""
        try:
            url = await media.direct_url(link_lifetime, validators.content_type)
            if url is not None:
                byte_range = _redirect_media(req, resp, media, validators, url)
                sending = resp.status == falcon.HTTP_307
            else:
                byte_range = _send_media(req, resp, media, validators, self.metrics, offload_uri)
                sending = resp.stream is not None
            if sending and on_sent is not None:
                await on_sent(byte_range, media.size)
        except BaseException:
            resp.stream = None  # never started, so it would not close the media itself
            raise
        finally:
            if resp.stream is None:
                await media.close()


@functools.cache
def _warn_undecided() -> None:
    log.warning(
        "nginx asks before streams (%s), but MOSIC_NGINX_AUTH_REQUEST is off: every stream is"
        " passed back to Mosic, which sends the bytes itself",
        DECIDE_HEADER,
    )


async def _elsewhere(req, resp, url: str, on_sent: OnSent | None) -> None:
    """A metadata-only clip: a 307 to where its audio is."""
    resp.status = falcon.HTTP_307
    resp.location = url
    # The player follows the redirect with the same Range, so the same rule applies;
    # the size is unknown, so only a plain GET or a long range from 0 counts.
    try:
        asked = ranges.parse_range(req.get_header("Range"), UNKNOWN_SIZE)
    except ranges.RangeNotSatisfiable:
        return
    if on_sent is not None:
        await on_sent(asked, UNKNOWN_SIZE)


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


def _send_media(
    req,
    resp,
    media: StoredMedia,
    validators: Validators,
    metrics: Metrics,
    offload_uri: str | None = None,
) -> ranges.ByteRange | None:
    """Set status and headers, and the body stream when bytes are to be sent; return the
    range served (None for the whole file). The body closes ``media`` when it ends. With
    ``offload_uri`` ("/internal-media/<file name>"), nginx may send the bytes."""
    resp.accept_ranges = "bytes"
    if revalidate(req, resp, validators):
        return None
    size = media.size
    byte_range = _asked_range(req, size, validators)
    start, length = 0, size
    if byte_range is not None:
        resp.status = falcon.HTTP_206
        resp.content_range = (byte_range.start, byte_range.end, size)
        start, length = byte_range.start, byte_range.length
    resp.content_length = length
    if req.method == "HEAD":
        return byte_range
    if offload_uri and _nginx_agrees(req, byte_range):
        _offload(resp, offload_uri, byte_range)
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


def _redirect_media(
    req, resp, media: StoredMedia, validators: Validators, url: str
) -> ranges.ByteRange | None:
    """As ``_send_media``, but a GET that would get bytes is sent to ``url`` (307) to fetch
    them itself, with its Range; HEAD and 304 are answered here. Returns the range asked."""
    resp.accept_ranges = "bytes"
    if revalidate(req, resp, validators):
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
    source (the file read, or the encoder). The next chunk is read only once the listener
    has taken what the socket could not (``DRAIN``), and the loop turns at least once a MiB
    (``TURN_EVERY_BYTES``)."""
    sent = turned_at = 0
    metrics.stream_started()
    try:
        async with contextlib.aclosing(chunks):
            async for chunk in chunks:
                if disconnected is not None and disconnected.is_set():
                    break
                sent += len(chunk)
                yield chunk
                yield DRAIN
                if sent - turned_at >= TURN_EVERY_BYTES:
                    turned_at = sent
                    await asyncio.sleep(0)  # lets the loop see a listener who left
    finally:
        metrics.stream_finished(sent)
