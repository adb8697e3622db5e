"""``GET /play/{clip_id}/lyrics``: the clip's lyrics as lines, each with when it starts.

One set of lyrics: the first of the clip's (``SongLyrics.of``: its ``.lrc`` sidecar, then
synced tags, then plain ones). ``start_ms`` has the lyrics' offset applied, so a player only
compares it with its position; null in unsynced lyrics. A clip without lyrics is a 404.
"""

from __future__ import annotations

import uuid

from mosic.core.catalogue import Catalogue
from mosic.core.lyrics import NoLyrics, SongLyrics


class ClipLyrics:
    def __init__(self, *, catalogue: Catalogue, lyrics: SongLyrics) -> None:
        self._catalogue = catalogue
        self._lyrics = lyrics

    async def on_get(self, req, resp, clip_id: uuid.UUID) -> None:
        clip = await self._catalogue.get(clip_id, seen=req.context.grant.folders)
        found = await self._lyrics.of(clip)
        if not found:
            raise NoLyrics(clip_id)
        lyrics = found[0]
        resp.media = {
            "synced": lyrics.synced,
            "lang": lyrics.lang,
            "lines": [
                {"start_ms": lyrics.shown_at(line), "text": line.text} for line in lyrics.lines
            ],
        }
