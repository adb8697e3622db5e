"""What each user keeps: stars, ratings, the play queue and bookmarks (playlists are in
``mosic.api.subsonic.playlists``)."""

from __future__ import annotations

import datetime as dt
import uuid

from mosic.api.subsonic import shapes
from mosic.api.subsonic.browse import seen_library
from mosic.api.subsonic.call import Call
from mosic.api.subsonic.response import Code, SubsonicError, missing, not_found
from mosic.api.subsonic.shapes import Marks, MarksLoader
from mosic.core.collection import RATING_MAX, Collection, QueueInfo
from mosic.core.library import ALBUM_PREFIX, ARTIST_PREFIX, Library
from mosic.core.text import DESCRIPTION_MAX
from mosic.persistence.models import Clip

NEVER = dt.datetime(1970, 1, 1)


def _uuid(value: str | None, what: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except (ValueError, TypeError, AttributeError):
        raise not_found(what) from None


def bad_index(why: str) -> SubsonicError:
    # OpenSubsonic: an index outside the queue is error 10.
    return SubsonicError(Code.MISSING_PARAMETER, f"parameter 'currentIndex' {why}")


def shown_index(queue: QueueInfo, seen: set[uuid.UUID]) -> tuple[int | None, bool]:
    """The current entry's index among the entries the caller sees (None for an empty
    answer), and whether it moved to another song: when the current entry is hidden (or
    none was saved), the next one seen, else the last one seen."""
    shown = [n for n, clip_id in enumerate(queue.clip_ids) if clip_id in seen]
    if not shown:
        return None, False
    at = queue.current_at()
    if at is None:
        return 0, True
    if at in shown:
        return shown.index(at), False
    after = [i for i, n in enumerate(shown) if n > at]
    return (after[0] if after else len(shown) - 1), True


class Keep:
    def __init__(self, *, library: Library, collection: Collection, marks: MarksLoader) -> None:
        self._library = library
        self._collection = collection
        self._marks = marks

    def methods(self) -> dict:
        return {
            "star": self.star,
            "unstar": self.unstar,
            "setRating": self.set_rating,
            "getStarred": self.starred,
            "getStarred2": self.starred2,
            "getPlayQueue": self.play_queue,
            "savePlayQueue": self.save_play_queue,
            "getPlayQueueByIndex": self.play_queue_by_index,
            "savePlayQueueByIndex": self.save_play_queue_by_index,
            "getBookmarks": self.bookmarks,
            "createBookmark": self.create_bookmark,
            "deleteBookmark": self.delete_bookmark,
        }

    async def marks(self, call: Call, songs=(), albums=()) -> Marks:
        """The caller's marks, and its plays of ``songs`` and ``albums``."""
        return await self._marks(call.caller.user.id, songs, albums)

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
        await self._collection.star(call.caller.user.id, ids)
        return {}

    async def unstar(self, call: Call) -> dict:
        # Unknown ids are fine: a deleted song can still be unstarred.
        await self._collection.unstar(call.caller.user.id, self._star_ids(call))
        return {}

    async def set_rating(self, call: Call) -> dict:
        item_id = call.params.required("id")
        if call.params.one("rating") in (None, ""):
            raise missing("rating")
        rating = call.params.integer("rating", 0, 0, RATING_MAX)
        await self._known(call, [item_id])
        await self._collection.rate(call.caller.user.id, item_id, rating)
        return {}

    async def _starred(self, call: Call) -> tuple[list, list, list[Clip], Marks]:
        stars = await self._collection.stars(call.caller.user.id)
        library = await seen_library(call, self._library)
        starred = list(stars)
        artists = await library.artists_by_id(starred)
        albums = await library.albums_by_id(starred)
        songs = await library.songs_by_id(starred)
        songs.sort(key=lambda clip: stars[str(clip.id)], reverse=True)
        return artists, albums, songs, await self.marks(call, songs, albums)

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

    # -- the play queue ----------------------------------------------------------------------
    async def play_queue(self, call: Call) -> dict:
        queue = await self._collection.queue(call.caller.user.id)
        if queue is None:
            # No saved queue: an empty one, older than any other, so no app restores it.
            empty = {"username": call.user, "changed": NEVER, "changedBy": "", "entry": []}
            return {"playQueue": empty}
        seen = self._library.seen_by(call.folders)
        songs = await seen.songs_by_id([str(c) for c in queue.clip_ids])
        marks = await self.marks(call, songs)
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
        user_id = call.caller.user.id
        await self._collection.save_queue(user_id, clip_ids, current_id, position, call.client)
        return {}

    # OpenSubsonic indexBasedQueue: the same queue, its current entry given by index.
    async def play_queue_by_index(self, call: Call) -> dict:
        queue = await self._collection.queue(call.caller.user.id)
        body = {"username": call.user, "changed": NEVER, "changedBy": "", "entry": []}
        if queue is None:
            return {"playQueueByIndex": body}
        seen = self._library.seen_by(call.folders)
        songs = await seen.songs_by_id([str(c) for c in queue.clip_ids])
        at, moved = shown_index(queue, {clip.id for clip in songs})
        marks = await self.marks(call, songs)
        body.update(changed=queue.changed_at, changedBy=queue.changed_by)
        body.update(entry=[shapes.song(clip, marks) for clip in songs])
        if at is not None:
            # The saved position is the hidden current song's: another starts from 0.
            body.update(currentIndex=at, position=0 if moved else queue.position_ms)
        return {"playQueueByIndex": body}

    async def save_play_queue_by_index(self, call: Call) -> dict:
        ids = call.params.all("id")
        raw_index = call.params.one("currentIndex")
        user_id = call.caller.user.id
        if not ids:  # clears the queue; an index of nothing is a mistake (error 10)
            if raw_index not in (None, ""):
                raise bad_index("must not be given without an 'id'")
            await self._collection.save_queue(user_id, [], None, 0, call.client)
            return {}
        if raw_index in (None, ""):
            raise missing("currentIndex")
        try:
            index = int(raw_index)
        except ValueError:
            raise bad_index(f"must be a whole number, got {raw_index!r}") from None
        if not 0 <= index < len(ids):
            raise bad_index(f"must be between 0 and {len(ids) - 1}, got {index}")
        songs = await self._songs(call, ids)
        position = call.params.integer("position", 0, 0, 2**62)
        clip_ids = [clip.id for clip in songs]
        await self._collection.save_queue(
            user_id, clip_ids, clip_ids[index], position, call.client, current_index=index
        )
        return {}

    async def _songs(self, call: Call, ids: list[str]) -> list[Clip]:
        """The songs ``ids``, every one a song the caller sees (else "not found")."""
        songs = await self._library.seen_by(call.folders).songs_by_id(ids)
        if len(songs) != len(ids):
            raise not_found("song")
        return songs

    # -- bookmarks ---------------------------------------------------------------------------
    async def bookmarks(self, call: Call) -> dict:
        kept = await self._collection.bookmarks(call.caller.user.id)
        # Bookmarks of songs the user may no longer see (or that are gone) are left out.
        seen = self._library.seen_by(call.folders)
        songs = await seen.songs_by_id([str(b.clip_id) for b in kept])
        by_id = {clip.id: clip for clip in songs}
        marks = await self.marks(call, songs)
        shaped = [
            shapes.bookmark(b, shapes.song(by_id[b.clip_id], marks), call.user)
            for b in kept
            if b.clip_id in by_id
        ]
        return {"bookmarks": {"bookmark": shaped}}

    async def create_bookmark(self, call: Call) -> dict:
        (clip,) = await self._songs(call, [call.params.required("id")])
        if call.params.one("position") in (None, ""):
            raise missing("position")
        position = call.params.integer("position", 0, 0, 2**62)
        comment = call.params.text("comment", DESCRIPTION_MAX) or None
        await self._collection.save_bookmark(call.caller.user.id, clip.id, position, comment)
        return {}

    async def delete_bookmark(self, call: Call) -> dict:
        # Idempotent, like unstar: a bookmark already gone is what the app wants.
        clip_id = _uuid(call.params.required("id"), "song")
        await self._collection.delete_bookmark(call.caller.user.id, clip_id)
        return {}
