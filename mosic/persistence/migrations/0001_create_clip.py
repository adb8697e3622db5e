"""The clip catalogue.

The model is frozen here as it was when this migration was written, so later changes to
``mosic.persistence.models`` never rewrite history.
"""

import uuid

import peewee


class Clip(peewee.Model):
    id = peewee.UUIDField(primary_key=True, default=uuid.uuid4)
    title = peewee.CharField(max_length=200)
    description = peewee.TextField(null=True)
    duration = peewee.DoubleField()
    artist = peewee.CharField(max_length=500, null=True)
    album = peewee.CharField(max_length=500, null=True)
    content_type = peewee.CharField(max_length=100, null=True)
    size = peewee.BigIntegerField(null=True)
    sha256 = peewee.CharField(max_length=64, null=True, unique=True)
    file_name = peewee.CharField(max_length=100, null=True)
    external_url = peewee.TextField(null=True)
    search_text = peewee.TextField(default="")
    play_count = peewee.BigIntegerField(default=0)
    last_played_at = peewee.DateTimeField(null=True)
    created_at = peewee.DateTimeField(index=True)
    updated_at = peewee.DateTimeField()

    class Meta:
        table_name = "clip"
        indexes = ((("play_count", "id"), False), (("title", "id"), False))


def apply(db, migrator):
    with db.bind_ctx([Clip]):
        db.create_tables([Clip])
