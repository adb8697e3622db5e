"""The catalogue's tables, as peewee models.

Models are not bound to a database here: the store passes its own database to every query,
so two apps (SQLite and PostgreSQL, say) can live in one process without rebinding anything.
The schema itself is created and changed only by ``mosic.persistence.migrations``.
"""

from __future__ import annotations

import uuid

import peewee
from peewee_async import AioModel

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

    class Meta:
        table_name = "clip"

    @property
    def is_external(self) -> bool:
        return self.file_name is None
