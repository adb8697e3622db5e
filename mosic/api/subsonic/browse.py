"""Reading the library: folders, indexes, directories, artists, albums, songs, album lists,
random songs, genres and search."""

from __future__ import annotations

import datetime as dt

from mosic.api.subsonic import shapes
from mosic.api.subsonic.call import Call
from mosic.api.subsonic.kept import Kept
from mosic.api.subsonic.response import (
    Code,
    Encoded,
    SubsonicError,
    encode,
    not_found,
    ok,
    wants_json,
)
from mosic.api.subsonic.shapes import Marks, MarksLoader
from mosic.core.grouping import DIRECTORY_PREFIX
from mosic.core.library import ALBUM_ORDERS, Album, Library, NotInLibrary, Version
from mosic.core.listening import NEVER_PLAYED
from mosic.persistence.models import UPLOADS

LIST_MAX = 500
# A library sync asks for hundreds of songs a page (Symfonium: 500); refusing a bigger page
# is better than silently shortening it, which a syncing app would take for the end.
SEARCH_MAX = 10_000
QUERY_MAX = 1000
YEAR_MIN, YEAR_MAX = 0, 9999
FOLDER_ID_MAX = 2**31 - 1
MILLISECONDS_MAX = 2**63 - 1
# Each with the versions the OpenSubsonic documentation gives.
EXTENSIONS = [
    {"name": "apiKeyAuthentication", "versions": [1]},
    {"name": "formPost", "versions": [1]},
    {"name": "indexBasedQueue", "versions": [1]},
    {"name": "playbackReport", "versions": [1]},
    {"name": "songLyrics", "versions": [1]},
    {"name": "topSongsByArtistId", "versions": [1]},
    {"name": "transcodeOffset", "versions": [1]},  # stream's timeOffset (mosic.api.subsonic.media)
    {"name": "transcoding", "versions": [1]},  # mosic.api.subsonic.transcoding
]
# getTopSongs' default count (Subsonic's).
TOP_SONGS_DEFAULT = 50


ALBUM_LIST_TYPES = (*ALBUM_ORDERS, "random", "starred", "byYear", "byGenre")


def search_terms(query: str | None) -> str:
    """Clients quote their queries and add wildcards (Symfonium syncs with ``""``): both
    mean nothing, so an empty query matches everything."""
    return (query or "").replace('"', " ").replace("*", " ").strip()


class Browse:
    def __init__(self, *, library: Library, marks: MarksLoader, kept: Kept) -> None:
        self._library = library
        self._marks = marks
        self._kept = kept

    def methods(self) -> dict:
        return {
            "ping": self.ping,
            "getLicense": self.license,
            "getOpenSubsonicExtensions": self.extensions,
            "getMusicFolders": self.music_folders,
            "getIndexes": self.indexes,
            "getMusicDirectory": self.music_directory,
            "getArtists": self.artists,
            "getArtist": self.artist,
            "getAlbum": self.album,
            "getSong": self.song,
            "getAlbumList": self.album_list,
            "getAlbumList2": self.album_list2,
            "getRandomSongs": self.random_songs,
            "getGenres": self.genres,
            "getSongsByGenre": self.songs_by_genre,
            "getTopSongs": self.top_songs,
            "search2": self.search2,
            "search3": self.search3,
            "tokenInfo": self.token_info,
        }

    async def marks(self, call: Call, songs=(), albums=()) -> Marks:
        """The caller's marks, and its plays of ``songs`` and ``albums``."""
        return await self._marks(call.caller.user.id, songs, albums)

    async def ping(self, call: Call) -> dict:
        return {}

    async def license(self, call: Call) -> dict:
        return {"license": {"valid": True}}

    async def extensions(self, call: Call) -> dict:
        return {"openSubsonicExtensions": EXTENSIONS}

    async def music_folders(self, call: Call) -> dict:
        seen = await self._library.seen_by(call.folders).folders()
        folders = [{"id": f.id, "name": f.name} for f in seen]
        return {"musicFolders": {"musicFolder": folders}}

    async def token_info(self, call: Call) -> dict:
        if not call.caller.by_api_key:
            raise SubsonicError(
                Code.AUTH_MECHANISM_UNSUPPORTED, "tokenInfo answers for an apiKey only"
            )
        return {"tokenInfo": {"username": call.user}}

    async def indexes(self, call: Call) -> dict | Encoded:
        """Artists by first letter; for a library folder (``musicFolderId``), its real
        folder tree instead: the directories at its top, and the songs lying there.
        ``lastModified`` is when the library's artists last changed; with
        ``ifModifiedSince`` at or after it, the answer leaves the index out (unchanged)."""
        folder = await asked_folder(call, self._library)
        library = self._library.seen_by(call.folders.narrowed(folder))
        version = await library.version()
        body = {
            "lastModified": milliseconds(version.changed_at) if version else 0,
            "ignoredArticles": shapes.IGNORED_ARTICLES,
        }
        since = call.params.integer("ifModifiedSince", None, 0, MILLISECONDS_MAX)
        if since is not None and version is not None and since >= body["lastModified"]:
            return {"indexes": body}
        if folder is not None and folder != UPLOADS:
            # A folder's tree shows its songs' play counts, which no version follows.
            root = await library.folder_root(folder)
            marks = await self.marks(call, root.songs)
            body["index"] = shapes.indexed(
                root.directories, lambda d: shapes.directory_entry(d, marks)
            )
            body["child"] = [shapes.song(s, marks) for s in root.songs]
            return {"indexes": body}

        async def artists() -> dict:
            listed, marks = await library.artists(), await self.marks(call)
            body["index"] = shapes.indexed(listed, lambda a: shapes.artist_plain(a, marks))
            return {"indexes": body}

        variant = ("getIndexes", library.seen.names)
        return await self._kept_answer(call, version, variant, artists)

    async def artists(self, call: Call) -> Encoded:
        library = await seen_library(call, self._library)

        async def artists() -> dict:
            listed, marks = await library.artists(), await self.marks(call)
            return {
                "artists": {
                    "ignoredArticles": shapes.IGNORED_ARTICLES,
                    "index": shapes.indexed(listed, lambda a: shapes.artist_id3(a, marks)),
                }
            }

        version = await library.version()
        return await self._kept_answer(call, version, ("getArtists", library.seen.names), artists)

    async def _kept_answer(
        self, call: Call, version: Version | None, variant: tuple, build
    ) -> Encoded:
        """The answer of ``build`` as ``call`` wants it encoded, kept under ``version``
        (read before ``build`` reads anything) for the next calls of the same variant (and
        the same user: the answer shows the caller's stars and ratings of artists);
        without a version, built and not kept."""
        fmt = call.params.one("f")

        async def encoded() -> Encoded:
            return encode(ok(await build()), fmt)

        if version is None:
            return await encoded()
        user_variant = (*variant, call.caller.user.id, wants_json(fmt))
        return await self._kept.answer(version, user_variant, encoded)

    async def music_directory(self, call: Call) -> dict:
        item_id = call.params.required("id")
        library = self._library.seen_by(call.folders)
        if item_id.startswith(DIRECTORY_PREFIX):
            return {"directory": await self._directory(library, item_id, call)}
        try:
            artist = await library.artist(item_id)
        except NotInLibrary:
            artist = None
        if artist is not None:
            marks = await self.marks(call, albums=artist.albums)
            children = [shapes.album_child(album, marks) for album in artist.albums]
            node = {"id": artist.id, "name": artist.name, **marks.of(artist.id)}
            return {"directory": {**node, "child": children}}
        album = await _album(library, item_id)
        songs = await library.album_songs(album)
        marks = await self.marks(call, songs, [album])
        node = {"id": album.id, "parent": album.artist_id, "name": album.name}
        played = marks.album_plays.get(album.id, NEVER_PLAYED).play_count
        node.update(marks.of(album.id), playCount=played)
        return {"directory": {**node, "child": [shapes.song(s, marks) for s in songs]}}

    async def _directory(self, library: Library, item_id: str, call: Call) -> dict:
        try:
            node = await library.directory(item_id)
        except NotInLibrary:
            raise not_found("directory") from None
        marks = await self.marks(call, node.songs)
        children = [shapes.directory_child(d, marks) for d in node.directories]
        children += [shapes.song(s, marks) for s in node.songs]
        body = {"id": node.id, "name": node.name, **marks.of(node.id), "child": children}
        if node.parent_id:
            body["parent"] = node.parent_id
        return body

    async def artist(self, call: Call) -> dict:
        try:
            artist = await self._library.seen_by(call.folders).artist(call.params.required("id"))
        except NotInLibrary:
            raise not_found("artist") from None
        marks = await self.marks(call, albums=artist.albums)
        albums = [shapes.album_id3(album, marks) for album in artist.albums]
        return {"artist": {**shapes.artist_id3(artist, marks), "album": albums}}

    async def album(self, call: Call) -> dict:
        library = self._library.seen_by(call.folders)
        album = await _album(library, call.params.required("id"))
        songs = await library.album_songs(album)
        marks = await self.marks(call, songs, [album])
        body = shapes.album_id3(album, marks)
        return {"album": {**body, "song": [shapes.song(s, marks) for s in songs]}}

    async def song(self, call: Call) -> dict:
        try:
            clip = await self._library.seen_by(call.folders).song(call.params.required("id"))
        except NotInLibrary:
            raise not_found("song") from None
        return {"song": shapes.song(clip, await self.marks(call, [clip]))}

    async def _album_page(self, call: Call) -> tuple[list[Album], Marks]:
        kind = call.params.required("type")
        if kind not in ALBUM_LIST_TYPES:
            raise SubsonicError(Code.GENERIC, f"unknown album list type {kind!r}")
        size = call.params.count("size", 10, LIST_MAX)
        offset = call.params.offset("offset")
        library = await seen_library(call, self._library)
        page = {"offset": offset, "size": size}
        user_id = call.caller.user.id
        if kind == "byYear":
            from_year = _year(call, "fromYear", required=True)
            to_year = _year(call, "toYear", required=True)
            albums = await library.albums_by_year(from_year, to_year, **page)
        elif kind == "byGenre":
            albums = await library.albums_by_genre(call.params.required("genre"), **page)
        elif kind == "random":
            albums = await library.random_albums(size)
        elif kind == "starred":
            starred = await library.albums_by_id(list(await self._marks.stars(user_id)))
            albums = starred[offset : offset + size]
        elif kind in ("frequent", "recent"):  # the caller's plays, not everyone's
            albums = await library.played_albums(user_id, kind, **page)
        else:
            albums = await library.album_list(kind, **page)
        return albums, await self.marks(call, albums=albums)

    async def album_list(self, call: Call) -> dict:
        albums, marks = await self._album_page(call)
        return {"albumList": {"album": [shapes.album_child(a, marks) for a in albums]}}

    async def album_list2(self, call: Call) -> dict:
        albums, marks = await self._album_page(call)
        return {"albumList2": {"album": [shapes.album_id3(a, marks) for a in albums]}}

    async def random_songs(self, call: Call) -> dict:
        size = call.params.count("size", 10, LIST_MAX)
        library = await seen_library(call, self._library)
        songs = await library.random_songs(
            size,
            genre=call.params.one("genre"),
            from_year=_year(call, "fromYear"),
            to_year=_year(call, "toYear"),
        )
        marks = await self.marks(call, songs)
        return {"randomSongs": {"song": [shapes.song(s, marks) for s in songs]}}

    async def genres(self, call: Call) -> dict:
        genres = await self._library.genres()
        return {"genres": {"genre": [shapes.genre(g) for g in genres]}}

    async def songs_by_genre(self, call: Call) -> dict:
        genre = call.params.required("genre")
        library = await seen_library(call, self._library)
        songs = await library.genre_songs(
            genre,
            count=call.params.count("count", 10, LIST_MAX),
            offset=call.params.offset("offset"),
        )
        marks = await self.marks(call, songs)
        return {"songsByGenre": {"song": [shapes.song(s, marks) for s in songs]}}

    async def top_songs(self, call: Call) -> dict:
        """An artist's songs most played by everyone, by ``artist`` name (without regard to
        case) or by artist ``id`` (OpenSubsonic ``topSongsByArtistId``; it wins over the
        name). An unknown name has no songs; an unknown id is not found."""
        library = self._library.seen_by(call.folders)
        count = call.params.count("count", TOP_SONGS_DEFAULT, LIST_MAX)
        artist_id = call.params.one("id")
        if artist_id:
            if not await library.artists_by_id([artist_id]):
                raise not_found("artist")
            artist_ids = [artist_id]
        else:
            artist_ids = await library.artist_ids_named(call.params.required("artist"))
        songs = await library.top_songs(artist_ids, count)
        marks = await self.marks(call, songs)
        return {"topSongs": {"song": [shapes.song(s, marks) for s in songs]}}

    async def _search(self, call: Call):
        terms = search_terms(call.params.text("query", QUERY_MAX))
        p = call.params
        artist_count = p.count("artistCount", 20, SEARCH_MAX)
        album_count = p.count("albumCount", 20, SEARCH_MAX)
        library = await seen_library(call, self._library)
        artists = await library.search_artists(
            terms, offset=p.offset("artistOffset"), count=artist_count
        )
        albums = await library.search_albums(
            terms, offset=p.offset("albumOffset"), count=album_count
        )
        songs = await library.search_songs(
            terms, offset=p.offset("songOffset"), count=p.count("songCount", 20, SEARCH_MAX)
        )
        return artists, albums, songs, await self.marks(call, songs, albums)

    async def search2(self, call: Call) -> dict:
        artists, albums, songs, marks = await self._search(call)
        return {
            "searchResult2": {
                "artist": [shapes.artist_plain(a, marks) for a in artists],
                "album": [shapes.album_child(a, marks) for a in albums],
                "song": [shapes.song(s, marks) for s in songs],
            }
        }

    async def search3(self, call: Call) -> dict:
        artists, albums, songs, marks = await self._search(call)
        return {
            "searchResult3": {
                "artist": [shapes.artist_id3(a, marks) for a in artists],
                "album": [shapes.album_id3(a, marks) for a in albums],
                "song": [shapes.song(s, marks) for s in songs],
            }
        }


def milliseconds(moment: dt.datetime) -> int:
    """A stored time (naive UTC) in milliseconds since 1970, as Subsonic has them."""
    return int(moment.replace(tzinfo=dt.UTC).timestamp() * 1000)


async def asked_folder(call: Call, library: Library) -> str | None:
    """The name of the folder ``musicFolderId`` asks for (None: every folder); one the
    caller does not see is not found, as one that does not exist."""
    folder_id = call.params.integer("musicFolderId", None, 0, FOLDER_ID_MAX)
    if folder_id is None:
        return None
    try:
        return await library.seen_by(call.folders).folder_name(folder_id)
    except NotInLibrary:
        raise not_found("music folder") from None


async def seen_library(call: Call, library: Library) -> Library:
    """The library as the caller sees it, narrowed to ``musicFolderId`` when it asks."""
    return library.seen_by(call.folders.narrowed(await asked_folder(call, library)))


async def _album(library: Library, item_id: str) -> Album:
    try:
        return await library.album(item_id)
    except NotInLibrary:
        raise not_found("album") from None


def _year(call: Call, name: str, *, required: bool = False) -> int | None:
    if required:
        call.params.required(name)
    return call.params.integer(name, None, YEAR_MIN, YEAR_MAX)
