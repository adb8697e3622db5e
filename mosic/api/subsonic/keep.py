"""What the listener keeps: stars, ratings, playlists and the play queue."""

from __future__ import annotations

import datetime as dt
import uuid

from mosic.api.subsonic import shapes
from mosic.api.subsonic.browse import seen_library
from mosic.api.subsonic.call import Call
from mosic.api.subsonic.request import invalid
from mosic.api.subsonic.response import Code, SubsonicError, missing, not_found
from mosic.api.subsonic.shapes import Marks
from mosic.core.collection import RATING_MAX, Collection, PlaylistNotFound
from mosic.core.library import ALBUM_PREFIX, ARTIST_PREFIX, Library
from mosic.core.text import DESCRIPTION_MAX
from mosic.persistence.models import PLAYLIST_NAME_MAX, Clip

NEVER = dt.datetime(1970, 1, 1)


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


class Keep:
    def __init__(self, *, library: Library, collection: Collection) -> None:
        self._library = library
        self._collection = collection

    def methods(self) -> dict:
        return {
            "star": self.star,
            "unstar": self.unstar,
            "setRating": self.set_rating,
            "getStarred": self.starred,
            "getStarred2": self.starred2,
            "getPlaylists": self.playlists,
            "getPlaylist": self.playlist,
            "createPlaylist": self.create_playlist,
            "updatePlaylist": self.update_playlist,
            "deletePlaylist": self.delete_playlist,
            "getPlayQueue": self.play_queue,
            "savePlayQueue": self.save_play_queue,
        }

    async def marks(self) -> Marks:
        return await Marks.of_collection(self._collection)

    # -- stars and ratings -------------------------------------------------------------------
    async def _known(self, call: Call, item_ids: list[str]) -> None:
        """Raise "not found" unless every id is a song, album or artist the caller sees."""
        library = self._library.seen_by(call.folders)
        for item_id in dict.fromkeys(item_ids):
            if item_id.startswith(ALBUM_PREFIX):
                known = await library.albums_by_id([item_id])
            elif item_id.startswith(ARTIST_PREFIX):
                known = await library.artists_by_id([item_id])
            else:
                known = await library.songs_by_id([item_id])
            if not known:
                raise not_found(f"item {item_id!r}")

    def _star_ids(self, call: Call) -> list[str]:
        ids = [*call.params.all("id"), *call.params.all("albumId"), *call.params.all("artistId")]
        if not ids:
            raise missing("id")
        return ids

    async def star(self, call: Call) -> dict:
        ids = self._star_ids(call)
        await self._known(call, ids)
        await self._collection.star(ids)
        return {}

    async def unstar(self, call: Call) -> dict:
        # Unknown ids are fine: a deleted song can still be unstarred.
        await self._collection.unstar(self._star_ids(call))
        return {}

    async def set_rating(self, call: Call) -> dict:
        item_id = call.params.required("id")
        if call.params.one("rating") in (None, ""):
            raise missing("rating")
        rating = call.params.integer("rating", 0, 0, RATING_MAX)
        await self._known(call, [item_id])
        await self._collection.rate(item_id, rating)
        return {}

    async def _starred(self, call: Call) -> tuple[list, list, list[Clip], Marks]:
        marks = await self.marks()
        library = await seen_library(call, self._library)
        starred = list(marks.stars)
        artists = await library.artists_by_id(starred)
        albums = await library.albums_by_id(starred)
        songs = await library.songs_by_id(starred)
        songs.sort(key=lambda clip: marks.stars[str(clip.id)], reverse=True)
        return artists, albums, songs, marks

    async def starred(self, call: Call) -> dict:
        artists, albums, songs, marks = await self._starred(call)
        return {
            "starred": {
                "artist": [shapes.artist_plain(a, marks) for a in artists],
                "album": [shapes.album_child(a, marks) for a in albums],
                "song": [shapes.song(s, marks) for s in songs],
            }
        }

    async def starred2(self, call: Call) -> dict:
        artists, albums, songs, marks = await self._starred(call)
        return {
            "starred2": {
                "artist": [shapes.artist_id3(a, marks) for a in artists],
                "album": [shapes.album_id3(a, marks) for a in albums],
                "song": [shapes.song(s, marks) for s in songs],
            }
        }

    # -- playlists ---------------------------------------------------------------------------
    async def _songs(self, call: Call, ids: list[str]) -> list[Clip]:
        """The songs ``ids``, every one a song the caller sees (else "not found")."""
        songs = await self._library.seen_by(call.folders).songs_by_id(ids)
        if len(songs) != len(ids):
            raise not_found("song")
        return songs

    async def playlists(self, call: Call) -> dict:
        shaped, library = [], self._library.seen_by(call.folders)
        for info in await self._collection.playlists():
            songs = await library.songs_by_id([str(c) for c in info.clip_ids])
            shaped.append(shapes.playlist(info, songs, call.user))
        return {"playlists": {"playlist": shaped}}

    async def _playlist_body(self, playlist_id: uuid.UUID, call: Call) -> dict:
        try:
            info = await self._collection.playlist(playlist_id)
        except PlaylistNotFound:
            raise not_found("playlist") from None
        seen = self._library.seen_by(call.folders)
        songs = await seen.songs_by_id([str(c) for c in info.clip_ids])
        marks = await self.marks()
        entries = [shapes.song(clip, marks) for clip in songs]
        return {"playlist": {**shapes.playlist(info, songs, call.user), "entry": entries}}

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
            await self._update(playlist_id, changes, clip_ids)
        else:
            name = _name(call.params.required("name"))
            playlist_id = await self._collection.create_playlist(name, clip_ids)
        return await self._playlist_body(playlist_id, call)

    async def _update(self, playlist_id, changes: dict, clip_ids) -> None:
        try:
            await self._collection.update_playlist(playlist_id, changes=changes, clip_ids=clip_ids)
        except PlaylistNotFound:
            raise not_found("playlist") from None

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
        await self._update(playlist_id, changes, clip_ids)
        return {}

    async def _edited_songs(self, call: Call, playlist_id, removals: list[str], additions):
        try:
            info = await self._collection.playlist(playlist_id)
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
            await self._collection.delete_playlist(playlist_id)
        except PlaylistNotFound:
            raise not_found("playlist") from None
        return {}

    # -- the play queue ----------------------------------------------------------------------
    async def play_queue(self, call: Call) -> dict:
        queue = await self._collection.queue()
        if queue is None:
            # No saved queue: an empty one, older than any other, so no app restores it.
            empty = {"username": call.user, "changed": NEVER, "changedBy": "", "entry": []}
            return {"playQueue": empty}
        seen = self._library.seen_by(call.folders)
        songs = await seen.songs_by_id([str(c) for c in queue.clip_ids])
        marks = await self.marks()
        entries = [shapes.song(clip, marks) for clip in songs]
        return {"playQueue": shapes.play_queue(queue, entries, call.user)}

    async def save_play_queue(self, call: Call) -> dict:
        songs = await self._songs(call, call.params.all("id"))
        current = call.params.one("current")
        current_id = _uuid(current, "song") if current else None
        if current_id is not None and current_id not in {clip.id for clip in songs}:
            raise SubsonicError(Code.GENERIC, "'current' must be one of the queued songs")
        position = call.params.integer("position", 0, 0, 2**62)
        clip_ids = [clip.id for clip in songs]
        await self._collection.save_queue(clip_ids, current_id, position, call.client)
        return {}
