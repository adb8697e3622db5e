"""Schema migrations: numbered modules in this package, applied in order, each exactly once.

Each module defines ``apply(db, migrator)``. All pending migrations run in one transaction that
first takes a lock (a PostgreSQL advisory lock, SQLite's write lock), so replicas that start
together queue up, and the second finds nothing left to do.
"""

from __future__ import annotations

import datetime as dt
import importlib
import logging
import pkgutil

import peewee
from playhouse.migrate import SchemaMigrator

log = logging.getLogger(__name__)

# Any constant works; it only has to be the same in every replica.
ADVISORY_LOCK_KEY = 0x6D6F736963  # "mosic"


class AppliedMigration(peewee.Model):
    name = peewee.CharField(primary_key=True, max_length=200)
    applied_at = peewee.DateTimeField()

    class Meta:
        table_name = "mosic_migrations"


def available() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if m.name[:4].isdigit())


def _transaction(db: peewee.Database):
    if isinstance(db, peewee.SqliteDatabase):
        return db.atomic("IMMEDIATE")
    return db.atomic()


def apply_pending(db: peewee.Database) -> list[str]:
    """Apply what is pending and return the names applied (empty when up to date)."""
    with db.bind_ctx([AppliedMigration]), _transaction(db):
        if isinstance(db, peewee.PostgresqlDatabase):
            db.execute_sql("SELECT pg_advisory_xact_lock(%s)", (ADVISORY_LOCK_KEY,))
        db.create_tables([AppliedMigration], safe=True)
        done = {row.name for row in AppliedMigration.select()}
        pending = [name for name in available() if name not in done]
        migrator = SchemaMigrator.from_database(db)
        for name in pending:
            log.info("applying migration %s", name)
            importlib.import_module(f"{__name__}.{name}").apply(db, migrator)
            AppliedMigration.create(name=name, applied_at=dt.datetime.now(dt.UTC))
    return pending


class AdminNameTaken(Exception):
    pass


def name_admin(db: peewee.Database, name: str) -> None:
    """The admin (user 1, whose keys are the configured ones) carries ``MOSIC_ADMIN_USER``'s
    name, which may change between starts; run after ``apply_pending``."""
    from mosic.persistence.models import ADMIN, ADMIN_ID, UserRow, name_key

    with db.bind_ctx([UserRow]), _transaction(db):
        taken = UserRow.select().where(
            (UserRow.name_key == name_key(name)) & (UserRow.id != ADMIN_ID)
        )
        if taken.exists():
            raise AdminNameTaken(f"MOSIC_ADMIN_USER {name!r} is another user's name")
        UserRow.update(name=name, name_key=name_key(name), role=ADMIN).where(
            UserRow.id == ADMIN_ID
        ).execute()


def pending(db: peewee.Database) -> list[str]:
    with db.bind_ctx([AppliedMigration]):
        if not AppliedMigration.table_exists():
            return available()
        done = {row.name for row in AppliedMigration.select()}
    return [name for name in available() if name not in done]
