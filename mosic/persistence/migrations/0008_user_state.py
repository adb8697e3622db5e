"""What each user keeps: stars, ratings, playlists, the play queue, bookmarks, own plays.

- ``user_star``, ``user_rating``: one listener's ``subsonic_star`` and ``subsonic_rating``
  with a ``user_id`` beside the item id; ``user_play_queue`` (one row per user) and
  ``user_play_queue_entry`` the same for the queue. What was kept before users existed is
  copied to the admin (user 1), as the contract says.
- ``subsonic_playlist.owner_id``: whose playlist it is; the admin's for every earlier one.
- ``user_bookmark``: where a user stopped in a song.
- ``user_play``: a user's own count of each clip's plays, beside ``clip.play_count``;
  ``user_play_event``: one row per play, the user's history; ``user_now_playing``: what a user
  plays now, per player.

Additive: the old tables stay, unread, so the previous release still runs on this schema
during a rolling update or after a rollback; they can go a release later.
"""

import peewee
from playhouse.migrate import migrate

ADMIN_ID = 1


class Star(peewee.Model):
    user_id = peewee.IntegerField()
    item_id = peewee.CharField(max_length=64)
    starred_at = peewee.DateTimeField()

    class Meta:
        table_name = "user_star"
        primary_key = peewee.CompositeKey("user_id", "item_id")


class Rating(peewee.Model):
    user_id = peewee.IntegerField()
    item_id = peewee.CharField(max_length=64)
    rating = peewee.SmallIntegerField()

    class Meta:
        table_name = "user_rating"
        primary_key = peewee.CompositeKey("user_id", "item_id")


class PlayQueue(peewee.Model):
    user_id = peewee.IntegerField(primary_key=True)
    current = peewee.UUIDField(null=True)
    position_ms = peewee.BigIntegerField(default=0)
    changed_at = peewee.DateTimeField()
    changed_by = peewee.CharField(max_length=200)

    class Meta:
        table_name = "user_play_queue"


class PlayQueueEntry(peewee.Model):
    user_id = peewee.IntegerField()
    position = peewee.IntegerField()
    clip_id = peewee.UUIDField()

    class Meta:
        table_name = "user_play_queue_entry"
        primary_key = peewee.CompositeKey("user_id", "position")


class Bookmark(peewee.Model):
    user_id = peewee.IntegerField()
    clip_id = peewee.UUIDField()
    position_ms = peewee.BigIntegerField()
    comment = peewee.TextField(null=True)
    created_at = peewee.DateTimeField()
    changed_at = peewee.DateTimeField()

    class Meta:
        table_name = "user_bookmark"
        primary_key = peewee.CompositeKey("user_id", "clip_id")


class UserPlay(peewee.Model):
    user_id = peewee.IntegerField()
    clip_id = peewee.UUIDField()
    play_count = peewee.BigIntegerField(default=0)
    last_played_at = peewee.DateTimeField()

    class Meta:
        table_name = "user_play"
        primary_key = peewee.CompositeKey("user_id", "clip_id")


class PlayEvent(peewee.Model):
    id = peewee.BigAutoField()
    user_id = peewee.IntegerField()
    clip_id = peewee.UUIDField()
    played_at = peewee.DateTimeField()

    class Meta:
        table_name = "user_play_event"
        indexes = ((("user_id", "played_at", "id"), False),)


class NowPlaying(peewee.Model):
    user_id = peewee.IntegerField()
    player = peewee.CharField(max_length=200)
    clip_id = peewee.UUIDField()
    started_at = peewee.DateTimeField(index=True)

    class Meta:
        table_name = "user_now_playing"
        primary_key = peewee.CompositeKey("user_id", "player")


MODELS = [Star, Rating, PlayQueue, PlayQueueEntry, Bookmark, UserPlay, PlayEvent, NowPlaying]

COPIES = (
    "INSERT INTO user_star (user_id, item_id, starred_at)"
    " SELECT {admin}, item_id, starred_at FROM subsonic_star",
    "INSERT INTO user_rating (user_id, item_id, rating)"
    " SELECT {admin}, item_id, rating FROM subsonic_rating",
    "INSERT INTO user_play_queue (user_id, current, position_ms, changed_at, changed_by)"
    " SELECT {admin}, current, position_ms, changed_at, changed_by FROM subsonic_play_queue",
    "INSERT INTO user_play_queue_entry (user_id, position, clip_id)"
    " SELECT {admin}, position, clip_id FROM subsonic_play_queue_entry",
    "UPDATE subsonic_playlist SET owner_id = {admin}",
)


def apply(db, migrator) -> None:
    with db.bind_ctx(MODELS):
        db.create_tables(MODELS)
    migrate(
        migrator.add_column("subsonic_playlist", "owner_id", peewee.IntegerField(null=True)),
        migrator.add_index("subsonic_playlist", ("owner_id",), False),
    )
    for statement in COPIES:
        db.execute_sql(statement.format(admin=ADMIN_ID))
