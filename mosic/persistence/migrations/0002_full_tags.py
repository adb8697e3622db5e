"""Full tags (track, disc, year, genre, album artist, bitrate, sample rate, channels), the
embedded cover's stored name and type, and the stored waveform peaks' name.

Additive only: every new column is nullable, so a release that predates it keeps working on
the migrated schema. The values for existing clips come from their files, which this layer
never reads: ``mosic migrate`` (and ``serve``) asks the catalogue afterwards to read every clip
whose ``media_version`` is still null (``Rereader.read_pending``).
"""

import peewee

COLUMNS = {
    "track": peewee.IntegerField(null=True),
    "disc": peewee.IntegerField(null=True),
    "year": peewee.IntegerField(null=True),
    "genre": peewee.CharField(max_length=500, null=True),
    "album_artist": peewee.CharField(max_length=500, null=True),
    "bitrate": peewee.IntegerField(null=True),
    "sample_rate": peewee.IntegerField(null=True),
    "channels": peewee.IntegerField(null=True),
    "genre_key": peewee.CharField(max_length=500, null=True),
    "artist_key": peewee.CharField(max_length=500, null=True),
    "album_key": peewee.CharField(max_length=500, null=True),
    "cover_name": peewee.CharField(max_length=100, null=True),
    "cover_type": peewee.CharField(max_length=100, null=True),
    "waveform_name": peewee.CharField(max_length=100, null=True),
    "media_version": peewee.SmallIntegerField(null=True),
}
# The filters of GET /play, the backfill's search for clips not yet read, and the search for
# other clips sharing a cover before it is removed.
INDEXED = ("genre_key", "artist_key", "album_key", "year", "media_version", "cover_name")


def apply(db, migrator):
    from playhouse.migrate import migrate

    migrate(*(migrator.add_column("clip", name, column) for name, column in COLUMNS.items()))
    migrate(*(migrator.add_index("clip", (name,), False) for name in INDEXED))
