"""What a share holds: the songs a new one takes from songs, an album or a playlist, as the user
who shares them sees them; and which of a share's songs its visitors get now.

A user shares only what it may see: a song, album or playlist of a music folder it does not
see is ``NotShareable``, exactly as one that does not exist. A playlist gives the songs of it
the user sees. Visitors get a share's songs as its owner sees them now (``playable``): a song
deleted since, gone missing from its folder, or of a folder the owner no longer sees is left
out, so a share never opens more than its owner may.
"""

from __future__ import annotations

import uuid

from mosic.core.keys import User
from mosic.core.library import ALBUM_PREFIX, Library, NotInLibrary
from mosic.core.playlists import PlaylistNotFound, Playlists
from mosic.core.shares import ShareInfo
from mosic.persistence.models import Clip


class NotShareable(Exception):
    """An id that names no song, album or playlist the sharing user sees."""


class ShareSongs:
    def __init__(self, *, library: Library, playlists: Playlists) -> None:
        self._library = library
        self._playlists = playlists

    async def songs(self, user: User, clip_ids: list[str]) -> list[uuid.UUID]:
        """``clip_ids``, in order, every one a song ``user`` sees."""
        found = await self._library.seen_by(user.folders).songs_by_id(clip_ids)
        if len(found) != len(clip_ids):
            seen = {str(clip.id) for clip in found}
            raise NotShareable(next(i for i in clip_ids if _canonical(i) not in seen))
        return [clip.id for clip in found]

    async def album(self, user: User, album_id: str) -> list[uuid.UUID]:
        """The album's songs ``user`` sees, in disc and track order."""
        library = self._library.seen_by(user.folders)
        try:
            album = await library.album(album_id)
        except NotInLibrary:
            raise NotShareable(album_id) from None
        return [clip.id for clip in await library.album_songs(album)]

    async def playlist(self, user: User, playlist_id: str) -> list[uuid.UUID]:
        """The songs of a playlist ``user`` sees (its own, or a public one), in its order."""
        try:
            info = await self._playlists.get(user, uuid.UUID(playlist_id))
        except (ValueError, PlaylistNotFound):
            raise NotShareable(playlist_id) from None
        held = [str(clip_id) for clip_id in info.clip_ids]
        return [clip.id for clip in await self._library.seen_by(user.folders).songs_by_id(held)]

    async def picked(self, user: User, item_ids: list[str]) -> list[uuid.UUID]:
        """Subsonic's ``createShare`` ids, in order, each a song, an album or a playlist id
        (a song's and a playlist's are both UUIDs: a song the user sees wins)."""
        others = [item_id for item_id in item_ids if not item_id.startswith(ALBUM_PREFIX)]
        found = await self._library.seen_by(user.folders).songs_by_id(others)
        songs = {str(clip.id) for clip in found}
        picked: list[uuid.UUID] = []
        for item_id in item_ids:
            if item_id.startswith(ALBUM_PREFIX):
                picked += await self.album(user, item_id)
            elif _canonical(item_id) in songs:
                picked.append(uuid.UUID(item_id))
            else:
                picked += await self.playlist(user, item_id)
        return picked

    async def playable(self, share: ShareInfo) -> list[Clip]:
        """The share's songs as its owner sees them now, in the share's order."""
        if share.owner is None:
            return []
        held = [str(clip_id) for clip_id in share.clip_ids]
        return await self._library.seen_by(share.owner.folders).songs_by_id(held)


def _canonical(item_id: str) -> str | None:
    """A song id as ``str(uuid)`` writes it (clients may send other spellings)."""
    try:
        return str(uuid.UUID(item_id))
    except ValueError:
        return None
