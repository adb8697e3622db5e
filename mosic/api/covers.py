"""``GET /play/{clip_id}/cover``: the picture embedded in the clip's file.

Covers are small and stored by content hash, so the hash is a strong ETag and the bytes are
sent whole (no ranges).
"""

from __future__ import annotations

import uuid

import falcon

from mosic.core.catalogue import Catalogue
from mosic.media import ranges
from mosic.persistence.models import Clip


class ClipCover:
    def __init__(self, *, catalogue: Catalogue) -> None:
        self._catalogue = catalogue

    async def on_get(self, req, resp, clip_id: uuid.UUID) -> None:
        clip = await self._catalogue.get(clip_id)
        await send_cover(req, resp, clip, self._catalogue)  # NoCover: 404 (mosic.api.errors)


async def send_cover(req, resp, clip: Clip, catalogue: Catalogue, size: int | None = None) -> None:
    """Answer with the clip's cover, at most ``size`` pixels a side when given (ETag, 304);
    raises ``NoCover`` when it has none."""
    cover = await catalogue.cover_at(clip, size)
    etag = ranges.etag_for(cover.name)
    resp.etag = etag
    # Signed links are per listener; shared caches must not keep them.
    resp.cache_control = ["private", "max-age=0", "must-revalidate"]
    if ranges.not_modified(req.get_header("If-None-Match"), None, etag, clip.created_at):
        resp.status = falcon.HTTP_304
        return
    resp.content_type = cover.mime
    resp.data = cover.data
