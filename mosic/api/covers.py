"""``GET /play/{clip_id}/cover``: the picture embedded in the clip's file.

Covers are small and stored by content hash, so the hash is a strong ETag and the bytes are
sent whole (no ranges), by ``mosic.api.serving``.
"""

from __future__ import annotations

import uuid

from mosic.api.serving import ByteServer
from mosic.core.catalogue import Catalogue


class ClipCover:
    def __init__(self, *, catalogue: Catalogue, serving: ByteServer) -> None:
        self._catalogue = catalogue
        self._serving = serving

    async def on_get(self, req, resp, clip_id: uuid.UUID) -> None:
        clip = await self._catalogue.get(clip_id, seen=req.context.grant.folders)
        await self._serving.cover(req, resp, clip)  # NoCover: 404 (mosic.api.errors)
