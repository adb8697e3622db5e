"""``GET``/``HEAD /play/{clip_id}/stream``: the audio itself, with seeking, or transcoded
(``?format=opus|mp3&bitrate=K``, made by ``mosic.media.transcode``), from ``offset`` seconds
into the song when asked.

The bytes are served by ``mosic.api.serving``; a REST stream counts plays by the play rule.
"""

from __future__ import annotations

import time
import uuid

import falcon

from mosic.api import params
from mosic.api.serving import ByteServer
from mosic.core.catalogue import Catalogue
from mosic.media.storage import MediaMissing


class ClipStream:
    def __init__(self, *, catalogue: Catalogue, serving: ByteServer) -> None:
        self._catalogue = catalogue
        self._serving = serving

    async def on_get(self, req, resp, clip_id: uuid.UUID) -> None:
        await self._serve(req, resp, clip_id)

    async def on_head(self, req, resp, clip_id: uuid.UUID) -> None:
        await self._serve(req, resp, clip_id)

    async def _serve(self, req, resp, clip_id: uuid.UUID) -> None:
        rendition = params.rendition(req)
        start_s = params.start_offset(req, rendition)
        clip = await self._catalogue.get(clip_id, seen=req.context.grant.folders)
        try:
            await self._serving.clip(
                req,
                resp,
                clip,
                counts_plays=True,
                rendition=rendition,
                start_s=start_s,
                link_lifetime=signed_link_lifetime(req),
            )
        except MediaMissing:
            raise falcon.HTTPNotFound(
                title="Audio missing",
                description="the clip exists but its audio file is gone from the media store",
            ) from None


def signed_link_lifetime(req) -> int | None:
    """How long a presigned URL may live: as long as the signed link that asked for it
    (verified by the guard before we get here); None without one (a new link's lifetime)."""
    expires = req.get_param("expires")
    if expires is None:
        return None
    return max(1, int(expires) - int(time.time()))
