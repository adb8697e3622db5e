"""The catalogue's tables, as peewee models.

Models are not bound to a database here: the store passes its own database to every query,
so two apps (SQLite and PostgreSQL, say) can live in one process without rebinding anything.
The schema itself is created and changed only by ``mosic.persistence.migrations``.
"""

from __future__ import annotations

import uuid

import peewee
from peewee_async import AioModel

from mosic.persistence.compiled import Records, record_type, row_type

TITLE_MAX = 200
TAG_MAX = 500


class Clip(AioModel):
    id = peewee.UUIDField(primary_key=True, default=uuid.uuid4)
    title = peewee.CharField(max_length=TITLE_MAX)
    description = peewee.TextField(null=True)
    duration = peewee.DoubleField()
    artist = peewee.CharField(max_length=TAG_MAX, null=True)
    album = peewee.CharField(max_length=TAG_MAX, null=True)
    content_type = peewee.CharField(max_length=100, null=True)
    size = peewee.BigIntegerField(null=True)
    # Stored files are named by their SHA-256, so identical bytes are stored once.
    sha256 = peewee.CharField(max_length=64, null=True, unique=True)
    file_name = peewee.CharField(max_length=100, null=True)
    # Only for metadata-only clips: where the audio lives.
    external_url = peewee.TextField(null=True)
    # Case-folded title, description, artist and album: one portable case-insensitive
    # search on SQLite (whose LIKE folds ASCII only) and PostgreSQL alike.
    search_text = peewee.TextField(default="")
    # The counter lives on the clip row so a play is one UPDATE, never an insert race.
    play_count = peewee.BigIntegerField(default=0)
    last_played_at = peewee.DateTimeField(null=True)
    created_at = peewee.DateTimeField(index=True)
    updated_at = peewee.DateTimeField()
    # Full tags and stream facts (null when the file has none, or for metadata-only clips).
    track = peewee.IntegerField(null=True)
    disc = peewee.IntegerField(null=True)
    year = peewee.IntegerField(null=True)
    genre = peewee.CharField(max_length=TAG_MAX, null=True)
    album_artist = peewee.CharField(max_length=TAG_MAX, null=True)
    bitrate = peewee.IntegerField(null=True)
    sample_rate = peewee.IntegerField(null=True)
    channels = peewee.IntegerField(null=True)
    # Case-folded genre, artist and album: exact, case-insensitive filters that use an index
    # on both databases (SQLite's lower() folds ASCII only).
    genre_key = peewee.CharField(max_length=TAG_MAX, null=True)
    artist_key = peewee.CharField(max_length=TAG_MAX, null=True)
    album_key = peewee.CharField(max_length=TAG_MAX, null=True)
    # The embedded cover, stored once by its content hash (``<sha256><ext>``), and its type.
    cover_name = peewee.CharField(max_length=100, null=True, index=True)
    cover_type = peewee.CharField(max_length=100, null=True)
    # The clip's waveform peaks, stored as an audiowaveform .dat file (``<sha256>.dat``); null
    # for metadata-only clips and audio that cannot be decoded.
    waveform_name = peewee.CharField(max_length=100, null=True)
    # Which version of the file-reading rules filled the columns above; null for clips added
    # before them, which ``Catalogue.read_pending`` then reads once.
    media_version = peewee.SmallIntegerField(null=True)

    class Meta:
        table_name = "clip"

    @property
    def is_external(self) -> bool:
        return self.file_name is None


# A clip as the hot reads return it: the same attributes, without a model object per row.
ClipRecord = record_type(Clip, is_external=Clip.is_external)
CLIP_FIELDS = tuple(Clip._meta.sorted_fields)
clip_records = Records(ClipRecord, CLIP_FIELDS)


# -- what a listener keeps (the Subsonic API's one user) ------------------------------------
# Item ids are strings: a song is a clip id, albums and artists have derived ids ("al-…",
# "ar-…"), so one table holds stars (or ratings) of all three. Rows that point at a clip that
# is gone are simply never joined; nothing cascades, so deleting a clip stays one statement.
ITEM_ID_MAX = 64
PLAYLIST_NAME_MAX = 200


class Star(AioModel):
    item_id = peewee.CharField(max_length=ITEM_ID_MAX, primary_key=True)
    starred_at = peewee.DateTimeField()

    class Meta:
        table_name = "subsonic_star"


class Rating(AioModel):
    item_id = peewee.CharField(max_length=ITEM_ID_MAX, primary_key=True)
    rating = peewee.SmallIntegerField()

    class Meta:
        table_name = "subsonic_rating"


class Playlist(AioModel):
    id = peewee.UUIDField(primary_key=True, default=uuid.uuid4)
    name = peewee.CharField(max_length=PLAYLIST_NAME_MAX)
    comment = peewee.TextField(null=True)
    public = peewee.BooleanField(default=False)
    created_at = peewee.DateTimeField()
    changed_at = peewee.DateTimeField()

    class Meta:
        table_name = "subsonic_playlist"


class PlaylistEntry(AioModel):
    playlist_id = peewee.UUIDField(index=True)
    position = peewee.IntegerField()
    clip_id = peewee.UUIDField()

    class Meta:
        table_name = "subsonic_playlist_entry"
        primary_key = peewee.CompositeKey("playlist_id", "position")


class PlayQueue(AioModel):
    """The one saved play queue: a single row (id 1) and its entries."""

    id = peewee.IntegerField(primary_key=True)
    current = peewee.UUIDField(null=True)
    position_ms = peewee.BigIntegerField(default=0)
    changed_at = peewee.DateTimeField()
    changed_by = peewee.CharField(max_length=200)

    class Meta:
        table_name = "subsonic_play_queue"


class PlayQueueEntry(AioModel):
    position = peewee.IntegerField(primary_key=True)
    clip_id = peewee.UUIDField()

    class Meta:
        table_name = "subsonic_play_queue_entry"


# What a listing shows of each clip: hashes, file names, search text, filter keys and the
# like are a third of a row's values and never leave the server in a list.
_UNLISTED = frozenset(
    {"sha256", "file_name", "search_text", "last_played_at", "updated_at", "genre_key"}
    | {"artist_key", "album_key", "cover_type", "media_version"}
)
LISTED_FIELDS = tuple(field for field in CLIP_FIELDS if field.name not in _UNLISTED)
# Rows of a list end with the number of clips that match (``matches``).
ListedRecord = row_type(Clip, LISTED_FIELDS, "matches")
listed_records = Records(ListedRecord, LISTED_FIELDS)
