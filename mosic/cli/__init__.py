"""The process shell: the ``mosic`` command (``serve``, ``migrate``, ``reindex``, ``scan``,
``import``, ``storage``, ``backup``, ``restore``, ``user``, ``--version``).

Imports of the app and of prometheus-client happen inside the commands: multiprocess metrics
need ``PROMETHEUS_MULTIPROC_DIR`` set before prometheus-client is first imported.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from mosic import __version__
from mosic.settings import Settings, SettingsError, check_port, load_settings

log = logging.getLogger("mosic")
# Files read, hashed and decoded at once by ``mosic import``: decoding is bounded separately
# (mosic.core.waveform.DECODE_CONCURRENCY), so more jobs overlap disk reads with it.
DEFAULT_IMPORT_JOBS = 4
# The migration whose tables 'mosic reindex' fills (artists, albums, genres, ...).
DERIVED_ROWS_MIGRATION = "0004_library"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mosic", description="Mosic: a minimalist, fast, async audio streaming backend."
    )
    parser.add_argument("--version", action="version", version=f"mosic {__version__}")
    parser.add_argument(
        "--env-file", default=".env", help="settings file to read if it exists (default: ./.env)"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="apply pending migrations, then serve the API")
    serve.add_argument("--host", help="address to listen on (MOSIC_HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (MOSIC_PORT, default 8000)")
    serve.add_argument(
        "--workers", type=int, help="worker processes; more than 1 runs gunicorn (MOSIC_WORKERS)"
    )
    commands.add_parser("migrate", help="apply pending schema migrations and exit")
    commands.add_parser(
        "reindex",
        help="rebuild artists, albums, genres, counts and the search index from the clips",
        description="Rebuild everything derived from the clips in place, safe while Mosic "
        "serves: after loading clips by other means (a restore, a bulk SQL load).",
    )
    storage = commands.add_parser("storage", help="work on the media store")
    storage_commands = storage.add_subparsers(dest="storage_command", required=True)
    copy = storage_commands.add_parser(
        "migrate",
        help="copy every clip's audio to the S3 bucket (--to s3) or back to MOSIC_MEDIA_ROOT "
        "(--to local), verifying each file's SHA-256",
    )
    copy.add_argument("--to", choices=("s3", "local"), required=True)
    copy.add_argument("--jobs", type=int, default=4, help="files copied at once (default 4)")
    _backup_commands(commands)
    _library_commands(commands)
    _user_commands(commands)
    return parser


def _user_commands(commands) -> None:
    user = commands.add_parser("user", help="add, list and remove users; make keys")
    user_commands = user.add_subparsers(dest="user_command", required=True)
    add = user_commands.add_parser("add", help="add a user and print its first key, once")
    add.add_argument("name")
    add.add_argument("--admin", action="store_true", help="an admin (default: a listener)")
    add.add_argument(
        "--music-folders", metavar="A,B", help="the music folders it may see (default: all)"
    )
    user_commands.add_parser("list", help="every user, its role and music folders")
    key = user_commands.add_parser("key", help="make a new key for a user and print it, once")
    key.add_argument("name")
    key.add_argument("--read", action="store_true", help="a read-only key (default: full)")
    remove = user_commands.add_parser(
        "remove", help="remove a user and its keys (its uploads become the admin's)"
    )
    remove.add_argument("name")


def _backup_commands(commands) -> None:
    backup = commands.add_parser(
        "backup",
        help="copy the database (SQLite, online), generated secrets and new media into DEST, "
        "with a manifest of every file's SHA-256",
    )
    backup.add_argument("dest", type=Path, metavar="DEST", help="the backup directory")
    restore = commands.add_parser(
        "restore", help="restore the newest backup in SRC into an empty data dir, hashes first"
    )
    restore.add_argument("src", type=Path, metavar="SRC", help="a backup directory or snapshot")


def _library_commands(commands) -> None:
    scan = commands.add_parser(
        "scan",
        help="apply pending migrations, then scan every music folder (MOSIC_LIBRARY_DIRS)",
        description="Index what changed in the music folders: new, re-tagged, moved and "
        "missing files. Files unchanged since the last scan (same size and modification "
        "time) are not read again unless --full.",
    )
    scan.add_argument("--full", action="store_true", help="read every file again")
    scan.add_argument(
        "--purge-missing", action="store_true",
        help="remove every missing clip now, not after MOSIC_LIBRARY_MISSING_DAYS",
    )  # fmt: skip
    add = commands.add_parser(
        "import",
        help="apply pending migrations, then add every audio file under the given paths",
        description="Add every file with an audio extension under the given files and folders, "
        "with the rules of an upload (files already stored are skipped). Exit status 1 only "
        "when some file failed and none was added or skipped.",
    )
    add.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="a file or a folder")
    add.add_argument(
        "--jobs", type=int, default=DEFAULT_IMPORT_JOBS,
        help=f"files imported at once (default {DEFAULT_IMPORT_JOBS})",
    )  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = _settings(args)
    except SettingsError as exc:
        print(f"mosic: invalid setting: {exc}", file=sys.stderr)
        return 2
    from mosic.observability.logs import configure_logging

    configure_logging(settings)
    if args.command in MIGRATE_FIRST:
        code = migrate(settings)
        if code or args.command == "migrate":
            return code
    return _run(args, settings)


# The commands that apply pending migrations first (serve, scan and import do it themselves).
MIGRATE_FIRST = frozenset({"migrate", "reindex", "storage", "user"})


def _settings(args) -> Settings:
    """The settings, with the command line's own options; raises ``SettingsError``."""
    settings = load_settings(args.env_file)
    if args.command == "serve":
        overrides = {
            k: getattr(args, k) for k in ("host", "port", "workers") if getattr(args, k) is not None
        }
        check_port("--port", overrides.get("port", settings.port))
        if overrides.get("workers", 1) < 1:
            raise SettingsError("--workers must be at least 1")
        settings = settings.replace(**overrides)
    if args.command == "import" and args.jobs < 1:
        raise SettingsError("--jobs must be at least 1")
    return settings


def _run(args, settings: Settings) -> int:
    if args.command == "reindex":
        from mosic.cli.reindex import reindex

        return reindex(settings)
    if args.command == "storage":
        from mosic.cli.storage import migrate_storage

        return migrate_storage(settings, args.to, max(args.jobs, 1))
    if args.command in ("backup", "restore"):
        from mosic.cli import backup

        if args.command == "backup":
            return backup.backup(settings, args.dest)
        return backup.restore(settings, args.src)
    if args.command == "user":
        from mosic.cli.user import user

        return user(settings, args)
    if args.command == "scan":
        from mosic.cli.scan import scan

        return scan(settings, full=args.full, purge=args.purge_missing)
    if args.command == "import":
        from mosic.cli.library import import_paths

        return import_paths(settings, args.paths, args.jobs)
    from mosic.cli.serve import serve

    return serve(settings)


def migrate(settings: Settings) -> int:
    from mosic.persistence.database import make_sync_database
    from mosic.persistence.migrations import apply_pending, name_admin

    log.info("database: %s", settings.describe_database())
    db = make_sync_database(settings)
    try:
        applied = apply_pending(db)
        name_admin(db, settings.admin_user)
    except Exception as exc:  # the operator needs one clear line, not a traceback
        log.error("migration failed on %s: %s", settings.describe_database(), exc)
        return 1
    finally:
        db.close()
    log.info("migrations: %s", ", ".join(applied) if applied else "up to date")
    from mosic.cli.library import read_pending

    code = read_pending(settings)
    if code or DERIVED_ROWS_MIGRATION not in applied:
        return code
    # The migration made the derived rows' tables: fill them from the clips once.
    from mosic.cli.reindex import reindex

    return reindex(settings)
