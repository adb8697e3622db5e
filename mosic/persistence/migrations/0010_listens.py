"""Playback reports (OpenSubsonic ``playbackReport``) and the index-based play queue.

- ``user_listen``: the listen each user's player reports now, one row per (user, player):
  the song, where it is (state, position, rate, when reported) and whether this listen has
  counted its play. ``generation`` names the listen: a new listen on the player adds one and
  clears ``counted``; the conditional ``UPDATE ... WHERE generation = ? AND NOT counted``
  that counts a play succeeds for one report of a listen only, on any worker.
- ``user_play_queue.current_index``: which entry of the queue is the current one, for queues
  that hold a song twice (``savePlayQueueByIndex``); null for queues saved by song id.

Additive: a new table and a nullable column, which the previous release never reads.
"""

import peewee
from playhouse.migrate import migrate


class Listen(peewee.Model):
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


def apply(db, migrator) -> None:
    with db.bind_ctx([Listen]):
        db.create_tables([Listen])
    migrate(
        migrator.add_column("user_play_queue", "current_index", peewee.IntegerField(null=True)),
    )
