"""Users and their keys; every clip gets an owner.

- ``mosic_user``: a name (unique without regard to case, through ``name_key``), a role
  (``admin`` or ``listener``) and the music folders it may see (JSON list, null for all).
  Row 1 is the admin: the user of the configured keys, named by ``MOSIC_ADMIN_USER`` at start.
- ``api_key``: a key of a user, ``full`` or ``read``. Never the key itself: its SHA-256 (keys
  are 256 random bits, so a plain hash cannot be reversed or guessed) to find it, and the key
  sealed with a secret that is not in the database, for Subsonic's token login, which needs
  the secret itself.
- ``clip.owner_id``: who uploaded a clip (null for library files and clips made before users,
  which are the admin's to change).

Additive: new tables and one nullable column.
"""

import datetime as dt

import peewee
from playhouse.migrate import migrate


class User(peewee.Model):
    name = peewee.CharField(max_length=64)
    name_key = peewee.CharField(max_length=64, unique=True)
    role = peewee.CharField(max_length=16)
    music_folders = peewee.TextField(null=True)
    created_at = peewee.DateTimeField()

    class Meta:
        table_name = "mosic_user"


class ApiKey(peewee.Model):
    id = peewee.CharField(max_length=32, primary_key=True)
    user_id = peewee.IntegerField(index=True)
    scope = peewee.CharField(max_length=8)
    digest = peewee.CharField(max_length=64, unique=True)
    sealed = peewee.TextField()
    created_at = peewee.DateTimeField()

    class Meta:
        table_name = "api_key"


def _utcnow() -> dt.datetime:
    # Naive UTC, as every time in the database (the same on SQLite and PostgreSQL).
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def apply(db, migrator) -> None:
    with db.bind_ctx([User, ApiKey]):
        db.create_tables([User, ApiKey])
        # The table's first row: id 1 on both databases (an explicit id would leave
        # PostgreSQL's sequence behind, and the next user would collide with it).
        User.insert(
            name="mosic", name_key="mosic", role="admin", created_at=_utcnow()
        ).execute()
    migrate(migrator.add_column("clip", "owner_id", peewee.IntegerField(null=True)))
