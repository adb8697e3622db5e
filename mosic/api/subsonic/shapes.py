"""How the library looks to Subsonic apps: songs (``Child``), albums, artists, playlists.

``song`` is the one place a clip becomes a Subsonic song, so a new clip field is one line
here.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from mosic.core.collection import BookmarkInfo, Collection, QueueInfo
from mosic.core.grouping import song_names
from mosic.core.library import Album, Artist, Directory, Genre
from mosic.core.listening import NEVER_PLAYED, Listening, Playing
from mosic.core.playlists import PlaylistInfo
from mosic.core.reports import estimated_position_ms
from mosic.core.shares import ShareInfo
from mosic.persistence.models import Clip

IGNORED_ARTICLES = "The El La Los Las Le Les"


@dataclass
class Marks:
    """The caller's stars (item id -> when), ratings (item id -> 1..5) and own plays of the
    songs of one answer (clip id -> ``Mine``)."""

    stars: dict = field(default_factory=dict)
    ratings: dict = field(default_factory=dict)
    plays: dict = field(default_factory=dict)
    album_plays: dict = field(default_factory=dict)  # album id -> ``Mine``

    def of(self, item_id: str) -> dict:
        return {"starred": self.stars.get(item_id), "userRating": self.ratings.get(item_id)}


class MarksLoader:
    """Reads a user's marks: its stars and ratings (a user's are few), and its plays of the
    songs of one answer."""

    def __init__(self, *, collection: Collection, listening: Listening) -> None:
        self._collection = collection
        self._listening = listening

    async def stars(self, user_id: int) -> dict:
        """The user's stars alone (item id -> when)."""
        return await self._collection.stars(user_id)

    async def __call__(self, user_id: int, songs=(), albums=()) -> Marks:
        """The user's marks, its plays of ``songs`` and of ``albums``."""
        return Marks(
            await self._collection.stars(user_id),
            await self._collection.ratings(user_id),
            await self._listening.mine(user_id, [clip.id for clip in songs]),
            await self._listening.album_plays(user_id, [album.id for album in albums]),
        )


def seconds(duration: float | None) -> int:
    # Whole seconds, as Subsonic has them; lossy encoders' padding (+0.07 s) rounds away.
    return round(duration or 0)


def song(clip: Clip, marks: Marks) -> dict:
    artist, album = song_names(clip.album_artist, clip.artist, clip.album)
    song_id = str(clip.id)
    mine = marks.plays.get(clip.id, NEVER_PLAYED)  # the caller's plays, not everyone's
    # No transcodedContentType/Suffix: stream sends the original unless the app asks for
    # a format or a lower bitrate.
    return {
        "id": song_id,
        "parent": clip.album_id,
        "isDir": False,
        "title": clip.title,
        "album": album,
        "artist": artist,
        "size": clip.size,
        "contentType": clip.content_type,
        "suffix": PurePosixPath(clip.file_name or "").suffix.lstrip(".") or None,
        "duration": seconds(clip.duration),
        "track": clip.track,
        "discNumber": clip.disc,
        "year": clip.year,
        "genre": clip.genre,
        "bitRate": clip.bitrate,
        "samplingRate": clip.sample_rate,
        "channelCount": clip.channels,
        "coverArt": song_id if clip.cover_name else None,
        "playCount": mine.play_count,
        "created": clip.created_at,
        "albumId": clip.album_id,
        "artistId": clip.artist_id,
        "type": "music",
        "isVideo": False,
        "played": mine.last_played_at,
        # OpenSubsonic: always there, each figure left out until known.
        "replayGain": {
            "trackGain": clip.track_gain_db,
            "trackPeak": clip.track_peak,
            "albumGain": clip.album_gain_db,
            "albumPeak": clip.album_peak,
        },
        **marks.of(song_id),
    }


def _album_facts(album: Album, marks: Marks) -> dict:
    """What both album shapes say of an album."""
    return {
        "id": album.id,
        "artist": album.artist,
        "songCount": album.song_count,
        "duration": seconds(album.duration),
        "year": album.year,
        "genre": album.genres[0] if album.genres else None,
        "coverArt": album.id if album.has_cover else None,
        "playCount": marks.album_plays.get(album.id, NEVER_PLAYED).play_count,
        "created": album.created,
        **marks.of(album.id),
    }


def album_id3(album: Album, marks: Marks) -> dict:
    return {
        **_album_facts(album, marks),
        "name": album.name,
        "artistId": album.artist_id,
        "played": marks.album_plays.get(album.id, NEVER_PLAYED).last_played_at,
    }


def album_child(album: Album, marks: Marks) -> dict:
    """An album as a directory (``getMusicDirectory``, ``getAlbumList``, ``search2``).
    Also the ID3 album's ``name``, ``songCount`` and ``duration``, as Navidrome sends: apps
    and client libraries (py-opensonic) read an album list's entries as albums."""
    return {
        **_album_facts(album, marks),
        "parent": album.artist_id,
        "isDir": True,
        "title": album.name,
        "name": album.name,
        "album": album.name,
    }


def genre(item: Genre) -> dict:
    return {"value": item.name, "songCount": item.song_count, "albumCount": item.album_count}


def artist_id3(artist: Artist, marks: Marks) -> dict:
    return {
        "id": artist.id,
        "name": artist.name,
        "albumCount": artist.album_count,
        "starred": marks.stars.get(artist.id),
    }


def artist_plain(artist: Artist, marks: Marks) -> dict:
    """An artist of the folder view (``getIndexes``, ``search2``, ``getStarred``)."""
    return {"id": artist.id, "name": artist.name, **marks.of(artist.id)}


def directory_entry(directory: Directory, marks: Marks) -> dict:
    """A directory of a library folder at the top of ``getIndexes``."""
    return {"id": directory.id, "name": directory.name, **marks.of(directory.id)}


def directory_child(directory: Directory, marks: Marks) -> dict:
    """A subdirectory in ``getMusicDirectory``."""
    return {
        "id": directory.id,
        "parent": directory.parent_id,
        "isDir": True,
        "title": directory.name,
        **marks.of(directory.id),
    }


def index_letter(name: str) -> str:
    words = name.split()
    if len(words) > 1 and words[0] in IGNORED_ARTICLES.split():
        name = " ".join(words[1:])
    first = name[:1].upper()
    return first if first.isalpha() else "#"


def indexed(entries: list[Artist] | list[Directory], shape) -> list[dict]:
    """Artists (or a library folder's directories) grouped by first letter, as ``index``
    elements."""
    groups: dict[str, list[dict]] = {}
    for entry in entries:
        groups.setdefault(index_letter(entry.name), []).append(shape(entry))
    return [{"name": letter, "artist": groups[letter]} for letter in sorted(groups)]


def playlist(info: PlaylistInfo, songs: list[Clip]) -> dict:
    return {
        "id": str(info.id),
        "name": info.name,
        "comment": info.comment,
        "owner": info.owner,
        "public": info.public,
        "songCount": len(songs),
        "duration": sum(seconds(clip.duration) for clip in songs),
        "created": info.created_at,
        "changed": info.changed_at,
    }


def share(info: ShareInfo, url: str, entries: list[dict]) -> dict:
    """A share (its ``entry``: the songs its visitors get now, as ``song`` shapes them)."""
    return {
        "id": info.id,
        "url": url,
        "description": info.description,
        "username": info.owner.name,
        "created": info.created_at,
        "expires": info.expires_at,
        "lastVisited": info.last_visited_at,
        "visitCount": info.visit_count,
        "entry": entries,
    }


def play_queue(queue: QueueInfo, entries: list[dict], owner: str) -> dict:
    return {
        # OpenSubsonic: a song id (the pre-OpenSubsonic schema said int).
        "current": str(queue.current) if queue.current else None,
        "position": queue.position_ms,
        "username": owner,
        "changed": queue.changed_at,
        "changedBy": queue.changed_by,
        "entry": entries,
    }


def bookmark(kept: BookmarkInfo, entry: dict, owner: str) -> dict:
    return {
        "position": kept.position_ms,
        "username": owner,
        "comment": kept.comment,
        "created": kept.created_at,
        "changed": kept.changed_at,
        "entry": entry,
    }


def now_playing(playing: Playing, entry: dict, player_id: int, now: dt.datetime) -> dict:
    minutes_ago = max(0, int((now - playing.started_at).total_seconds() // 60))
    shaped = {
        **entry,
        "username": playing.user,
        "minutesAgo": minutes_ago,
        "playerId": player_id,
        "playerName": playing.player,
    }
    reported = playing.reported
    if reported is not None:  # OpenSubsonic playbackReport: where the player is now
        position = estimated_position_ms(
            reported.state, reported.position_ms, reported.playback_rate, reported.reported_at, now
        )
        if entry.get("duration"):
            position = min(position, entry["duration"] * 1000)
        shaped.update(
            state=reported.state, positionMs=position, playbackRate=reported.playback_rate
        )
    return shaped
