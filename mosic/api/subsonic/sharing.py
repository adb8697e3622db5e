"""Shares: ``createShare``, ``getShares``, ``updateShare``, ``deleteShare``.

A share's ``url`` is its public page (``/share/{id}``, absolute), which plays its songs in a
browser without any key (``mosic.api.shared``). ``createShare`` takes ids of songs, albums or
playlists the caller sees (each ``id`` one of them, in order; error 70 for one it does not
see); ``expires`` is milliseconds since 1970 (absent or 0: never). ``getShares`` lists what the
caller may manage: its own shares, an admin everyone's. Only a share's owner or an admin may
change or delete it (error 50).
"""

from __future__ import annotations

import datetime as dt

from mosic.api.shared import share_url
from mosic.api.subsonic import shapes
from mosic.api.subsonic.call import Call
from mosic.api.subsonic.response import Code, SubsonicError, missing, not_found
from mosic.api.subsonic.shapes import MarksLoader
from mosic.core.share_songs import NotShareable, ShareSongs
from mosic.core.shares import BadShare, NotYourShare, ShareInfo, ShareNotFound, Shares
from mosic.core.text import DESCRIPTION_MAX

# ``expires`` (ms since 1970) up to the last millisecond of year 9999, as datetimes go.
EXPIRES_MAX_MS = 253_402_300_799_999
NEVER = 0
EPOCH = dt.datetime(1970, 1, 1)  # naive UTC, as every stored time


def _description(call: Call) -> str | None:
    return (call.params.text("description", DESCRIPTION_MAX) or "").strip() or None


def _expires(call: Call) -> dt.datetime | None:
    """``expires`` as naive UTC; None when absent or 0 (never)."""
    ms = call.params.integer("expires", NEVER, NEVER, EXPIRES_MAX_MS)
    if ms == NEVER:
        return None
    return EPOCH + dt.timedelta(milliseconds=ms)  # exact: no float on the way


class ShareMethods:
    def __init__(self, *, shares: Shares, songs: ShareSongs, marks: MarksLoader) -> None:
        self._shares = shares
        self._songs = songs
        self._marks = marks

    def methods(self) -> dict:
        return {
            "getShares": self.shares,
            "createShare": self.create_share,
            "updateShare": self.update_share,
            "deleteShare": self.delete_share,
        }

    async def _shape(self, call: Call, info: ShareInfo) -> dict:
        songs = await self._songs.playable(info)
        marks = await self._marks(call.caller.user.id, songs)
        entries = [shapes.song(clip, marks) for clip in songs]
        return shapes.share(info, share_url(call.req, info.id), entries)

    async def shares(self, call: Call) -> dict:
        found = await self._shares.manageable(call.caller.user)
        return {"shares": {"share": [await self._shape(call, info) for info in found]}}

    async def create_share(self, call: Call) -> dict:
        ids = [item_id for item_id in call.params.all("id") if item_id]
        if not ids:
            raise missing("id")
        description = _description(call)
        expires_at = _expires(call)
        user = call.caller.user
        try:
            clip_ids = await self._songs.picked(user, ids)
            info = await self._shares.create(
                user, clip_ids, description=description, expires_at=expires_at
            )
        except NotShareable:
            raise not_found("song, album or playlist") from None
        except BadShare as exc:
            raise SubsonicError(Code.GENERIC, str(exc)) from None
        return {"shares": {"share": [await self._shape(call, info)]}}

    async def update_share(self, call: Call) -> dict:
        share_id = call.params.required("id")
        changes: dict = {}
        if "description" in call.params:
            changes["description"] = _description(call)
        if "expires" in call.params:
            changes["expires_at"] = _expires(call)
        await self._changing(call, self._shares.update(call.caller.user, share_id, changes))
        return {}

    async def delete_share(self, call: Call) -> dict:
        share_id = call.params.required("id")
        await self._changing(call, self._shares.delete(call.caller.user, share_id))
        return {}

    async def _changing(self, call: Call, change) -> None:
        """Await a change to a share, its refusals as Subsonic errors."""
        try:
            await change
        except ShareNotFound:
            raise not_found("share") from None
        except NotYourShare:
            raise SubsonicError(
                Code.NOT_AUTHORIZED, "only its owner or an admin may change a share"
            ) from None
