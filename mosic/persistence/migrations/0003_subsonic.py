"""What the Subsonic API's user keeps: stars, ratings, playlists and the play queue.

New tables only (additive), touching no clip column, so it applies before or after any
other migration. The models are frozen here as they were when this migration was written.
"""

import uuid

import peewee


class Star(peewee.Model):
    item_id = peewee.CharField(max_length=64, primary_key=True)
    starred_at = peewee.DateTimeField()

    class Meta:
        table_name = "subsonic_star"


class Rating(peewee.Model):
    item_id = peewee.CharField(max_length=64, primary_key=True)
    rating = peewee.SmallIntegerField()

    class Meta:
        table_name = "subsonic_rating"


class Playlist(peewee.Model):
    id = peewee.UUIDField(primary_key=True, default=uuid.uuid4)
    name = peewee.CharField(max_length=200)
    comment = peewee.TextField(null=True)
    public = peewee.BooleanField(default=False)
    created_at = peewee.DateTimeField()
    changed_at = peewee.DateTimeField()

    class Meta:
        table_name = "subsonic_playlist"


class PlaylistEntry(peewee.Model):
    playlist_id = peewee.UUIDField(index=True)
    position = peewee.IntegerField()
    clip_id = peewee.UUIDField()

    class Meta:
        table_name = "subsonic_playlist_entry"
        primary_key = peewee.CompositeKey("playlist_id", "position")


class PlayQueue(peewee.Model):
    id = peewee.IntegerField(primary_key=True)
    current = peewee.UUIDField(null=True)
    position_ms = peewee.BigIntegerField(default=0)
    changed_at = peewee.DateTimeField()
    changed_by = peewee.CharField(max_length=200)

    class Meta:
        table_name = "subsonic_play_queue"


class PlayQueueEntry(peewee.Model):
    position = peewee.IntegerField(primary_key=True)
    clip_id = peewee.UUIDField()

    class Meta:
        table_name = "subsonic_play_queue_entry"


MODELS = [Star, Rating, Playlist, PlaylistEntry, PlayQueue, PlayQueueEntry]


def apply(db, migrator):
    with db.bind_ctx(MODELS):
        db.create_tables(MODELS)
