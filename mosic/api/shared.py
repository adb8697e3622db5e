"""A share's public side, for anyone who holds its link, without a key: ``/share/{share_id}``
is its page (``mosic.web.share_page``); here are what the page reads and plays.

- ``GET /share/{share_id}/songs``: the share's songs as JSON, each with its share-scoped
  ``stream_url`` and ``cover_url``;
- ``GET``/``HEAD /share/{share_id}/stream/{clip_id}``: a song of the share, served as every
  stream is (``mosic.api.serving``: Range, validators, HEAD), counting plays by the stream rule
  (``mosic.core.plays``). A visitor is no user: its plays count in the clip's global count and
  ``mosic_plays_total``, in nobody's own count (not even the owner's, who did not listen);
- ``GET /share/{share_id}/cover/{clip_id}``: the song's embedded picture.

All three answer 410 once the share has expired or was deleted, 404 for a share that never was
and for a song that is not in the share (or that its owner no longer sees).
"""

from __future__ import annotations

import uuid

import falcon

from mosic.api.serving import ByteServer
from mosic.core.catalogue import Catalogue, ClipNotFound
from mosic.core.share_songs import ShareSongs
from mosic.core.shares import ShareInfo, Shares
from mosic.media.storage import MediaMissing
from mosic.persistence.models import ClipRecord

# The songs list changes when the share does (its expiry, its songs' files): never kept.
NO_STORE = ["no-store"]


def share_path(share_id: str) -> str:
    return f"/share/{share_id}"


def share_url(req, share_id: str) -> str:
    """The share's page as an absolute URL, on the address the request came to (the
    ``Forwarded``/``X-Forwarded-Proto``/``X-Forwarded-Host`` a proxy sets, when it does)."""
    return req.forwarded_prefix + share_path(share_id)


def song_json(share_id: str, clip) -> dict:
    """A song as a share's visitors see it: what a player shows, and where its bytes are."""
    clip_id = str(clip.id)
    return {
        "id": clip_id,
        "title": clip.title,
        "artist": clip.artist,
        "album": clip.album,
        "duration": clip.duration,
        "stream_url": f"{share_path(share_id)}/stream/{clip_id}",
        "cover_url": f"{share_path(share_id)}/cover/{clip_id}" if clip.cover_name else None,
    }


class SharedSongs:
    """``/share/{share_id}/songs``"""

    def __init__(self, *, shares: Shares, songs: ShareSongs) -> None:
        self._shares = shares
        self._songs = songs

    async def on_get(self, req, resp, share_id: str) -> None:
        share = await self._shares.open(share_id)
        songs = await self._songs.playable(share)
        resp.cache_control = NO_STORE
        resp.media = {
            "id": share.id,
            "description": share.description,
            "owner": share.owner.name,
            "expires_at": share.expires_at,
            "songs": [song_json(share.id, clip) for clip in songs],
        }


class _SharedClip:
    def __init__(self, *, shares: Shares, catalogue: Catalogue, serving: ByteServer) -> None:
        self._shares = shares
        self._catalogue = catalogue
        self._serving = serving

    async def _clip(self, share_id: str, clip_id: uuid.UUID) -> ClipRecord:
        """A song of the open share ``share_id``, as its owner sees it now."""
        share: ShareInfo = await self._shares.open(share_id)
        if clip_id not in share.clip_ids:
            raise ClipNotFound(clip_id)
        clip = await self._catalogue.get(clip_id, seen=share.owner.folders)
        if clip.is_external:  # never a share's song; kept out all the same
            raise ClipNotFound(clip_id)
        return clip


class SharedStream(_SharedClip):
    """``/share/{share_id}/stream/{clip_id}``"""

    async def on_get(self, req, resp, share_id: str, clip_id: uuid.UUID) -> None:
        await self._stream(req, resp, share_id, clip_id)

    async def on_head(self, req, resp, share_id: str, clip_id: uuid.UUID) -> None:
        await self._stream(req, resp, share_id, clip_id)

    async def _stream(self, req, resp, share_id: str, clip_id: uuid.UUID) -> None:
        clip = await self._clip(share_id, clip_id)
        try:
            await self._serving.clip(req, resp, clip, counts_plays=True)
        except MediaMissing:
            raise falcon.HTTPNotFound(
                title="Audio missing", description="the song's audio file is gone"
            ) from None


class SharedCover(_SharedClip):
    """``/share/{share_id}/cover/{clip_id}``"""

    async def on_get(self, req, resp, share_id: str, clip_id: uuid.UUID) -> None:
        clip = await self._clip(share_id, clip_id)
        await self._serving.cover(req, resp, clip)  # NoCover: 404 (mosic.api.errors)
