"""The library's derived rows kept exact: albums, artists, genres and music folder counts.

Every change to songs (an upload, a delete, a scan's batch) notes what it touched in a
``Touched`` and calls ``Aggregates.refresh`` in the same transaction, so a reader never sees
an album whose counts disagree with its songs. Albums and artists are recomputed from their
own songs (an index range, the size of the album); genre and folder counts move by the
deltas the writer noted, so a song added costs the same in a library of any size. A play's
count reaches its album by a trigger (migration 0004), in the play's own statement.

``rebuild`` recomputes everything from the clips: ``mosic reindex``.

Both move the library's version (``LibraryVersion``, migration 0006) when artists may have
changed, in the same transaction: readers that keep the whole artist list (Subsonic's
``getArtists``, ``getIndexes``) know by one row read whether it is still the answer.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections import Counter
from dataclasses import dataclass, field

import peewee
from peewee import SQL, Case, fn

from mosic.core import grouping, replay_gain
from mosic.persistence.models import (
    LIBRARY_VERSION_ROW,
    UPLOADS,
    AlbumRow,
    ArtistRow,
    Clip,
    GenreRow,
    LibraryVersion,
    MusicFolder,
)

REBUILD_BATCH = 2000
# Rows a statement upserts at once: well within SQLite's 32,766 parameters (16 a row).
UPSERT_BATCH = 500


def visible():
    """Clips that are songs or listed clips now: not a library file that went missing."""
    return Clip.missing_since.is_null()


def songs():
    """Clips that are songs: a stored file, not missing."""
    return Clip.file_name.is_null(False) & visible()


@dataclass
class Touched:
    """What a change to clips touched: albums and artists (id -> their names, as the changed
    songs name them), and by how much each genre's and each folder's count moved."""

    albums: dict[str, tuple[str, str]] = field(default_factory=dict)
    artists: dict[str, str] = field(default_factory=dict)
    genres: Counter = field(default_factory=Counter)
    genre_names: dict[str, str] = field(default_factory=dict)
    folders: Counter = field(default_factory=Counter)
    folder_songs: Counter = field(default_factory=Counter)

    def clip(self, fields: dict, delta: int) -> None:
        """A clip with ``fields`` appeared (``delta`` 1) or went (-1), from every listing."""
        folder = fields.get("music_folder") or UPLOADS
        self.folders[folder] += delta
        if fields.get("file_name") is None:
            return  # metadata-only clips are not songs
        self.folder_songs[folder] += delta
        artist, album = grouping.song_names(
            fields.get("album_artist"), fields.get("artist"), fields.get("album")
        )
        self.albums[grouping.album_id(artist, album)] = (artist, album)
        self.artists[grouping.artist_id(artist)] = artist
        genre = fields.get("genre")
        if genre:
            key = genre.casefold()
            self.genres[key] += delta
            self.genre_names.setdefault(key, genre)

    def __bool__(self) -> bool:
        return bool(self.albums or self.folders or self.genres)


async def move_library_version(db) -> None:
    """Say that what the artist lists show has changed: call it in the transaction of the
    change, so no reader sees the change under the version before it."""
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)  # naive UTC, as every stored time
    await db.aio_execute(
        LibraryVersion.update(version=LibraryVersion.version + 1, changed_at=now).where(
            LibraryVersion.id == LIBRARY_VERSION_ROW
        )
    )


class Aggregates:
    def __init__(self, *, db) -> None:
        self._db = db

    async def refresh(self, touched: Touched) -> None:
        """Bring the rows ``touched`` names up to date; call it inside the transaction that
        changed the songs."""
        if touched.albums:
            for key in await self._refresh_albums(touched.albums):
                touched.genre_names.setdefault(key, key)
            await self._refresh_artists(touched.artists)
        await self._move_genres(touched)
        for name, delta in touched.folders.items():
            songs_delta = touched.folder_songs[name]
            if delta or songs_delta:
                await self._db.aio_execute(
                    MusicFolder.update(
                        clips=MusicFolder.clips + delta, songs=MusicFolder.songs + songs_delta
                    ).where(MusicFolder.name == name)
                )
        if touched.artists:
            # Last: the row every writer of artists takes, held for the least time.
            await move_library_version(self._db)

    async def _refresh_albums(self, albums: dict[str, tuple[str, str]]) -> set[str]:
        """Recompute ``albums``; returns the genres they had before, whose album counts
        may have moved."""
        ids = list(albums)
        before = await self._db.aio_execute(
            AlbumRow.select(AlbumRow.genre_key)
            .where(AlbumRow.id.in_(ids) & AlbumRow.genre_key.is_null(False))
            .tuples()
        )
        facts = {row[0]: row for row in await self._db.aio_execute(_album_facts(ids))}
        genres = await self._album_genres(ids)
        gone = [album_id for album_id in ids if album_id not in facts]
        if gone:
            await self._db.aio_execute(AlbumRow.delete().where(AlbumRow.id.in_(gone)))
        values = [
            _album_values(album_id, *albums[album_id], row, genres.get(album_id))
            for album_id, row in facts.items()
        ]
        for start in range(0, len(values), UPSERT_BATCH):
            await self._db.aio_execute(
                AlbumRow.insert_many(values[start : start + UPSERT_BATCH])
                .on_conflict(conflict_target=[AlbumRow.id], preserve=_ALBUM_UPDATED)
                .returning(AlbumRow.id)
            )
        await self.refresh_gains(list(facts))
        return {key for (key,) in before}

    async def refresh_gains(self, album_ids: list[str]) -> None:
        """Combine each album's ReplayGain over its songs (``replay_gain.album_figures``)
        and write it to those of its songs whose files hold no album gain of their own,
        where it changed: one read of the albums' songs, a write an album that changed.
        An album is null while one of its songs is still to be measured, and so is one
        without a name (the unknown album is no album). Call it in the transaction of the
        change (``refresh`` does, for the albums it recomputes)."""
        if not album_ids:
            return
        query = (
            Clip.select(Clip.album_id, Clip.id, Clip.album, Clip.duration, Clip.gated_seconds,
                        Clip.track_gain_db, Clip.track_peak, Clip.gain_source,
                        Clip.album_gain_tagged, Clip.album_gain_db, Clip.album_peak)
            .where(songs() & Clip.album_id.in_(album_ids))
            .namedtuples()
        )  # fmt: skip
        albums: dict[str, list] = {}
        for song in await self._db.aio_execute(query):
            albums.setdefault(song.album_id, []).append(song)
        for album in albums.values():
            gain, peak = _album_gain(album)
            stale = [
                song.id
                for song in album
                if not song.album_gain_tagged
                and (song.album_gain_db, song.album_peak) != (gain, peak)
            ]
            if stale:
                await self._db.aio_execute(
                    Clip.update(album_gain_db=gain, album_peak=peak).where(Clip.id.in_(stale))
                )

    async def _album_genres(self, ids: list[str]) -> dict[str, str]:
        """Each album's most common genre (the first a Subsonic app shows)."""
        query = (
            Clip.select(Clip.album_id, Clip.genre, fn.COUNT(SQL("*")))
            .where(songs() & Clip.album_id.in_(ids) & Clip.genre.is_null(False))
            .group_by(Clip.album_id, Clip.genre)
            .tuples()
        )
        best: dict[str, tuple[int, str]] = {}
        for album_id, genre, count in await self._db.aio_execute(query):
            if genre and (count, genre) > best.get(album_id, (0, "")):
                best[album_id] = (count, genre)
        return {album_id: genre for album_id, (_, genre) in best.items()}

    async def _refresh_artists(self, artists: dict[str, str]) -> None:
        ids = list(artists)
        query = (
            AlbumRow.select(AlbumRow.artist_id, fn.COUNT(SQL("*")), fn.SUM(AlbumRow.song_count))
            .where(AlbumRow.artist_id.in_(ids))
            .group_by(AlbumRow.artist_id)
            .tuples()
        )
        counts = {row[0]: row[1:] for row in await self._db.aio_execute(query)}
        gone = [artist_id for artist_id in ids if artist_id not in counts]
        if gone:
            await self._db.aio_execute(ArtistRow.delete().where(ArtistRow.id.in_(gone)))
        values = [
            {
                "id": artist_id,
                "name": artists[artist_id],
                "sort_key": grouping.sort_key(artists[artist_id]),
                "search_text": artists[artist_id].casefold(),
                "album_count": albums,
                "song_count": int(song_count or 0),
            }
            for artist_id, (albums, song_count) in counts.items()
        ]
        for start in range(0, len(values), UPSERT_BATCH):
            await self._db.aio_execute(
                ArtistRow.insert_many(values[start : start + UPSERT_BATCH])
                .on_conflict(
                    conflict_target=[ArtistRow.id],
                    preserve=[ArtistRow.album_count, ArtistRow.song_count],
                )
                .returning(ArtistRow.id)
            )

    async def _move_genres(self, touched: Touched) -> None:
        for key, delta in touched.genres.items():
            if not delta:
                continue
            name = touched.genre_names.get(key, key)
            await self._db.aio_execute(
                GenreRow.insert(key=key, name=name, song_count=max(delta, 0), album_count=0)
                .on_conflict(
                    conflict_target=[GenreRow.key],
                    update={GenreRow.song_count: GenreRow.song_count + delta},
                )
                .returning(GenreRow.key)
            )
        # Every genre named, not only those whose songs moved: an album's genre may change
        # without any genre's song count moving.
        keys = list(touched.genre_names)
        if keys:
            await self._count_genre_albums(keys)
            await self._db.aio_execute(
                GenreRow.delete().where(GenreRow.key.in_(keys) & (GenreRow.song_count <= 0))
            )

    async def _count_genre_albums(self, keys: list[str]) -> None:
        albums = AlbumRow.select(fn.COUNT(SQL("*"))).where(AlbumRow.genre_key == GenreRow.key)
        await self._db.aio_execute(
            GenreRow.update(album_count=albums).where(GenreRow.key.in_(keys))
        )

    async def rebuild(self, progress=None) -> None:
        """Recompute every derived row from the clips (``mosic reindex``): the song columns
        of each clip in batches, then albums, artists, genres and folder counts, each in one
        transaction, so readers see the old rows or the new, never a half."""
        await self._regroup_clips(progress)
        async with self._db.aio_atomic():
            await self._rebuild_albums()
        async with self._db.aio_atomic():
            await self._rebuild_artists()
            await move_library_version(self._db)
        async with self._db.aio_atomic():
            await self._rebuild_genres()
        async with self._db.aio_atomic():
            await self._rebuild_folders()

    async def _regroup_clips(self, progress) -> None:
        """Set ``album_id``, ``artist_id`` and ``directory_id`` of every clip from its tags."""
        columns = (
            Clip.id,
            Clip.file_name,
            Clip.album_artist,
            Clip.artist,
            Clip.album,
            Clip.music_folder,
            Clip.path,
            Clip.album_id,
            Clip.artist_id,
            Clip.directory_id,
        )
        after = None
        while True:
            query = Clip.select(*columns).order_by(Clip.id).limit(REBUILD_BATCH)
            if after is not None:
                query = query.where(Clip.id > after)
            rows = list(await self._db.aio_execute(query.dicts()))
            if not rows:
                return
            changed = []
            for row in rows:
                ids = grouping.song_ids(row)
                if any(row[name] != value for name, value in ids.items()):
                    changed.append([*ids.values(), Clip.id.db_value(row["id"])])
            if changed:
                # One transaction a batch: in autocommit, each row was a commit of its own.
                async with self._db.aio_atomic():
                    await self._db.execute_many(self._regroup_sql(), changed)
            after = rows[-1]["id"]
            if progress is not None:
                progress(len(rows))

    def _regroup_sql(self) -> str:
        """``UPDATE clip SET album_id, artist_id, directory_id WHERE id``, with parameters in
        that order, as this database writes it."""
        some = "-"
        query = Clip.update(album_id=some, artist_id=some, directory_id=some).where(
            Clip.id == uuid.UUID(int=0)
        )
        return self._db.get_sql_context().sql(query).query()[0]

    async def _rebuild_albums(self) -> None:
        ids = [
            row[0]
            for row in await self._db.aio_execute(
                Clip.select(Clip.album_id).where(songs()).distinct().tuples()
            )
        ]
        await self._db.aio_execute(AlbumRow.delete().where(AlbumRow.id.not_in(ids or [""])))
        for start in range(0, len(ids), REBUILD_BATCH):
            batch = ids[start : start + REBUILD_BATCH]
            names = await self._album_names(batch)
            await self._refresh_albums(names)

    async def _album_names(self, ids: list[str]) -> dict[str, tuple[str, str]]:
        query = (
            Clip.select(
                Clip.album_id,
                fn.MIN(fn.COALESCE(fn.NULLIF(Clip.album_artist, ""), Clip.artist)),
                fn.MIN(Clip.album),
            )
            .where(songs() & Clip.album_id.in_(ids))
            .group_by(Clip.album_id)
            .tuples()
        )
        names = {}
        for album_id, artist, album in await self._db.aio_execute(query):
            names[album_id] = grouping.names(artist or None, album or None)
        return names

    async def _rebuild_artists(self) -> None:
        rows = await self._db.aio_execute(
            AlbumRow.select(AlbumRow.artist_id, fn.MIN(AlbumRow.artist))
            .group_by(AlbumRow.artist_id)
            .tuples()
        )
        artists = dict(rows)
        await self._db.aio_execute(
            ArtistRow.delete().where(ArtistRow.id.not_in(list(artists) or [""]))
        )
        items = list(artists.items())
        for start in range(0, len(items), REBUILD_BATCH):
            await self._refresh_artists(dict(items[start : start + REBUILD_BATCH]))

    async def _rebuild_genres(self) -> None:
        query = (
            Clip.select(Clip.genre_key, fn.MIN(Clip.genre), fn.COUNT(SQL("*")))
            .where(songs() & Clip.genre_key.is_null(False) & (Clip.genre_key != ""))
            .group_by(Clip.genre_key)
            .tuples()
        )
        rows = list(await self._db.aio_execute(query))
        await self._db.aio_execute(GenreRow.delete())
        for key, name, count in rows:
            await self._db.aio_execute(
                GenreRow.insert(key=key, name=name, song_count=count, album_count=0).returning(
                    GenreRow.key
                )
            )
        if rows:
            await self._count_genre_albums([row[0] for row in rows])

    async def _rebuild_folders(self) -> None:
        in_folder = Clip.music_folder == MusicFolder.name
        clips = Clip.select(fn.COUNT(SQL("*"))).where(visible() & in_folder)
        counted_songs = Clip.select(fn.COUNT(SQL("*"))).where(songs() & in_folder)
        await self._db.aio_execute(MusicFolder.update(clips=clips, songs=counted_songs))


_ALBUM_UPDATED = [
    AlbumRow.song_count,
    AlbumRow.duration,
    AlbumRow.play_count,
    AlbumRow.created_at,
    AlbumRow.last_played_at,
    AlbumRow.year,
    AlbumRow.genre,
    AlbumRow.genre_key,
    AlbumRow.cover_clip_id,
]


def _album_gain(album: list) -> tuple[float | None, float | None]:
    """(gain, peak) of an album's songs (rows of ``refresh_gains``' query)."""
    if any(not song.album or song.gain_source is None for song in album):
        return None, None
    return replay_gain.album_figures(
        (song.gated_seconds or song.duration, song.track_gain_db, song.track_peak) for song in album
    )


def _album_facts(ids: list[str]):
    covered = Case(None, [(Clip.cover_name.is_null(False), peewee.Cast(Clip.id, "TEXT"))])
    return (
        Clip.select(
            Clip.album_id,
            fn.COUNT(SQL("*")),
            fn.SUM(Clip.duration),
            fn.SUM(Clip.play_count),
            fn.MIN(Clip.created_at),
            fn.MAX(Clip.last_played_at),
            fn.MAX(Clip.year),
            fn.MIN(covered),
        )
        .where(songs() & Clip.album_id.in_(ids))
        .group_by(Clip.album_id)
        .tuples()
    )


def _album_values(album_id: str, artist: str, name: str, row, genre: str | None) -> dict:
    _, count, seconds, plays, created, last_played, year, cover = row
    return {
        "id": album_id,
        "name": name,
        "sort_key": grouping.sort_key(name),
        "artist_id": grouping.artist_id(artist),
        "artist": artist,
        "artist_sort_key": grouping.sort_key(artist),
        "search_text": f"{name.casefold()}\n{artist.casefold()}",
        "song_count": count,
        "duration": float(seconds or 0.0),
        "play_count": int(plays or 0),
        "created_at": as_datetime(created),
        "last_played_at": as_datetime(last_played),
        "year": year,
        "genre": genre,
        "genre_key": genre.casefold() if genre else None,
        "cover_clip_id": uuid.UUID(cover) if cover else None,
    }


def as_datetime(value) -> dt.datetime | None:
    """A time from an aggregate, typed."""
    # Aggregates come back untyped: SQLite gives the stored text, PostgreSQL a datetime.
    if value is None or isinstance(value, dt.datetime):
        return value
    return dt.datetime.fromisoformat(str(value))
