"""The library: music folders indexed in place, and the catalogue's derived rows (artists,
albums, genres, folder directories, counts and a search index) that make every read cost the
size of its answer, not of the catalogue.

Clips gain where they come from (``source``, ``music_folder``, ``path`` and the file's
``mtime_ns``), ``missing_since`` for library files that disappeared, and the ids of their
album, artist and directory. Identical bytes may now be two clips (a library mirrors its
folders), so ``sha256`` is unique among uploads only. The derived rows are filled by
``mosic reindex``, which ``mosic migrate`` runs after this migration
(``mosic.core.rebuild.reindex``): this layer never computes catalogue rules.
"""

import peewee

UPLOADS = "Uploads"

# Defaults in the schema too: a release from before this one (during a rolling upgrade) and a
# bulk SQL load insert clips without these columns, and those are uploads.
COLUMNS = {
    "source": peewee.CharField(
        max_length=10, default="upload", constraints=[peewee.SQL("DEFAULT 'upload'")]
    ),
    "music_folder": peewee.CharField(
        max_length=200, default=UPLOADS, constraints=[peewee.SQL(f"DEFAULT '{UPLOADS}'")]
    ),
    "path": peewee.TextField(null=True),
    "mtime_ns": peewee.BigIntegerField(null=True),
    "missing_since": peewee.DateTimeField(null=True),
    "album_id": peewee.CharField(max_length=20, null=True),
    "artist_id": peewee.CharField(max_length=20, null=True),
    "directory_id": peewee.CharField(max_length=20, null=True),
    "lyrics_path": peewee.TextField(null=True),
}


class MusicFolder(peewee.Model):
    # Subsonic needs numeric folder ids that never change: Uploads is 1, others in order.
    id = peewee.IntegerField(primary_key=True)
    name = peewee.CharField(max_length=200, unique=True)
    root = peewee.TextField(null=True)
    clips = peewee.BigIntegerField(default=0)
    songs = peewee.BigIntegerField(default=0)

    class Meta:
        table_name = "music_folder"


class Artist(peewee.Model):
    id = peewee.CharField(max_length=20, primary_key=True)
    name = peewee.CharField(max_length=500)
    sort_key = peewee.CharField(max_length=500, index=True)
    search_text = peewee.TextField(default="")
    album_count = peewee.IntegerField(default=0)
    song_count = peewee.IntegerField(default=0)

    class Meta:
        table_name = "library_artist"


class Album(peewee.Model):
    id = peewee.CharField(max_length=20, primary_key=True)
    name = peewee.CharField(max_length=500)
    sort_key = peewee.CharField(max_length=500)
    artist_id = peewee.CharField(max_length=20, index=True)
    artist = peewee.CharField(max_length=500)
    artist_sort_key = peewee.CharField(max_length=500)
    search_text = peewee.TextField(default="")
    song_count = peewee.IntegerField(default=0)
    duration = peewee.DoubleField(default=0)
    play_count = peewee.BigIntegerField(default=0)
    created_at = peewee.DateTimeField(null=True)
    last_played_at = peewee.DateTimeField(null=True)
    year = peewee.IntegerField(null=True)
    genre = peewee.CharField(max_length=500, null=True)
    genre_key = peewee.CharField(max_length=500, null=True)
    cover_clip_id = peewee.UUIDField(null=True)

    class Meta:
        table_name = "library_album"
        indexes = (
            (("sort_key", "artist_sort_key", "id"), False),
            (("artist_sort_key", "sort_key", "id"), False),
            (("created_at", "id"), False),
            (("play_count", "id"), False),
            (("last_played_at", "id"), False),
            (("year", "id"), False),
            (("genre_key", "sort_key"), False),
        )


class Genre(peewee.Model):
    key = peewee.CharField(max_length=500, primary_key=True)
    name = peewee.CharField(max_length=500)
    song_count = peewee.IntegerField(default=0)
    album_count = peewee.IntegerField(default=0)

    class Meta:
        table_name = "library_genre"


class Directory(peewee.Model):
    id = peewee.CharField(max_length=20, primary_key=True)
    music_folder = peewee.CharField(max_length=200)
    path = peewee.TextField()
    parent_id = peewee.CharField(max_length=20, null=True, index=True)
    name = peewee.TextField()
    sort_key = peewee.TextField()

    class Meta:
        table_name = "library_directory"


class Scan(peewee.Model):
    """One row: the current or last scan, and who holds the scanning lease."""

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


MODELS = [MusicFolder, Artist, Album, Genre, Directory, Scan]

CLIP_INDEXES = (
    "CREATE UNIQUE INDEX clip_folder_path ON clip (music_folder, path)",
    "CREATE INDEX clip_album_order ON clip (album_id, disc, track, title)",
    # Which folders an artist or album has songs in: one index probe each (musicFolderId).
    "CREATE INDEX clip_artist_folder ON clip (artist_id, music_folder)",
    "CREATE INDEX clip_album_folder ON clip (album_id, music_folder)",
    "CREATE INDEX clip_directory_id ON clip (directory_id)",
    # Only the missing few: an index of every row's NULL led SQLite's planner to walk it for
    # "missing_since IS NULL" instead of the index that orders a page.
    "CREATE INDEX clip_missing_since ON clip (missing_since) WHERE missing_since IS NOT NULL",
    "CREATE INDEX clip_folder_created ON clip (music_folder, created_at)",
    # Identical bytes are two clips when a library holds them; two uploads never are.
    # destructive: the unique index on sha256 becomes a unique one among uploads; the previous
    # release names no index and only inserts uploads, which meet the same rule as before.
    "DROP INDEX clip_sha256",
    "CREATE INDEX clip_sha256 ON clip (sha256)",
    "CREATE UNIQUE INDEX clip_upload_sha256 ON clip (sha256) WHERE source = 'upload'",
)

# Substring search through an index (the contract's meaning of q and search3): SQLite's FTS5
# with the trigram tokenizer, kept in step by triggers. Its rows point at the implicit rowid
# of the table, which only VACUUM can renumber: ``mosic reindex`` rebuilds the index then.
SEARCHED = ("clip", "library_album", "library_artist")


def _sqlite_search(table: str) -> list[str]:
    # Table names are this module's constants (SEARCHED), never input: S608 does not apply.
    fts = f"{table}_fts"
    insert = f"INSERT INTO {fts}(rowid, search_text) VALUES (new.rowid, new.search_text);"  # noqa: S608
    delete = f"INSERT INTO {fts}({fts}, rowid, search_text) VALUES ('delete', old.rowid, old.search_text);"  # noqa: S608, E501
    return [
        f"CREATE VIRTUAL TABLE {fts} USING fts5(search_text, content='{table}', "
        "content_rowid='rowid', tokenize='trigram')",
        f"CREATE TRIGGER {fts}_insert AFTER INSERT ON {table} BEGIN {insert} END",
        f"CREATE TRIGGER {fts}_delete AFTER DELETE ON {table} BEGIN {delete} END",
        f"CREATE TRIGGER {fts}_update AFTER UPDATE OF search_text ON {table} "
        f"BEGIN {delete} {insert} END",
        f"INSERT INTO {fts}({fts}) VALUES ('rebuild')",  # noqa: S608
    ]


# A play updates its album's count and last play in the same statement (a trigger), so the
# "frequent" and "recent" album lists are exact as of the last play.
SQLITE_PLAY_TRIGGER = """
CREATE TRIGGER clip_play_album AFTER UPDATE OF play_count ON clip
WHEN new.album_id IS NOT NULL AND new.play_count != old.play_count
BEGIN
  UPDATE library_album
     SET play_count = play_count + new.play_count - old.play_count,
         last_played_at = coalesce(new.last_played_at, last_played_at)
   WHERE id = new.album_id;
END
"""

PG_PLAY_TRIGGER = (
    """
CREATE FUNCTION mosic_clip_play_album() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE library_album
     SET play_count = play_count + NEW.play_count - OLD.play_count,
         last_played_at = coalesce(NEW.last_played_at, last_played_at)
   WHERE id = NEW.album_id;
  RETURN NULL;
END $$
""",
    """
CREATE TRIGGER clip_play_album AFTER UPDATE OF play_count ON clip FOR EACH ROW
WHEN (NEW.album_id IS NOT NULL AND NEW.play_count IS DISTINCT FROM OLD.play_count)
EXECUTE FUNCTION mosic_clip_play_album()
""",
)


def _postgres_search(db) -> None:
    """pg_trgm's GIN indexes serve LIKE '%word%'. The extension is trusted (PostgreSQL 13+),
    so the database's owner may create it; where it cannot be, search stays correct and
    reads every row, and the log says why."""
    try:
        with db.atomic():
            db.execute_sql("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    except peewee.DatabaseError as exc:
        import logging

        logging.getLogger(__name__).warning("search without an index: no pg_trgm (%s)", exc)
        return
    for table in SEARCHED:
        db.execute_sql(
            f"CREATE INDEX {table}_search ON {table} USING gin (search_text gin_trgm_ops)"
        )


def apply(db, migrator):
    from playhouse.migrate import migrate

    migrate(*(migrator.add_column("clip", name, column) for name, column in COLUMNS.items()))
    with db.bind_ctx(MODELS):
        db.create_tables(MODELS)
        MusicFolder.create(id=1, name=UPLOADS, root=None, clips=0, songs=0)
        Scan.create(id=1)
    for statement in CLIP_INDEXES:
        db.execute_sql(statement)
    db.execute_sql(
        "CREATE UNIQUE INDEX library_directory_path ON library_directory (music_folder, path)"
    )
    if isinstance(db, peewee.PostgresqlDatabase):
        _postgres_search(db)
        for statement in PG_PLAY_TRIGGER:
            db.execute_sql(statement)
    else:
        for table in SEARCHED:
            for statement in _sqlite_search(table):
                db.execute_sql(statement)
        db.execute_sql(SQLITE_PLAY_TRIGGER)
