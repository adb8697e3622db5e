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


def mosic_env(settings: Settings, api_key: str = "test-key-0123456789") -> dict[str, str]:
    """The environment that points a ``mosic`` command at ``settings``' data and database."""
    env = {"MOSIC_DATA_DIR": str(settings.data_dir), "MOSIC_API_KEY": api_key}
    pg = settings.postgres
    if pg is not None:
        password = f":{pg.password}" if pg.password else ""
        env["MOSIC_DATABASE_URL_OVERRIDE"] = (
            f"postgresql://{pg.user}{password}@{pg.host}:{pg.port}/{pg.name}"
        )
    return env
