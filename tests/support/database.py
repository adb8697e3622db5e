"""Schema set-up for tests: migrate a database the way ``mosic migrate`` does."""

from __future__ import annotations

from mosic.persistence.database import make_sync_database
from mosic.persistence.migrations import apply_pending
from mosic.settings import Settings


def migrate(settings: Settings, *, then: str | tuple[str, ...] = ()) -> None:
    """Apply pending migrations, then run the SQL statement(s) ``then``."""
    db = make_sync_database(settings)
    try:
        apply_pending(db)
        for statement in (then,) if isinstance(then, str) else then:
            db.execute_sql(statement)
    finally:
        db.close()
