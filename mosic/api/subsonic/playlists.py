"""Playlists: each user's own, and the public ones of others, which it may read only."""

from __future__ import annotations

import uuid

from mosic.api.subsonic import shapes
from mosic.api.subsonic.call import Call
from mosic.api.subsonic.request import invalid
from mosic.api.subsonic.response import Code, SubsonicError, not_found
from mosic.api.subsonic.shapes import Marks, MarksLoader
from mosic.core.library import Library
from mosic.core.playlists import NotYourPlaylist, PlaylistNotFound, Playlists
from mosic.core.text import DESCRIPTION_MAX
from mosic.persistence.models import PLAYLIST_NAME_MAX, Clip


def _uuid(value: str | None, what: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except (ValueError, TypeError, AttributeError):
        raise not_found(what) from None


def _name(value: str) -> str:
    name = value.strip()
    if not name or len(name) > PLAYLIST_NAME_MAX:
        raise invalid("name", f"must be 1 to {PLAYLIST_NAME_MAX} characters")
    return name


def not_yours() -> SubsonicError:
    return SubsonicError(Code.NOT_AUTHORIZED, "only its owner may change a playlist")


class PlaylistMethods:
    def __init__(
        self,
        *,
        library: Library,
        playlists: Playlists,
        marks: MarksLoader,
    ) -> None:
        self._library = library
        self._playlists = playlists
        self._marks_of = marks

    def methods(self) -> dict:
        return {
            "getPlaylists": self.playlists,
            "getPlaylist": self.playlist,
            "createPlaylist": self.create_playlist,
            "updatePlaylist": self.update_playlist,
            "deletePlaylist": self.delete_playlist,
        }

    async def _marks(self, call: Call, songs) -> Marks:
        return await self._marks_of(call.caller.user.id, songs)

    async def _songs(self, call: Call, ids: list[str]) -> list[Clip]:
        """The songs ``ids``, every one a song the caller sees (else "not found")."""
        songs = await self._library.seen_by(call.folders).songs_by_id(ids)
        if len(songs) != len(ids):
            raise not_found("song")
        return songs

    async def playlists(self, call: Call) -> dict:
        shaped, library = [], self._library.seen_by(call.folders)
        for info in await self._playlists.visible(call.caller.user):
            songs = await library.songs_by_id([str(c) for c in info.clip_ids])
            shaped.append(shapes.playlist(info, songs))
        return {"playlists": {"playlist": shaped}}

    async def _playlist_body(self, playlist_id: uuid.UUID, call: Call) -> dict:
        try:
            info = await self._playlists.get(call.caller.user, playlist_id)
        except PlaylistNotFound:
            raise not_found("playlist") from None
        seen = self._library.seen_by(call.folders)
        songs = await seen.songs_by_id([str(c) for c in info.clip_ids])
        marks = await self._marks(call, songs)
        entries = [shapes.song(clip, marks) for clip in songs]
        return {"playlist": {**shapes.playlist(info, songs), "entry": entries}}

    async def playlist(self, call: Call) -> dict:
        return await self._playlist_body(_uuid(call.params.required("id"), "playlist"), call)

    async def create_playlist(self, call: Call) -> dict:
        songs = await self._songs(call, call.params.all("songId"))
        clip_ids = [clip.id for clip in songs]
        existing = call.params.one("playlistId")
        if existing:
            # Subsonic's "create" with a playlistId replaces that playlist's songs.
            playlist_id = _uuid(existing, "playlist")
            name = call.params.one("name")
            changes = {"name": _name(name)} if name else {}
            await self._update(call, playlist_id, changes, clip_ids)
        else:
            name = _name(call.params.required("name"))
            playlist_id = await self._playlists.create(call.caller.user, name, clip_ids)
        return await self._playlist_body(playlist_id, call)

    async def _update(self, call: Call, playlist_id, changes: dict, clip_ids) -> None:
        user = call.caller.user
        try:
            await self._playlists.update(user, playlist_id, changes=changes, clip_ids=clip_ids)
        except PlaylistNotFound:
            raise not_found("playlist") from None
        except NotYourPlaylist:
            raise not_yours() from None

    async def update_playlist(self, call: Call) -> dict:
        p = call.params
        playlist_id = _uuid(p.required("playlistId"), "playlist")
        changes: dict = {}
        if p.one("name"):
            changes["name"] = _name(p.one("name"))
        if "comment" in p:
            changes["comment"] = p.text("comment", DESCRIPTION_MAX) or None
        if "public" in p:
            changes["public"] = p.flag("public", False)
        clip_ids = None
        removals, additions = p.all("songIndexToRemove"), p.all("songIdToAdd")
        if removals or additions:
            clip_ids = await self._edited_songs(call, playlist_id, removals, additions)
        await self._update(call, playlist_id, changes, clip_ids)
        return {}

    async def _edited_songs(self, call: Call, playlist_id, removals, additions):
        try:
            info = await self._playlists.get(call.caller.user, playlist_id)
        except PlaylistNotFound:
            raise not_found("playlist") from None
        ids = [str(c) for c in info.clip_ids]
        current = await self._library.songs_by_id(ids)
        # Indexes count the songs a client was shown: those that still exist and that the
        # caller sees. The others stay where they are: an edit never drops what it cannot see.
        seen = {clip.id for clip in await self._library.seen_by(call.folders).songs_by_id(ids)}
        shown = [n for n, clip in enumerate(current) if clip.id in seen]
        drop = set()
        for raw in removals:
            if not raw.isdigit() or int(raw) >= len(shown):
                raise invalid("songIndexToRemove", f"has no song at index {raw!r}")
            drop.add(shown[int(raw)])
        kept = [clip.id for n, clip in enumerate(current) if n not in drop]
        return kept + [clip.id for clip in await self._songs(call, additions)]

    async def delete_playlist(self, call: Call) -> dict:
        playlist_id = _uuid(call.params.required("id"), "playlist")
        try:
            await self._playlists.delete(call.caller.user, playlist_id)
        except PlaylistNotFound:
            raise not_found("playlist") from None
        except NotYourPlaylist:
            raise not_yours() from None
        return {}
