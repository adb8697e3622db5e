"""``/shares`` and ``/shares/{share_id}``: a user's shares (an admin's: everyone's), public
links to songs, an album or a playlist that anyone may play without a key at their ``url``
(``mosic.api.shared``, ``mosic.web.share_page``).

Each responder parses the request, calls the shares, and shapes the answer. Who may call them
is declared with the routes (``mosic.app``): a key, and a ``full`` one to make, change or
delete a share.
"""

from __future__ import annotations

import datetime as dt

import falcon

from mosic.api import params
from mosic.api.errors import bad_request
from mosic.api.shared import share_url
from mosic.core.keys import User
from mosic.core.share_songs import ShareSongs
from mosic.core.shares import ShareInfo, Shares
from mosic.core.text import DESCRIPTION_MAX
from mosic.persistence.models import ITEM_ID_MAX

# Where a new share's songs come from: exactly one of these.
SOURCES = ("clip_ids", "album_id", "playlist_id")
NEW_SHARE_FIELDS = {*SOURCES, "description", "expires_at"}
SHARE_CHANGES = {"description", "expires_at"}


def share_json(req, info: ShareInfo) -> dict:
    """A share as its owner sees it (``Share`` in openapi.json)."""
    return {
        "id": info.id,
        "url": share_url(req, info.id),
        "description": info.description,
        "owner": info.owner.name,
        "created_at": info.created_at,
        "expires_at": info.expires_at,
        "last_visited_at": info.last_visited_at,
        "visit_count": info.visit_count,
        "clip_ids": [str(clip_id) for clip_id in info.clip_ids],
    }


def expiry_field(body: dict) -> dt.datetime | None:
    """``expires_at``: an RFC 3339 time with its offset, as naive UTC; null for never."""
    value = body.get("expires_at")
    if value is None:
        return None
    problem = "'expires_at' must be an RFC 3339 time with its offset (2030-01-31T12:00:00Z)"
    if not isinstance(value, str):
        raise bad_request(problem + ", or null")
    try:
        moment = dt.datetime.fromisoformat(value)
        if moment.tzinfo is None:
            raise ValueError("no offset")
        return moment.astimezone(dt.UTC).replace(tzinfo=None)
    except (ValueError, OverflowError):
        raise bad_request(f"{problem}, not {value!r}") from None


class ShareCollection:
    """``/shares``"""

    def __init__(self, *, shares: Shares, songs: ShareSongs) -> None:
        self._shares = shares
        self._songs = songs

    async def on_get(self, req, resp) -> None:
        shares = await self._shares.manageable(req.context.grant.user)
        resp.media = [share_json(req, info) for info in shares]

    async def on_post(self, req, resp) -> None:
        body = await params.json_object(req, NEW_SHARE_FIELDS)
        user = req.context.grant.user
        description = params.text_field(body, "description", DESCRIPTION_MAX)
        expires_at = expiry_field(body)
        clip_ids = await self._picked(user, body)
        info = await self._shares.create(
            user, clip_ids, description=description, expires_at=expires_at
        )
        resp.status = falcon.HTTP_201
        resp.location = f"/shares/{info.id}"
        resp.media = share_json(req, info)

    async def _picked(self, user: User, body: dict) -> list:
        """The songs the body names: a list of clip ids, an album or a playlist."""
        given = [name for name in SOURCES if body.get(name) is not None]
        if len(given) != 1:
            raise bad_request(f"send exactly one of {', '.join(SOURCES)}")
        if given == ["clip_ids"]:
            ids = body["clip_ids"]
            if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
                raise bad_request("'clip_ids' must be a non-empty list of clip ids")
            return await self._songs.songs(user, ids)
        item_id = params.text_field(body, given[0], ITEM_ID_MAX, required=True)
        if given == ["album_id"]:
            return await self._songs.album(user, item_id)
        return await self._songs.playlist(user, item_id)


class ShareItem:
    """``/shares/{share_id}``"""

    def __init__(self, *, shares: Shares) -> None:
        self._shares = shares

    async def on_get(self, req, resp, share_id: str) -> None:
        resp.media = share_json(req, await self._shares.get(req.context.grant.user, share_id))

    async def on_patch(self, req, resp, share_id: str) -> None:
        body = await params.json_object(req, SHARE_CHANGES)
        changes = {}
        if "description" in body:
            changes["description"] = params.text_field(body, "description", DESCRIPTION_MAX)
        if "expires_at" in body:
            changes["expires_at"] = expiry_field(body)
        info = await self._shares.update(req.context.grant.user, share_id, changes)
        resp.media = share_json(req, info)

    async def on_delete(self, req, resp, share_id: str) -> None:
        await self._shares.delete(req.context.grant.user, share_id)
        resp.status = falcon.HTTP_204
