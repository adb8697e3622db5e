"""How songs group: the one naming rule for artists, albums, genres and folder directories.

A song's artist is its album artist tag, else its artist tag ("Unknown Artist" when it has
neither); its album the pair (artist, album tag) ("Unknown Album"). Ids are derived from the
names (``ar-`` or ``al-`` and 64 bits of SHA-1), so they are the same on every replica and
survive ``mosic reindex``; stars and ratings given before the library rows existed still
point at them. Directories of a music folder are ``dir-`` and a hash of (folder, path).
"""

from __future__ import annotations

import hashlib
from pathlib import PurePosixPath

UNKNOWN_ARTIST = "Unknown Artist"
UNKNOWN_ALBUM = "Unknown Album"
ARTIST_PREFIX = "ar-"
ALBUM_PREFIX = "al-"
DIRECTORY_PREFIX = "dir-"
ID_HASH_CHARS = 16


def _short_hash(*parts: str) -> str:
    joined = "\x00".join(parts).encode()
    return hashlib.sha1(joined, usedforsecurity=False).hexdigest()[:ID_HASH_CHARS]


def artist_id(name: str) -> str:
    return ARTIST_PREFIX + _short_hash(name)


def album_id(artist: str, album: str) -> str:
    return ALBUM_PREFIX + _short_hash(artist, album)


def directory_id(music_folder: str, path: str) -> str:
    """The id of the directory at ``path`` ("" for the folder itself) in ``music_folder``."""
    return DIRECTORY_PREFIX + _short_hash(music_folder, path)


def names(artist: str | None, album: str | None) -> tuple[str, str]:
    """The (artist, album) names tags put a song under."""
    return artist or UNKNOWN_ARTIST, album or UNKNOWN_ALBUM


def song_names(album_artist: str | None, artist: str | None, album: str | None):
    # An album's artist is its album artist when tagged: a compilation is one album, not
    # one per track artist.
    return names(album_artist or artist, album)


def sort_key(name: str) -> str:
    return name.casefold()


def song_ids(fields: dict) -> dict:
    """The ``album_id``, ``artist_id`` and ``directory_id`` columns of a clip with ``fields``
    (metadata-only clips belong to no album: they are not songs)."""
    if fields.get("file_name") is None:
        return {"album_id": None, "artist_id": None, "directory_id": None}
    artist, album = song_names(
        fields.get("album_artist"), fields.get("artist"), fields.get("album")
    )
    path = fields.get("path")
    parent = None
    if path is not None:
        parent = directory_id(fields["music_folder"], parent_path(path))
    return {
        "album_id": album_id(artist, album),
        "artist_id": artist_id(artist),
        "directory_id": parent,
    }


def parent_path(path: str) -> str:
    """The directory a relative ``/``-separated path lies in ("" at the folder's top)."""
    parent = str(PurePosixPath(path).parent)
    return "" if parent == "." else parent
