"""Lyrics from the clips' own tags: ``clip_lyrics``, a row per lyrics a file holds.

Additive: a new table, which the previous release never reads. Existing clips get their rows
when their files are read again: ``clip_rows.MEDIA_VERSION`` moved to 2, so ``mosic migrate``
reads the uploads once more and the next scan the library's files.
"""

import peewee


class LyricsRow(peewee.Model):
    clip_id = peewee.UUIDField()
    position = peewee.SmallIntegerField()
    synced = peewee.BooleanField()
    lang = peewee.CharField(max_length=16, null=True)
    offset_ms = peewee.IntegerField(default=0)
    lines = peewee.TextField()

    class Meta:
        table_name = "clip_lyrics"
        primary_key = peewee.CompositeKey("clip_id", "position")


def apply(db, migrator) -> None:
    with db.bind_ctx([LyricsRow]):
        db.create_tables([LyricsRow])
