"""Shares: public links to a fixed list of songs (``createShare``, ``POST /shares``).

- ``share_link`` (``share`` alone is an SQL keyword): one row per share, named by an
  unguessable id (the secret its URL carries); its owner, description, expiry, when it was
  made and last visited, and how many visits. A deleted share keeps its row with
  ``deleted_at`` set (a tombstone), so its URL answers 410 Gone, never 404 as a share that
  never was; a removed user's shares are deleted so.
- ``share_entry``: the songs of a share, in order (clip ids), fixed when it is made.

Additive: two new tables, which the previous release never reads; nothing here depends on
the migrations numbered just before it, so the order they are applied in does not matter.
"""

import peewee


class Share(peewee.Model):
    id = peewee.CharField(max_length=64, primary_key=True)
    owner_id = peewee.IntegerField(index=True)
    description = peewee.TextField(null=True)
    created_at = peewee.DateTimeField()
    expires_at = peewee.DateTimeField(null=True)
    last_visited_at = peewee.DateTimeField(null=True)
    visit_count = peewee.BigIntegerField(default=0)
    deleted_at = peewee.DateTimeField(null=True)

    class Meta:
        table_name = "share_link"


class ShareEntry(peewee.Model):
    share_id = peewee.CharField(max_length=64)
    position = peewee.IntegerField()
    clip_id = peewee.UUIDField()

    class Meta:
        table_name = "share_entry"
        primary_key = peewee.CompositeKey("share_id", "position")


def apply(db, migrator) -> None:
    with db.bind_ctx([Share, ShareEntry]):
        db.create_tables([Share, ShareEntry])
