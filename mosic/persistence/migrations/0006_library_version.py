"""The library's version: one row, moved by every change to what the artist lists show.

``getArtists`` and ``getIndexes`` list every artist (25,000 at a million songs): their encoded
answers are kept per version, and every process reads this one row (a primary-key read) to
know whether what it kept is still the answer, so workers and replicas never serve a list
another process has since changed. Writers move it in the transaction that changes the
artists (``Aggregates``) or an artist's star or rating (``Collection``); ``changed_at`` is
``getIndexes``' ``lastModified``.

A new table only (additive). During a rolling upgrade the previous release writes without
moving it: its changes show in the lists once a writer of this release next moves it (any
upload, delete, scan or ``mosic reindex``).
"""

import datetime as dt

import peewee


class LibraryVersion(peewee.Model):
    id = peewee.IntegerField(primary_key=True)
    version = peewee.BigIntegerField(default=0)
    changed_at = peewee.DateTimeField()

    class Meta:
        table_name = "library_version"


def apply(db, migrator):
    with db.bind_ctx([LibraryVersion]):
        db.create_tables([LibraryVersion])
        # Stored times are naive UTC. Nothing says when an existing library last changed:
        # now is a safe lastModified (an app that kept an older one asks again).
        now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        LibraryVersion.create(id=1, version=1, changed_at=now)
