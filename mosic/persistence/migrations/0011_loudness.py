"""Loudness: each clip's ReplayGain figures, and a lease for the jobs one process runs.

- ``clip``: ``track_gain_db``, ``track_peak``, ``album_gain_db``, ``album_peak`` (null until
  known), ``gated_seconds`` (what a measured track weighs in its album's figures),
  ``album_gain_tagged`` (the album figures are the file's own tags) and
  ``gain_source`` (``tags``, ``measured``, ``none``; null while still to be read), with a
  partial index on the clips still to be read, which the backfill walks.
- ``mosic_lease``: one row a job (``loudness``, the uploads' backfill), so that one worker of
  one replica runs it at a time.

Additive: nullable columns and a new table, which the previous release never reads (a clip it
adds is to be read, and the backfill reads it). Existing clips are read again:
``clip_rows.MEDIA_VERSION`` moved to 3. Metadata-only clips have no audio: ``none`` at once.
"""

import peewee
from playhouse.migrate import migrate

LOUDNESS_JOB = "loudness"


class LeaseRow(peewee.Model):
    name = peewee.CharField(max_length=64, primary_key=True)
    owner = peewee.CharField(max_length=200, null=True)
    lease_until = peewee.DateTimeField(null=True)

    class Meta:
        table_name = "mosic_lease"


def apply(db, migrator) -> None:
    migrate(
        *(
            migrator.add_column("clip", name, peewee.DoubleField(null=True))
            for name in (
                "track_gain_db",
                "track_peak",
                "album_gain_db",
                "album_peak",
                "gated_seconds",
            )
        ),
        migrator.add_column("clip", "album_gain_tagged", peewee.BooleanField(null=True)),
        migrator.add_column("clip", "gain_source", peewee.CharField(max_length=8, null=True)),
    )
    db.execute_sql("CREATE INDEX clip_gain_pending ON clip (id) WHERE gain_source IS NULL")
    db.execute_sql("UPDATE clip SET gain_source = 'none' WHERE file_name IS NULL")
    with db.bind_ctx([LeaseRow]):
        db.create_tables([LeaseRow])
        LeaseRow.create(name=LOUDNESS_JOB)
