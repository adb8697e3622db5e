"""The library view: the clips seen as artists, albums, genres and songs (what Subsonic apps
browse).

Every clip with a stored file that is not missing is a song; ``mosic.core.grouping`` says
which album and artist it belongs to. Albums, artists and genres are rows of their own
(``mosic.core.aggregates`` keeps them exact), so each read costs the size of its answer: an
album is one row and an index range of its songs, a list page an index range of albums.
Random picks probe the primary key at random points, never sort the whole table.

Read-only: plays are counted by ``mosic.core.plays.PlayRecorder``, clips changed by the
``Catalogue``.
"""

from __future__ import annotations

import datetime as dt
import secrets
import uuid
from dataclasses import dataclass, field

from peewee import fn

from mosic.core.aggregates import as_datetime, songs
from mosic.core.grouping import (
    ALBUM_PREFIX,
    ARTIST_PREFIX,
    DIRECTORY_PREFIX,
    directory_id,
    song_names,
    sort_key,
)
from mosic.core.keys import EVERY_FOLDER, Folders
from mosic.persistence import search
from mosic.persistence.models import (
    LIBRARY_VERSION_ROW,
    AlbumRow,
    ArtistRow,
    Clip,
    DirectoryRow,
    GenreRow,
    LibraryVersion,
    MusicFolder,
    UserPlay,
)

__all__ = [
    "ALBUM_PREFIX",
    "ARTIST_PREFIX",
    "Album",
    "Artist",
    "Genre",
    "Library",
    "NotInLibrary",
    "song_names",
]

# Random songs and albums: each pick probes the primary key at a random point; a filter may
# make a probe come back empty, so a few more than asked are tried.
RANDOM_TRIES = 3


class NotInLibrary(Exception):
    """No song, album or artist has this id."""


@dataclass(frozen=True)
class Version:
    """The library's version (``LibraryVersion``): it moves in the transaction of every change
    to what the artist lists show; ``changed_at`` (naive UTC) is when it last moved."""

    number: int
    changed_at: dt.datetime


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
    # The album's genre, its songs' most common (Subsonic shows one).
    genres: list[str] = field(default_factory=list)
    has_cover: bool = False
    cover_clip_id: uuid.UUID | None = None


@dataclass
class Artist:
    id: str
    name: str
    album_count: int = 0
    albums: list[Album] = field(default_factory=list)


@dataclass
class Genre:
    name: str
    song_count: int = 0
    album_count: int = 0


def _album(row: AlbumRow) -> Album:
    return Album(
        id=row.id,
        name=row.name,
        artist=row.artist,
        artist_id=row.artist_id,
        song_count=row.song_count,
        duration=row.duration,
        play_count=row.play_count,
        created=row.created_at,
        last_played=row.last_played_at,
        year=row.year,
        genres=[row.genre] if row.genre else [],
        has_cover=row.cover_clip_id is not None,
        cover_clip_id=row.cover_clip_id,
    )


def _artist(row: ArtistRow) -> Artist:
    return Artist(id=row.id, name=row.name, album_count=row.album_count)


# The orders of album lists, each an index of library_album (migration 0004).
ALBUM_ORDERS = {
    "newest": (AlbumRow.created_at.desc(), AlbumRow.id.desc()),
    "frequent": (AlbumRow.play_count.desc(), AlbumRow.id.desc()),
    "recent": (AlbumRow.last_played_at.desc(), AlbumRow.id.desc()),
    "alphabeticalByName": (AlbumRow.sort_key, AlbumRow.artist_sort_key, AlbumRow.id),
    "alphabeticalByArtist": (AlbumRow.artist_sort_key, AlbumRow.sort_key, AlbumRow.id),
}
ALBUM_ONLY = {
    "frequent": AlbumRow.play_count > 0,
    "recent": AlbumRow.last_played_at.is_null(False),
}


@dataclass(frozen=True)
class Folder:
    id: int
    name: str


@dataclass
class Directory:
    """A directory of a library folder as it lies on disk, with what it holds."""

    id: str
    name: str
    parent_id: str | None
    directories: list[Directory] = field(default_factory=list)
    songs: list = field(default_factory=list)


def _in(folders: Folders):
    """Clips of ``folders`` (a list of one is an equality, which either planner takes as one)."""
    if len(folders.names) == 1:
        return Clip.music_folder == folders.names[0]
    return Clip.music_folder.in_(folders.names)


def _has_songs_in(folders: Folders, column, row_id):
    """Whether the album or artist ``row_id`` has a song in ``folders``: an index probe of
    (album_id, music_folder) or (artist_id, music_folder) (migration 0004). With several
    folders PostgreSQL probes by the album or artist and filters by folder, which stops at
    the first song seen (one EXISTS a folder, OR-ed, made it hash every clip of them)."""
    held = Clip.select(Clip.id).where((column == row_id) & _in(folders) & songs())
    return fn.EXISTS(held)


def _albums_in(query, folders: Folders):
    if folders.names is None:
        return query
    return query.where(_has_songs_in(folders, Clip.album_id, AlbumRow.id))


def _artists_in(query, folders: Folders):
    if folders.names is None:
        return query
    return query.where(_has_songs_in(folders, Clip.artist_id, ArtistRow.id))


def _songs_in(query, folders: Folders):
    return query if folders.names is None else query.where(_in(folders))


class Library:
    """The library as one reader sees it: only what its ``seen`` folders hold (``seen_by``
    gives another reader's view). A song, album or artist of another folder is not in it:
    not listed, not found by id."""

    def __init__(self, *, db, seen: Folders = EVERY_FOLDER) -> None:
        self._db = db
        self._seen = seen

    @property
    def seen(self) -> Folders:
        return self._seen

    def seen_by(self, folders: Folders) -> Library:
        """The library as a reader of ``folders`` sees it."""
        return Library(db=self._db, seen=folders)

    async def folders(self) -> list[Folder]:
        """The music folders seen, Uploads first (its id is 1), then in the order they came."""
        query = MusicFolder.select(MusicFolder.id, MusicFolder.name).order_by(MusicFolder.id)
        rows = await self._db.aio_execute(query)
        return [Folder(row.id, row.name) for row in rows if self._seen.shows(row.name)]

    async def folder_name(self, folder_id: int) -> str:
        for folder in await self.folders():
            if folder.id == folder_id:
                return folder.name
        raise NotInLibrary(str(folder_id))

    async def _albums(self, query) -> list[Album]:
        return [_album(row) for row in await self._db.aio_execute(query)]

    # -- albums ------------------------------------------------------------------------------
    async def album_list(self, kind: str, *, offset: int, size: int) -> list[Album]:
        """A page of albums in one of ``ALBUM_ORDERS``."""
        query = _albums_in(AlbumRow.select().order_by(*ALBUM_ORDERS[kind]), self._seen)
        if kind in ALBUM_ONLY:
            query = query.where(ALBUM_ONLY[kind])
        return await self._albums(query.offset(offset).limit(size))

    async def played_albums(
        self, user_id: int, kind: str, *, offset: int, size: int
    ) -> list[Album]:
        """The albums ``user_id`` played, most played first (``frequent``) or last played
        first (``recent``). Grouped from the user's own counts, so it costs the songs that
        user has played, not the catalogue."""
        plays, last = fn.SUM(UserPlay.play_count), fn.MAX(UserPlay.last_played_at)
        order = plays.desc() if kind == "frequent" else last.desc()
        query = _songs_in(
            UserPlay.select(Clip.album_id)
            .join(Clip, on=(Clip.id == UserPlay.clip_id))
            .where((UserPlay.user_id == user_id) & songs() & Clip.album_id.is_null(False)),
            self._seen,
        )
        query = query.group_by(Clip.album_id).order_by(order, Clip.album_id.desc())
        ids = [
            album_id
            for (album_id,) in await self._db.aio_execute(query.offset(offset).limit(size).tuples())
        ]
        by_id = {album.id: album for album in await self.albums_by_id(ids)}
        return [by_id[album_id] for album_id in ids if album_id in by_id]

    async def albums_by_year(
        self, from_year: int, to_year: int, *, offset: int, size: int
    ) -> list[Album]:
        """Albums from ``from_year`` to ``to_year``, in that direction (newest first when
        ``from_year`` is the later one, as Subsonic has it)."""
        low, high = sorted((from_year, to_year))
        order = AlbumRow.year.desc() if from_year > to_year else AlbumRow.year
        query = (
            AlbumRow.select()
            .where(AlbumRow.year.between(low, high))
            .order_by(order, AlbumRow.sort_key, AlbumRow.id)
        )
        return await self._albums(_albums_in(query, self._seen).offset(offset).limit(size))

    async def albums_by_genre(self, genre: str, *, offset: int, size: int) -> list[Album]:
        query = (
            AlbumRow.select()
            .where(AlbumRow.genre_key == genre.casefold())
            .order_by(AlbumRow.sort_key, AlbumRow.id)
        )
        return await self._albums(_albums_in(query, self._seen).offset(offset).limit(size))

    async def random_albums(self, size: int) -> list[Album]:
        condition = None
        if self._seen.names is not None:
            condition = _has_songs_in(self._seen, Clip.album_id, AlbumRow.id)
        return await self._random(AlbumRow, condition, size, _album, _random_album_key)

    async def albums_by_id(self, ids: list[str]) -> list[Album]:
        """The albums among ``ids``, by name."""
        wanted = [i for i in ids if i.startswith(ALBUM_PREFIX)]
        if not wanted:
            return []
        query = AlbumRow.select().where(AlbumRow.id.in_(wanted)).order_by(AlbumRow.sort_key)
        return await self._albums(_albums_in(query, self._seen))

    async def album(self, item_id: str) -> Album:
        found = await self.albums_by_id([item_id])
        if not found:
            raise NotInLibrary(item_id)
        return found[0]

    async def album_songs(self, album: Album) -> list[Clip]:
        """The album's songs in disc, then track order, then by title."""
        held = _songs_in(Clip.select().where(songs() & (Clip.album_id == album.id)), self._seen)
        query = held.order_by(Clip.disc, Clip.track, Clip.title, Clip.id)
        return list(await self._db.aio_execute(query))

    async def search_albums(self, query: str, *, offset: int, count: int) -> list[Album]:
        """Albums whose name or artist hold every word of ``query``, by name."""
        if count == 0:
            return []
        rows = AlbumRow.select().order_by(AlbumRow.sort_key, AlbumRow.id)
        rows = _albums_in(rows, self._seen)
        condition = search.contains_all(self._db, AlbumRow, search.words(query))
        if condition is not None:
            rows = rows.where(condition)
        return await self._albums(rows.offset(offset).limit(count))

    async def version(self) -> Version | None:
        """One primary-key read: what a reader keys the artist lists it keeps by. Read it
        before the rows it keys: a list read after a change is never kept under the version
        before that change. None if the row is gone (a hand-edited database): then nothing
        may be kept, since no writer can move it."""
        query = (
            LibraryVersion.select(LibraryVersion.version, LibraryVersion.changed_at)
            .where(LibraryVersion.id == LIBRARY_VERSION_ROW)
            .tuples()
        )
        rows = await self._db.aio_execute(query)
        if not rows:
            return None
        number, changed_at = rows[0]
        return Version(number, as_datetime(changed_at))

    # -- the folder tree of library folders -------------------------------------------------
    async def folder_root(self, folder: str) -> Directory:
        """The top of a library folder seen: its directories and the songs lying at its top
        (nothing yet, before its first scan)."""
        if not self._seen.shows(folder):
            raise NotInLibrary(folder)
        root = directory_id(folder, "")
        try:
            return await self.directory(root)
        except NotInLibrary:
            return Directory(root, folder, None)

    async def directory(self, item_id: str) -> Directory:
        """A directory, its subdirectories (by name) and its songs (by file name)."""
        if not item_id.startswith(DIRECTORY_PREFIX):
            raise NotInLibrary(item_id)
        rows = await self._db.aio_execute(
            DirectoryRow.select().where(DirectoryRow.id == item_id).limit(1)
        )
        if not rows or not self._seen.shows(rows[0].music_folder):
            raise NotInLibrary(item_id)
        node = Directory(rows[0].id, rows[0].name, rows[0].parent_id)
        children = (
            DirectoryRow.select()
            .where(DirectoryRow.parent_id == item_id)
            .order_by(DirectoryRow.sort_key, DirectoryRow.id)
        )
        node.directories = [
            Directory(row.id, row.name, row.parent_id)
            for row in await self._db.aio_execute(children)
        ]
        held = Clip.select().where(songs() & (Clip.directory_id == item_id)).order_by(Clip.path)
        node.songs = list(await self._db.aio_execute(held))
        return node

    # -- artists -----------------------------------------------------------------------------
    async def artists(self) -> list[Artist]:
        """Every artist (with songs in the folders seen), by name: the size of the answer. Read as
        plain tuples of the three columns shown: a model object per row was half the time of
        getArtists (25,000 of them at a million songs)."""
        columns = (ArtistRow.id, ArtistRow.name, ArtistRow.album_count)
        query = ArtistRow.select(*columns).order_by(ArtistRow.sort_key, ArtistRow.id)
        rows = await self._db.aio_execute(_artists_in(query, self._seen).tuples())
        return [Artist(artist_id, name, albums) for artist_id, name, albums in rows]

    async def artists_by_id(self, ids: list[str]) -> list[Artist]:
        wanted = [i for i in ids if i.startswith(ARTIST_PREFIX)]
        if not wanted:
            return []
        query = ArtistRow.select().where(ArtistRow.id.in_(wanted)).order_by(ArtistRow.sort_key)
        query = _artists_in(query, self._seen)
        return [_artist(row) for row in await self._db.aio_execute(query)]

    async def artist(self, item_id: str) -> Artist:
        """The artist, with its albums seen (by year, then name)."""
        found = await self.artists_by_id([item_id])
        if not found:
            raise NotInLibrary(item_id)
        artist = found[0]
        query = (
            AlbumRow.select()
            .where(AlbumRow.artist_id == artist.id)
            .order_by(AlbumRow.year, AlbumRow.sort_key, AlbumRow.id)
        )
        artist.albums = await self._albums(_albums_in(query, self._seen))
        return artist

    async def artist_ids_named(self, name: str) -> list[str]:
        """The ids of the artists called ``name``, without regard to case (the artists'
        ``sort_key`` index): those with songs in the folders seen."""
        query = ArtistRow.select(ArtistRow.id).where(ArtistRow.sort_key == sort_key(name))
        rows = await self._db.aio_execute(_artists_in(query, self._seen).tuples())
        return [artist_id for (artist_id,) in rows]

    async def top_songs(self, artist_ids: list[str], count: int) -> list[Clip]:
        """The songs of ``artist_ids`` most played by everyone, at most ``count``. Found
        through the clips' (artist_id, music_folder) index and sorted there: an artist's
        songs are few, so this costs them, never a pass over every clip."""
        if not artist_ids or count == 0:
            return []
        query = (
            Clip.select()
            .where(songs() & Clip.artist_id.in_(artist_ids))
            .order_by(Clip.play_count.desc(), Clip.title, Clip.id)
            .limit(count)
        )
        return list(await self._db.aio_execute(_songs_in(query, self._seen)))

    async def search_artists(self, query: str, *, offset: int, count: int) -> list[Artist]:
        if count == 0:
            return []
        rows = ArtistRow.select().order_by(ArtistRow.sort_key, ArtistRow.id)
        rows = _artists_in(rows, self._seen)
        condition = search.contains_all(self._db, ArtistRow, search.words(query))
        if condition is not None:
            rows = rows.where(condition)
        rows = rows.offset(offset).limit(count)
        return [_artist(row) for row in await self._db.aio_execute(rows)]

    # -- songs -------------------------------------------------------------------------------
    async def song(self, item_id: str) -> Clip:
        found = await self.songs_by_id([item_id])
        if not found:
            raise NotInLibrary(item_id)
        return found[0]

    async def songs_by_id(self, item_ids: list[str]) -> list[Clip]:
        """The songs among ``item_ids``, in that order (repeats kept); others are left out."""
        ids = [parsed for parsed in map(_uuid, item_ids) if parsed is not None]
        if not ids:
            return []
        query = _songs_in(Clip.select().where(songs() & Clip.id.in_(list(set(ids)))), self._seen)
        found = {clip.id: clip for clip in await self._db.aio_execute(query)}
        return [found[i] for i in ids if i in found]

    async def search_songs(self, query: str, *, offset: int, count: int) -> list[Clip]:
        """Songs whose title, description, artist or album hold every word of ``query``
        (all songs when it is empty), oldest first so paging through a library while clips
        are added never skips one."""
        if count == 0:
            return []
        rows = Clip.select().where(songs()).order_by(Clip.created_at, Clip.id)
        rows = _songs_in(rows, self._seen)
        condition = search.contains_all(self._db, Clip, search.words(query))
        if condition is not None:
            rows = rows.where(condition)
        return list(await self._db.aio_execute(rows.offset(offset).limit(count)))

    async def random_songs(
        self,
        count: int,
        *,
        genre: str | None = None,
        from_year: int | None = None,
        to_year: int | None = None,
    ) -> list[Clip]:
        condition = songs()
        if self._seen.names is not None:
            condition &= _in(self._seen)
        if genre:
            condition &= Clip.genre_key == genre.casefold()
        if from_year is not None:
            condition &= Clip.year >= from_year
        if to_year is not None:
            condition &= Clip.year <= to_year
        return await self._random(Clip, condition, count, lambda clip: clip, _random_clip_key)

    async def _random(self, model, condition, count: int, make, random_key) -> list:
        """Up to ``count`` distinct rows matching ``condition`` picked at random: each the
        first row at or after a random point of the primary key (uniform, since ids are
        random), in one statement of ``count`` index probes. Fewer only when fewer match."""
        key = model._meta.primary_key
        picked: dict = {}
        for _ in range(RANDOM_TRIES):
            wanted = count - len(picked)
            if wanted <= 0:
                break
            probes = [
                _where(model.select(key).where(key >= random_key()), condition)
                .order_by(key)
                .limit(1)
                for _ in range(wanted)
            ]
            query = model.select().where(key.in_(probes))
            for row in await self._db.aio_execute(query):
                picked.setdefault(getattr(row, key.name), row)
        if len(picked) < count:
            await self._fill_run(model, condition, count, picked, random_key())
        found = list(picked.values())[:count]
        secrets.SystemRandom().shuffle(found)
        return [make(row) for row in found]

    async def genre_songs(self, genre: str, *, offset: int, count: int) -> list[Clip]:
        """Songs of ``genre`` (case-insensitive), oldest first, so pages never skip one."""
        of_genre = Clip.select().where(songs() & (Clip.genre_key == genre.casefold()))
        rows = (
            _songs_in(of_genre, self._seen)
            .order_by(Clip.created_at, Clip.id)
            .offset(offset)
            .limit(count)
        )
        return list(await self._db.aio_execute(rows))

    async def genres(self) -> list[Genre]:
        """Every genre with its song and album counts, by name."""
        query = GenreRow.select().where(GenreRow.song_count > 0).order_by(GenreRow.key)
        return [
            Genre(row.name, row.song_count, row.album_count)
            for row in await self._db.aio_execute(query)
        ]

    async def song_count(self) -> int:
        """Songs now (the folders' counts; no clip row is read)."""
        total = await MusicFolder.select(fn.SUM(MusicFolder.songs)).aio_scalar(self._db)
        return int(total or 0)

    async def _fill_run(self, model, condition, count: int, picked: dict, start) -> None:
        """Few rows match (or probes kept landing on the same ones): add the rows after a
        random point, wrapping around, until ``count`` are picked or none is left. Costs at
        most ``count`` plus the rows already picked, whatever the table's size."""
        key = model._meta.primary_key
        for side in (key >= start, key < start):
            wanted = count - len(picked)
            if wanted <= 0:
                return
            rows = _where(model.select().where(side), condition).order_by(key)
            for row in await self._db.aio_execute(rows.limit(wanted + len(picked))):
                picked.setdefault(getattr(row, key.name), row)


def _where(query, condition):
    return query if condition is None else query.where(condition)


def _random_clip_key() -> uuid.UUID:
    return uuid.UUID(int=secrets.randbits(128))


def _random_album_key() -> str:
    return ALBUM_PREFIX + secrets.token_hex(8)


def _uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except (ValueError, TypeError, AttributeError):
        return None
