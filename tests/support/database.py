"""Schema set-up for tests: migrate a database the way ``mosic migrate`` does."""

from __future__ import annotations

from mosic.persistence.database import make_sync_database
from mosic.persistence.migrations import apply_pending, name_admin
from mosic.settings import Settings


def migrate(settings: Settings, *, then: str | tuple[str, ...] = ()) -> None:
    """Apply pending migrations, then run the SQL statement(s) ``then``."""
    db = make_sync_database(settings)
    try:
        apply_pending(db)
        name_admin(db, settings.admin_user)
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
    s3 = settings.s3 if settings.uses_s3 else None
    if s3 is not None:
        env.update({
            "MOSIC_STORAGE": "s3",
            "MOSIC_S3_BUCKET": s3.bucket,
            "MOSIC_S3_PREFIX": s3.prefix,
            "MOSIC_S3_ENDPOINT_URL": s3.endpoint_url or "",
            "MOSIC_S3_ACCESS_KEY_ID": s3.access_key_id or "",
            "MOSIC_S3_SECRET_ACCESS_KEY": s3.secret_access_key or "",
            "MOSIC_S3_ADDRESSING": s3.addressing,
            "MOSIC_S3_STREAM": s3.stream,
        })  # fmt: skip
    return env
