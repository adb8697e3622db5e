"""The catalogue's tables, as peewee models: clips, the library's derived rows (artists,
albums, genres, directories, music folders, the scan), and what the listener keeps.

Models are not bound to a database here: each caller (the catalogue, the listing, the
library, the scanner) runs its queries on the database it was given, so two apps (SQLite and
PostgreSQL, say) can live in one process without rebinding anything. The schema itself is
created and changed only by ``mosic.persistence.migrations``.
"""

from __future__ import annotations

import datetime as dt
import unicodedata
import uuid

import peewee
from peewee_async import AioModel

from mosic.persistence.compiled import Records, record_type
from mosic.settings import USER_NAME_MAX

TITLE_MAX = 200
TAG_MAX = 500
UPLOAD = "upload"
LIBRARY = "library"
UPLOADS = "Uploads"


def utcnow() -> dt.datetime:
    """Now, as every time column holds it: naive UTC, the same on SQLite (text) and
    PostgreSQL (timestamp)."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


class Clip(AioModel):
    id = peewee.UUIDField(primary_key=True, default=uuid.uuid4)
    title = peewee.CharField(max_length=TITLE_MAX)
    description = peewee.TextField(null=True)
    duration = peewee.DoubleField()
    artist = peewee.CharField(max_length=TAG_MAX, null=True)
    album = peewee.CharField(max_length=TAG_MAX, null=True)
    content_type = peewee.CharField(max_length=100, null=True)
    size = peewee.BigIntegerField(null=True)
    # Stored uploads are named by their SHA-256, so identical uploads are stored once (unique
    # among uploads; a library file may hold the same bytes as another clip).
    sha256 = peewee.CharField(max_length=64, null=True, index=True)
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
    # before them, which ``Rereader.read_pending`` then reads once.
    media_version = peewee.SmallIntegerField(null=True)
    # Where the clip comes from: "upload" (the media store) or "library" (a file in a music
    # folder, at ``path`` relative to it, last seen with ``mtime_ns``).
    source = peewee.CharField(max_length=10, default=UPLOAD)
    music_folder = peewee.CharField(max_length=200, default=UPLOADS)
    path = peewee.TextField(null=True)
    mtime_ns = peewee.BigIntegerField(null=True)
    # Set while a library clip's file is gone: hidden everywhere until it comes back.
    missing_since = peewee.DateTimeField(null=True)
    # The derived rows a song belongs to (mosic.core.grouping names them).
    album_id = peewee.CharField(max_length=20, null=True)
    artist_id = peewee.CharField(max_length=20, null=True)
    directory_id = peewee.CharField(max_length=20, null=True)
    # A library clip's ``.lrc`` sidecar, relative to its music folder.
    lyrics_path = peewee.TextField(null=True)
    # Who uploaded it (a user id); null for library files and clips from before users.
    owner_id = peewee.IntegerField(null=True)
    # ReplayGain 2.0 figures (migration 0011, ``mosic.core.replay_gain``): from the file's
    # tags, else measured; the album's combined over its tracks unless the file's own tags
    # hold them (``album_gain_tagged``). ``gain_source`` is null while they are to be read.
    track_gain_db = peewee.DoubleField(null=True)
    track_peak = peewee.DoubleField(null=True)
    album_gain_db = peewee.DoubleField(null=True)
    album_peak = peewee.DoubleField(null=True)
    gated_seconds = peewee.DoubleField(null=True)  # what the track weighs in its album's
    album_gain_tagged = peewee.BooleanField(null=True)
    gain_source = peewee.CharField(max_length=8, null=True)

    class Meta:
        table_name = "clip"

    @property
    def is_external(self) -> bool:
        return self.file_name is None


# A clip as the hot reads return it: the same attributes, without a model object per row.
ClipRecord = record_type(Clip, is_external=Clip.is_external)
CLIP_FIELDS = tuple(Clip._meta.sorted_fields)
clip_records = Records(ClipRecord, CLIP_FIELDS)


class LyricsRow(AioModel):
    """Lyrics a clip's file holds in its tags, read with its tags (migration 0009) so an
    answer never opens the audio: ``lines`` is a JSON list of ``[start_ms or null, text]``.
    A library clip's ``.lrc`` sidecar is not kept here: it is read when asked
    (``Clip.lyrics_path``)."""

    clip_id = peewee.UUIDField()
    position = peewee.SmallIntegerField()  # the file's order: synced lyrics first
    synced = peewee.BooleanField()
    lang = peewee.CharField(max_length=16, null=True)
    offset_ms = peewee.IntegerField(default=0)
    lines = peewee.TextField()

    class Meta:
        table_name = "clip_lyrics"
        primary_key = peewee.CompositeKey("clip_id", "position")


# -- users and their keys -------------------------------------------------------------------
ADMIN_ID = 1  # the configured keys' user, and owner of what was kept before users existed
ADMIN, LISTENER = "admin", "listener"
FULL_SCOPE, READ_SCOPE = "full", "read"


def name_key(name: str) -> str:
    """A user name as compared: names are unique without regard to case (or Unicode form)."""
    return unicodedata.normalize("NFC", name).casefold()


class UserRow(AioModel):
    name = peewee.CharField(max_length=USER_NAME_MAX)
    name_key = peewee.CharField(max_length=USER_NAME_MAX, unique=True)  # case-folded name
    role = peewee.CharField(max_length=16)
    music_folders = peewee.TextField(null=True)  # a JSON list of names; null for all
    created_at = peewee.DateTimeField()

    class Meta:
        table_name = "mosic_user"


class KeyRow(AioModel):
    """A user's key: found by its SHA-256, never stored as itself (``sealed`` is the key
    encrypted for Subsonic's token login, with a secret kept outside the database)."""

    id = peewee.CharField(max_length=32, primary_key=True)
    user_id = peewee.IntegerField(index=True)
    scope = peewee.CharField(max_length=8)
    digest = peewee.CharField(max_length=64, unique=True)
    sealed = peewee.TextField()
    created_at = peewee.DateTimeField()

    class Meta:
        table_name = "api_key"


# -- what a listener keeps (the Subsonic API's one user) ------------------------------------
# Item ids are strings: a song is a clip id, albums and artists have derived ids ("al-…",
# "ar-…"), so one table holds stars (or ratings) of all three. Rows that point at a clip that
# is gone are simply never joined; nothing cascades, so deleting a clip stays one statement.
ITEM_ID_MAX = 64
PLAYLIST_NAME_MAX = 200


class Star(AioModel):
    """A user's star on a song, album or artist (migration 0008; before it, one listener's
    stars lay in ``subsonic_star``, copied to the admin)."""

    user_id = peewee.IntegerField()
    item_id = peewee.CharField(max_length=ITEM_ID_MAX)
    starred_at = peewee.DateTimeField()

    class Meta:
        table_name = "user_star"
        primary_key = peewee.CompositeKey("user_id", "item_id")


class Rating(AioModel):
    user_id = peewee.IntegerField()
    item_id = peewee.CharField(max_length=ITEM_ID_MAX)
    rating = peewee.SmallIntegerField()

    class Meta:
        table_name = "user_rating"
        primary_key = peewee.CompositeKey("user_id", "item_id")


class Playlist(AioModel):
    id = peewee.UUIDField(primary_key=True, default=uuid.uuid4)
    name = peewee.CharField(max_length=PLAYLIST_NAME_MAX)
    comment = peewee.TextField(null=True)
    public = peewee.BooleanField(default=False)
    created_at = peewee.DateTimeField()
    changed_at = peewee.DateTimeField()
    owner_id = peewee.IntegerField(null=True)  # null only before migration 0008 ran

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
    """A user's saved play queue: one row per user, and its entries."""

    user_id = peewee.IntegerField(primary_key=True)
    current = peewee.UUIDField(null=True)
    position_ms = peewee.BigIntegerField(default=0)
    changed_at = peewee.DateTimeField()
    changed_by = peewee.CharField(max_length=200)
    # Which entry is ``current`` (a queue may hold a song twice); null when saved by song id.
    current_index = peewee.IntegerField(null=True)

    class Meta:
        table_name = "user_play_queue"


class PlayQueueEntry(AioModel):
    user_id = peewee.IntegerField()
    position = peewee.IntegerField()
    clip_id = peewee.UUIDField()

    class Meta:
        table_name = "user_play_queue_entry"
        primary_key = peewee.CompositeKey("user_id", "position")


class Bookmark(AioModel):
    """Where a user stopped in a song, to go on from there (Subsonic bookmarks)."""

    user_id = peewee.IntegerField()
    clip_id = peewee.UUIDField()
    position_ms = peewee.BigIntegerField()
    comment = peewee.TextField(null=True)
    created_at = peewee.DateTimeField()
    changed_at = peewee.DateTimeField()

    class Meta:
        table_name = "user_bookmark"
        primary_key = peewee.CompositeKey("user_id", "clip_id")


class UserPlay(AioModel):
    """A user's own count of a clip's plays, beside the clip's global ``play_count``."""

    user_id = peewee.IntegerField()
    clip_id = peewee.UUIDField()
    play_count = peewee.BigIntegerField(default=0)
    last_played_at = peewee.DateTimeField()

    class Meta:
        table_name = "user_play"
        primary_key = peewee.CompositeKey("user_id", "clip_id")


class PlayEvent(AioModel):
    """One play by one user: the history, newest first by (user_id, played_at, id)."""

    id = peewee.BigAutoField()
    user_id = peewee.IntegerField()
    clip_id = peewee.UUIDField()
    played_at = peewee.DateTimeField()

    class Meta:
        table_name = "user_play_event"
        indexes = ((("user_id", "played_at", "id"), False),)


class NowPlaying(AioModel):
    """What a user plays now, on which player: kept for ``getNowPlaying``, replaced by the
    user's next song on that player."""

    user_id = peewee.IntegerField()
    player = peewee.CharField(max_length=200)
    clip_id = peewee.UUIDField()
    started_at = peewee.DateTimeField(index=True)

    class Meta:
        table_name = "user_now_playing"
        primary_key = peewee.CompositeKey("user_id", "player")


class Listen(AioModel):
    """The listen a user's player reports (OpenSubsonic ``reportPlayback``): one per
    (user, player). ``generation`` numbers the player's listens; ``counted`` says whether
    this one has counted its play (``mosic.core.reports``)."""

    user_id = peewee.IntegerField()
    player = peewee.CharField(max_length=200)
    generation = peewee.BigIntegerField(default=1)
    clip_id = peewee.UUIDField()
    state = peewee.CharField(max_length=16)
    position_ms = peewee.BigIntegerField(default=0)
    playback_rate = peewee.DoubleField(default=1.0)
    started_at = peewee.DateTimeField()
    reported_at = peewee.DateTimeField()
    counted = peewee.BooleanField(default=False)

    class Meta:
        table_name = "user_listen"
        primary_key = peewee.CompositeKey("user_id", "player")


# -- shares ---------------------------------------------------------------------------------
SHARE_ID_MAX = 64


class ShareRow(AioModel):
    """A share: a public link to a fixed list of songs (migration 0012). A deleted one keeps
    its row, with ``deleted_at``, so its link answers "gone" rather than "not found"."""

    id = peewee.CharField(max_length=SHARE_ID_MAX, primary_key=True)
    owner_id = peewee.IntegerField(index=True)
    description = peewee.TextField(null=True)
    created_at = peewee.DateTimeField()
    expires_at = peewee.DateTimeField(null=True)
    last_visited_at = peewee.DateTimeField(null=True)
    visit_count = peewee.BigIntegerField(default=0)
    deleted_at = peewee.DateTimeField(null=True)

    class Meta:
        table_name = "share_link"


class ShareEntry(AioModel):
    share_id = peewee.CharField(max_length=SHARE_ID_MAX)
    position = peewee.IntegerField()
    clip_id = peewee.UUIDField()

    class Meta:
        table_name = "share_entry"
        primary_key = peewee.CompositeKey("share_id", "position")


# What a listing shows of each clip: hashes, file names, search text, filter keys and the
# like are a third of a row's values and never leave the server in a list.
_UNLISTED = frozenset(
    {"sha256", "file_name", "search_text", "last_played_at", "updated_at", "genre_key"}
    | {"artist_key", "album_key", "cover_type", "media_version", "mtime_ns", "missing_since"}
    | {"album_id", "artist_id", "directory_id", "lyrics_path", "owner_id"}
    | {"gated_seconds", "album_gain_tagged", "gain_source"}
)
LISTED_FIELDS = tuple(field for field in CLIP_FIELDS if field.name not in _UNLISTED)

# The shapes a clip travels in: the model (a row written, or read by the library) and a
# ClipRecord (read by id: every column, no model); a list page's rows stay tuples
# (``mosic.core.listing``). Code that takes both says so.
WholeClip = Clip | ClipRecord  # every column


# -- the library's derived rows ---------------------------------------------------------------
# Kept exact by ``mosic.core.aggregates`` in the transaction of every change to their songs
# (and a play's count by a trigger), rebuilt whole by ``mosic reindex``.


class MusicFolder(AioModel):
    id = peewee.IntegerField(primary_key=True)
    name = peewee.CharField(max_length=200, unique=True)
    root = peewee.TextField(null=True)
    # Clips of the folder that are not missing, and those of them that are songs (have a
    # file): X-Total-Count and Subsonic's counts without counting rows.
    clips = peewee.BigIntegerField(default=0)
    songs = peewee.BigIntegerField(default=0)

    class Meta:
        table_name = "music_folder"


class ArtistRow(AioModel):
    id = peewee.CharField(max_length=20, primary_key=True)
    name = peewee.CharField(max_length=TAG_MAX)
    sort_key = peewee.CharField(max_length=TAG_MAX)
    search_text = peewee.TextField(default="")
    album_count = peewee.IntegerField(default=0)
    song_count = peewee.IntegerField(default=0)

    class Meta:
        table_name = "library_artist"


class AlbumRow(AioModel):
    id = peewee.CharField(max_length=20, primary_key=True)
    name = peewee.CharField(max_length=TAG_MAX)
    sort_key = peewee.CharField(max_length=TAG_MAX)
    artist_id = peewee.CharField(max_length=20)
    artist = peewee.CharField(max_length=TAG_MAX)
    artist_sort_key = peewee.CharField(max_length=TAG_MAX)
    search_text = peewee.TextField(default="")
    song_count = peewee.IntegerField(default=0)
    duration = peewee.DoubleField(default=0)
    play_count = peewee.BigIntegerField(default=0)
    created_at = peewee.DateTimeField(null=True)
    last_played_at = peewee.DateTimeField(null=True)
    year = peewee.IntegerField(null=True)
    genre = peewee.CharField(max_length=TAG_MAX, null=True)
    genre_key = peewee.CharField(max_length=TAG_MAX, null=True)
    cover_clip_id = peewee.UUIDField(null=True)

    class Meta:
        table_name = "library_album"


class GenreRow(AioModel):
    key = peewee.CharField(max_length=TAG_MAX, primary_key=True)
    name = peewee.CharField(max_length=TAG_MAX)
    song_count = peewee.IntegerField(default=0)
    album_count = peewee.IntegerField(default=0)

    class Meta:
        table_name = "library_genre"


class DirectoryRow(AioModel):
    id = peewee.CharField(max_length=20, primary_key=True)
    music_folder = peewee.CharField(max_length=200)
    path = peewee.TextField()
    parent_id = peewee.CharField(max_length=20, null=True)
    name = peewee.TextField()
    sort_key = peewee.TextField()
    # Its sidecar cover as the last scan saw it ("name:size:mtime_ns", or "" for none) and
    # the blob that picture made: a changed stat means the folder's picture changed.
    cover_stat = peewee.CharField(max_length=300, null=True)
    cover_name = peewee.CharField(max_length=100, null=True)

    class Meta:
        table_name = "library_directory"


class LeaseRow(AioModel):
    """Who runs a background job that one process at a time may run (migration 0011):
    ``mosic.core.leases``. One row a job, made by the migration that brought the job."""

    name = peewee.CharField(max_length=64, primary_key=True)
    owner = peewee.CharField(max_length=200, null=True)
    lease_until = peewee.DateTimeField(null=True)

    class Meta:
        table_name = "mosic_lease"


class LibraryVersion(AioModel):
    """One row (id 1): moved in the transaction of every change to what the artist lists show
    (artist rows, an artist's star or rating); ``changed_at`` is when, naive UTC. Readers key
    what they keep of those lists by ``version`` (migration 0006)."""

    id = peewee.IntegerField(primary_key=True)
    version = peewee.BigIntegerField(default=0)
    changed_at = peewee.DateTimeField()

    class Meta:
        table_name = "library_version"


LIBRARY_VERSION_ROW = 1


class ScanRow(AioModel):
    """One row (id 1): the current or last scan, and who holds the scanning lease."""

    id = peewee.IntegerField(primary_key=True)
    scanning = peewee.BooleanField(default=False)
    owner = peewee.CharField(max_length=200, null=True)
    lease_until = peewee.DateTimeField(null=True)
    started_at = peewee.DateTimeField(null=True)
    finished_at = peewee.DateTimeField(null=True)
    seen = peewee.BigIntegerField(default=0)
    added = peewee.BigIntegerField(default=0)
    updated = peewee.BigIntegerField(default=0)
    moved = peewee.BigIntegerField(default=0)
    missing = peewee.BigIntegerField(default=0)
    unchanged = peewee.BigIntegerField(default=0)
    failed = peewee.BigIntegerField(default=0)

    class Meta:
        table_name = "library_scan"
