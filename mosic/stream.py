"""``GET``/``HEAD /play/{clip_id}/stream``: the audio itself, with seeking.

The decisions (which bytes, 304 or not, a play or not) are made by ``mosic.streaming``;
this resource applies them and hands the body to the server in chunks from storage.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import uuid

import falcon

from mosic import streaming
from mosic.auth import require_api_key_or_signature
from mosic.catalogue import Catalogue
from mosic.metrics import Metrics
from mosic.signing import Signer
from mosic.storage import StoredFile

DISCONNECT_EVENT = "mosic.disconnected"
UNKNOWN_SIZE = sys.maxsize


@falcon.before(require_api_key_or_signature)
class ClipStream:
    def __init__(
        self, catalogue: Catalogue, signer: Signer, api_key: str, metrics: Metrics
    ) -> None:
        self.catalogue = catalogue
        self.signer = signer
        self.api_key = api_key
        self.metrics = metrics

    async def on_get(self, req, resp, clip_id: uuid.UUID) -> None:
        await self._serve(req, resp, clip_id)

    async def on_head(self, req, resp, clip_id: uuid.UUID) -> None:
        await self._serve(req, resp, clip_id)

    async def _serve(self, req, resp, clip_id: uuid.UUID) -> None:
        clip = await self.catalogue.get(clip_id)
        if clip.is_external:
            resp.status = falcon.HTTP_307
            resp.location = clip.external_url
            # The player follows the redirect with the same Range, so the same rule
            # applies; the size is unknown, so only a plain GET or a long range from 0 counts.
            try:
                asked = streaming.parse_range(req.get_header("Range"), UNKNOWN_SIZE)
            except streaming.RangeNotSatisfiable:
                return
            if streaming.counts_as_play(req.method, asked, UNKNOWN_SIZE):
                await self._count(clip_id)
            return

        try:
            # Opened before anything is decided or counted: a file that vanished is a 404,
            # never a counted play with a broken body.
            stored = await self.catalogue.store.open(clip.file_name)
        except FileNotFoundError:
            raise falcon.HTTPNotFound(
                title="Audio missing",
                description="the clip exists but its audio file is gone from the media store",
            ) from None
        try:
            byte_range = self._respond(req, resp, clip, stored)
            if resp.stream is not None and streaming.counts_as_play(
                req.method, byte_range, stored.size
            ):
                await self._count(clip_id)
        except BaseException:
            resp.stream = None  # never started, so it would not close the file itself
            raise
        finally:
            if resp.stream is None:
                stored.close()

    def _respond(self, req, resp, clip, stored: StoredFile) -> streaming.ByteRange | None:
        """Set status and headers, and the body stream when bytes are to be sent; return
        the range served (None for the whole file)."""
        size = stored.size
        etag = streaming.etag_for(clip.sha256)
        resp.accept_ranges = "bytes"
        resp.etag = etag
        resp.set_header("Last-Modified", streaming.http_date(clip.created_at))
        resp.content_type = clip.content_type
        # Signed links are per listener; shared caches must not keep them.
        resp.cache_control = ["private", "max-age=0", "must-revalidate"]

        if streaming.not_modified(
            req.get_header("If-None-Match"),
            req.get_header("If-Modified-Since"),
            etag,
            clip.created_at,
        ):
            resp.status = falcon.HTTP_304
            return None

        byte_range = None
        if streaming.range_applies(req.get_header("If-Range"), etag, clip.created_at):
            try:
                byte_range = streaming.parse_range(req.get_header("Range"), size)
            except streaming.RangeNotSatisfiable:
                raise falcon.HTTPRangeNotSatisfiable(
                    size, description=f"the clip has {size} bytes"
                ) from None

        start, length = 0, size
        if byte_range is not None:
            resp.status = falcon.HTTP_206
            resp.content_range = (byte_range.start, byte_range.end, size)
            start, length = byte_range.start, byte_range.length
        resp.content_length = length
        if req.method != "HEAD":
            resp.stream = self._body(req, stored, start, length)
        return byte_range

    async def _count(self, clip_id: uuid.UUID) -> None:
        if await self.catalogue.record_play(clip_id) is not None:
            self.metrics.play()

    async def _body(self, req, stored: StoredFile, start: int, length: int):
        disconnected: asyncio.Event | None = req.scope.get(DISCONNECT_EVENT)
        sent = 0
        self.metrics.stream_started()
        try:
            async for chunk in stored.chunks(start, length):
                if disconnected is not None and disconnected.is_set():
                    break
                sent += len(chunk)
                yield chunk
        finally:
            self.metrics.stream_finished(sent)


class DisconnectWatcher:
    """ASGI wrapper that tells a running stream when its listener has gone.

    Servers turn ``send`` into a no-op after a disconnect, so without this a stream would keep
    reading its file to the end for nobody. Once the response has started (the request body
    is consumed by then in every Mosic route), a task waits for ``http.disconnect``.
    """

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        disconnected = asyncio.Event()
        scope[DISCONNECT_EVENT] = disconnected
        watcher: asyncio.Task | None = None

        async def watch() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            disconnected.set()

        async def send_and_watch(message) -> None:
            nonlocal watcher
            await send(message)
            if watcher is None and message["type"] == "http.response.start":
                watcher = asyncio.create_task(watch())

        try:
            await self.app(scope, receive, send_and_watch)
        finally:
            if watcher is not None:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher
