"""The library view: the clips seen as artists, albums and songs (what Subsonic apps browse).

Every clip with a stored file is a song. Its artist is its album artist tag, else its artist
tag ("Unknown Artist" when it has neither), its album the pair (artist, album tag) ("Unknown
Album"). Artist and album ids
are derived from those names, so they are stable across restarts and replicas with nothing
stored: ``ar-`` or ``al-`` and a short hash. Albums are computed by one GROUP BY over the
clips, so the view is always exactly what the catalogue holds.

Read-only: plays are counted by ``mosic.core.plays.PlayRecorder``, clips changed by the
``Catalogue``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from dataclasses import dataclass, field

import peewee
from peewee import fn

from mosic.persistence.models import Clip

UNKNOWN_ARTIST = "Unknown Artist"
UNKNOWN_ALBUM = "Unknown Album"
ARTIST_PREFIX = "ar-"
ALBUM_PREFIX = "al-"
# 64 bits of SHA-1: no collision among any library's few thousand names.
ID_HASH_CHARS = 16


class NotInLibrary(Exception):
    """No song, album or artist has this id."""


def _short_hash(*parts: str) -> str:
    joined = "\x00".join(parts).encode()
    return hashlib.sha1(joined, usedforsecurity=False).hexdigest()[:ID_HASH_CHARS]


def artist_id(name: str) -> str:
    return ARTIST_PREFIX + _short_hash(name)


def album_id(artist: str, album: str) -> str:
    return ALBUM_PREFIX + _short_hash(artist, album)


def names(artist: str | None, album: str | None) -> tuple[str, str]:
    """The (artist, album) names a song's tags put it under: the one naming rule."""
    return artist or UNKNOWN_ARTIST, album or UNKNOWN_ALBUM


def song_names(clip: Clip) -> tuple[str, str]:
    # An album's artist is its album artist when tagged: a compilation is one album, not
    # one per track artist.
    return names(clip.album_artist or clip.artist, clip.album)


@dataclass
class Album:
    id: str
    name: str
    artist: str
    artist_id: str
    song_count: int = 0
    duration: float = 0.0
    play_count: int = 0
    created: dt.datetime | None = None
    last_played: dt.datetime | None = None
    year: int | None = None
    # Every genre its songs have, the most common first (Subsonic shows the first).
    genres: list[str] = field(default_factory=list)
    has_cover: bool = False
    # The raw (artist, album) tag pairs that make up this album: NULL and "" and the
    # placeholder names all land in the same album.
    tags: list[tuple[str | None, str | None]] = field(default_factory=list)


@dataclass
class Genre:
    name: str
    song_count: int = 0
    albums: set[str] = field(default_factory=set)


@dataclass
class Artist:
    id: str
    name: str
    albums: list[Album] = field(default_factory=list)


def _stored():
    return Clip.file_name.is_null(False)


def _matches_tags(tags: list[tuple[str | None, str | None]]):
    def same(column, value):
        return column.is_null() if value is None else column == value

    condition = None
    for artist, album in tags:
        one = same(_album_artist(), artist) & same(Clip.album, album)
        condition = one if condition is None else condition | one
    return condition


def _album_artist():
    """The artist an album is grouped by: the album artist tag when set, else the artist."""
    return fn.COALESCE(fn.NULLIF(Clip.album_artist, ""), Clip.artist)


def _genre_is(genre: str):
    return Clip.genre_key == genre.casefold()


def _words(query: str) -> list[str]:
    return query.casefold().split()


def _like(column, word: str):
    escaped = word.replace("!", "!!").replace("%", "!%").replace("_", "!_")
    return peewee.NodeList((column, peewee.SQL("LIKE"), f"%{escaped}%", peewee.SQL("ESCAPE '!'")))


def name_matches(name: str, query: str) -> bool:
    folded = name.casefold()
    return all(word in folded for word in _words(query))


class Library:
    def __init__(self, *, db) -> None:
        self._db = db

    async def albums(self) -> list[Album]:
        """Every album, from one grouped query over the stored clips."""
        query = (
            Clip.select(
                _album_artist().alias("artist"),
                Clip.album,
                fn.COUNT(Clip.id).alias("songs"),
                fn.SUM(Clip.duration).alias("seconds"),
                fn.SUM(Clip.play_count).alias("plays"),
                fn.MIN(Clip.created_at).alias("first_added"),
                fn.MAX(Clip.last_played_at).alias("last_played"),
                fn.MAX(Clip.year).alias("year"),
                Clip.genre,
                fn.MAX(Clip.cover_name).alias("cover"),
            )
            .where(_stored())
            # By genre too: an album's genres come from the same one query.
            .group_by(_album_artist(), Clip.album, Clip.genre)
            .order_by(fn.COUNT(Clip.id).desc())
            .dicts()
        )
        albums: dict[str, Album] = {}
        for row in await self._db.aio_execute(query):
            artist, name = names(row["artist"], row["album"])
            key = album_id(artist, name)
            album = albums.setdefault(key, Album(key, name, artist, artist_id(artist)))
            _add_group(album, row)
        return sorted(albums.values(), key=lambda a: (a.name.casefold(), a.artist.casefold()))

    async def artists(self) -> list[Artist]:
        artists: dict[str, Artist] = {}
        for album in await self.albums():
            artist = artists.setdefault(album.artist_id, Artist(album.artist_id, album.artist))
            artist.albums.append(album)
        return sorted(artists.values(), key=lambda a: a.name.casefold())

    async def album(self, item_id: str) -> Album:
        for album in await self.albums():
            if album.id == item_id:
                return album
        raise NotInLibrary(item_id)

    async def artist(self, item_id: str) -> Artist:
        for artist in await self.artists():
            if artist.id == item_id:
                return artist
        raise NotInLibrary(item_id)

    async def album_songs(self, album: Album) -> list[Clip]:
        query = (
            Clip.select()
            .where(_stored() & _matches_tags(album.tags))
            .order_by(Clip.title, Clip.created_at, Clip.id)
        )
        return list(await self._db.aio_execute(query))

    async def song(self, item_id: str) -> Clip:
        songs = await self.songs_by_id([item_id])
        if not songs:
            raise NotInLibrary(item_id)
        return songs[0]

    async def songs_by_id(self, item_ids: list[str]) -> list[Clip]:
        """The songs among ``item_ids``, in that order (repeats kept); others are left out."""
        ids = [parsed for parsed in map(_uuid, item_ids) if parsed is not None]
        if not ids:
            return []
        query = Clip.select().where(_stored() & Clip.id.in_(list(set(ids))))
        found = {clip.id: clip for clip in await self._db.aio_execute(query)}
        return [found[i] for i in ids if i in found]

    async def search_songs(self, query: str, *, offset: int, count: int) -> list[Clip]:
        """Songs whose title, description, artist or album hold every word of ``query``
        (all songs when it is empty), oldest first so paging through a library while clips
        are added never skips one."""
        if count == 0:
            return []
        condition = _stored()
        for word in _words(query):
            condition &= _like(Clip.search_text, word)
        rows = (
            Clip.select()
            .where(condition)
            .order_by(Clip.created_at, Clip.id)
            .offset(offset)
            .limit(count)
        )
        return list(await self._db.aio_execute(rows))

    async def random_songs(
        self,
        count: int,
        *,
        genre: str | None = None,
        from_year: int | None = None,
        to_year: int | None = None,
    ) -> list[Clip]:
        condition = _stored()
        if genre:
            condition &= _genre_is(genre)
        if from_year is not None:
            condition &= Clip.year >= from_year
        if to_year is not None:
            condition &= Clip.year <= to_year
        rows = Clip.select().where(condition).order_by(fn.Random()).limit(count)
        return list(await self._db.aio_execute(rows))

    async def genre_songs(self, genre: str, *, offset: int, count: int) -> list[Clip]:
        """Songs of ``genre`` (case-insensitive), oldest first, so pages never skip one."""
        rows = (
            Clip.select()
            .where(_stored() & _genre_is(genre))
            .order_by(Clip.created_at, Clip.id)
            .offset(offset)
            .limit(count)
        )
        return list(await self._db.aio_execute(rows))

    async def genres(self) -> list[Genre]:
        """Every genre with its song count and album count, by name."""
        query = (
            Clip.select(Clip.genre, _album_artist().alias("artist"), Clip.album, fn.COUNT(Clip.id))
            .where(_stored() & Clip.genre.is_null(False) & (Clip.genre != ""))
            .group_by(Clip.genre, _album_artist(), Clip.album)
            .tuples()
        )
        genres: dict[str, Genre] = {}
        for name, artist, album, songs in await self._db.aio_execute(query):
            genre = genres.setdefault(name, Genre(name))
            genre.song_count += songs
            genre.albums.add(album_id(*names(artist, album)))
        return sorted(genres.values(), key=lambda g: g.name.casefold())

    async def song_count(self) -> int:
        return await Clip.select().where(_stored()).aio_count(self._db)


def _add_group(album: Album, row: dict) -> None:
    """Fold one (artist, album, genre) group of the grouped query into its album."""
    tags = (row["artist"], row["album"])
    if tags not in album.tags:
        album.tags.append(tags)
    if row["genre"] and row["genre"] not in album.genres:
        album.genres.append(row["genre"])
    album.song_count += row["songs"]
    album.duration += row["seconds"] or 0.0
    album.play_count += int(row["plays"] or 0)
    album.created = _earliest(album.created, _as_datetime(row["first_added"]))
    album.last_played = _latest(album.last_played, _as_datetime(row["last_played"]))
    album.year = max((y for y in (album.year, row["year"]) if y is not None), default=None)
    album.has_cover = album.has_cover or row["cover"] is not None


def _uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except (ValueError, TypeError, AttributeError):
        return None


def _as_datetime(value) -> dt.datetime | None:
    # Aggregates come back untyped: SQLite gives the stored text, PostgreSQL a datetime.
    if value is None or isinstance(value, dt.datetime):
        return value
    return dt.datetime.fromisoformat(str(value))


def _earliest(a: dt.datetime | None, b: dt.datetime | None) -> dt.datetime | None:
    return min((x for x in (a, b) if x is not None), default=None)


def _latest(a: dt.datetime | None, b: dt.datetime | None) -> dt.datetime | None:
    return max((x for x in (a, b) if x is not None), default=None)
