"""Settings: every knob Mosic has, read once from the environment (prefix ``MOSIC_``).

The rest of the code receives a ``Settings`` object and never reads the environment itself,
so tests build one directly and pass it to ``create_app``.
"""

from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from environs import Env, EnvError

PREFIX = "MOSIC_"
DEFAULT_SIGNED_URL_TTL = 6 * 60 * 60
LOG_FORMATS = ("text", "json")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
# environs (expand_vars) replaces ${NAME} and ${NAME:-default} in values: the same pattern.
REFERENCE = re.compile(r"(?<!\\)\$\{([A-Za-z0-9_]+)(?::-[^}:]*)?\}")
# Secret settings may name a file instead (Docker and Compose secrets): MOSIC_API_KEY_FILE.
FILE_SUFFIX = "_FILE"
DEFAULT_TRANSCODE_CACHE_MB = 1024
DEFAULT_BODY_TIMEOUT_S = 30.0
# A request body must bring this many bytes a second over any BODY_RATE_WINDOW_S after its
# first byte (Apache's mod_reqtimeout MinRate); the window is the contract's, not a setting.
DEFAULT_BODY_MIN_RATE = 500
BODY_RATE_WINDOW_S = 30.0
DEFAULT_HEADER_TIMEOUT_S = 10.0
# On SIGTERM, how long running streams may go on, their last bytes reaching the listener
# included, before the process exits anyway.
DEFAULT_SHUTDOWN_GRACE_S = 30.0
DEFAULT_BACKUP_INTERVAL_H = 24.0
DEFAULT_BACKUP_KEEP = 7
TRANSCODE_CACHE_DIR = "transcodes"
# Music folders indexed in place (MOSIC_LIBRARY_*): uploads form the folder of this name.
UPLOADS_FOLDER = "Uploads"
DEFAULT_LIBRARY_SETTLE_S = 2.0
DEFAULT_LIBRARY_SCAN_INTERVAL_S = 3600.0
DEFAULT_LIBRARY_MISSING_DAYS = 30


class SettingsError(ValueError):
    """A setting is missing or invalid; the message names the variable."""


@dataclass(frozen=True)
class PostgresConfig:
    host: str
    port: int = 5432
    name: str = "mosic"
    user: str = "mosic"
    password: str | None = None

    def describe(self) -> str:
        # Never the password: this string goes to the start-up log.
        return f"PostgreSQL {self.user}@{self.host}:{self.port}/{self.name}"


STORAGE_KINDS = ("local", "s3")
S3_ADDRESSING = ("path", "virtual")
S3_STREAM_MODES = ("redirect", "proxy")
DEFAULT_S3_CALL_TIMEOUT_S = 150
DEFAULT_S3_HEARTBEAT_S = 30


@dataclass(frozen=True)
class S3Config:
    bucket: str
    prefix: str = ""
    endpoint_url: str | None = None
    region: str = "us-east-1"
    access_key_id: str | None = None
    secret_access_key: str | None = None
    addressing: str = "virtual"
    stream: str = "redirect"
    # How often a replica says it is alive; partial uploads of one silent for three such
    # periods are taken to be a crash's leftovers and removed.
    heartbeat_s: int = DEFAULT_S3_HEARTBEAT_S
    # The longest any one call to the store may take, retries included (two attempts of a
    # 2 s connect and a 60 s read, and a margin): past it, a 503 rather than a wait for good.
    call_timeout_s: float = DEFAULT_S3_CALL_TIMEOUT_S

    def describe(self) -> str:
        # Never the keys: this string goes to the start-up log.
        where = self.endpoint_url or "AWS"
        return f"S3 bucket {self.bucket!r} prefix {self.prefix!r} at {where} ({self.stream})"


@dataclass(frozen=True)
class Settings:
    data_dir: Path = Path("data")
    media_root: Path | None = None
    postgres: PostgresConfig | None = None
    db_pool_size: int = 10
    api_key: str | None = None
    signing_secret: str | None = None
    signed_url_ttl: int = DEFAULT_SIGNED_URL_TTL
    max_upload_mb: int = 200
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    log_level: str = "INFO"
    log_format: str = "text"
    metrics_port: int | None = None
    # With a separate metrics port, False keeps /metrics off the API port (the Ingress's).
    metrics_on_api_port: bool = True
    storage: str = "local"  # where media lives: "local" (MOSIC_MEDIA_ROOT) or "s3"
    s3: S3Config | None = None  # the bucket, when one is configured
    # The admin user's name: the user of the configured keys (Subsonic apps log in with it).
    admin_user: str = "mosic"
    # Transcodes running at once in each process; None means one per CPU.
    transcode_max: int | None = None
    transcode_cache_mb: int = DEFAULT_TRANSCODE_CACHE_MB
    # With nginx in front: the internal location's prefix, e.g. "/internal-media/".
    accel_redirect: str | None = None
    # With nginx in front asking first (auth_request): stream decisions, nginx sends the file.
    nginx_auth_request: bool = False
    read_api_keys: tuple[str, ...] = ()
    max_json_kb: int = 64
    body_timeout_s: float = DEFAULT_BODY_TIMEOUT_S
    body_min_rate: int = DEFAULT_BODY_MIN_RATE
    # Only tests shorten it (through this object), to see the rule act within seconds.
    body_rate_window_s: float = BODY_RATE_WINDOW_S
    header_timeout_s: float = DEFAULT_HEADER_TIMEOUT_S
    shutdown_grace_s: float = DEFAULT_SHUTDOWN_GRACE_S
    # Scheduled backups go here when set (``mosic backup`` takes one by hand).
    backup_dir: Path | None = None
    backup_interval_h: float = DEFAULT_BACKUP_INTERVAL_H
    backup_keep: int = DEFAULT_BACKUP_KEEP
    # Folders indexed where they are, each a music folder named by its last component.
    library_dirs: tuple[Path, ...] = ()
    library_watch: bool = True
    library_settle_s: float = DEFAULT_LIBRARY_SETTLE_S
    library_scan_interval_s: float = DEFAULT_LIBRARY_SCAN_INTERVAL_S  # 0: never
    library_missing_days: int = DEFAULT_LIBRARY_MISSING_DAYS

    def __post_init__(self) -> None:
        if self.storage == "s3" and self.s3 is None:
            raise SettingsError(f"{PREFIX}S3_BUCKET is required when {PREFIX}STORAGE=s3")
        # nginx sends files from its own disk: the local media root.
        if self.accel_redirect and self.storage != "local":
            raise SettingsError(f"{PREFIX}ACCEL_REDIRECT needs {PREFIX}STORAGE=local")
        if self.nginx_auth_request and self.storage != "local":
            raise SettingsError(f"{PREFIX}NGINX_AUTH_REQUEST needs {PREFIX}STORAGE=local")
        # Paths are resolved once so a later chdir (gunicorn does one) cannot move the data.
        object.__setattr__(self, "data_dir", Path(self.data_dir).resolve())
        media = self.media_root if self.media_root is not None else self.data_dir / "media"
        object.__setattr__(self, "media_root", Path(media).resolve())
        if self.backup_dir is not None:
            object.__setattr__(self, "backup_dir", Path(self.backup_dir).resolve())
        if self.transcode_max is None:
            object.__setattr__(self, "transcode_max", os.cpu_count() or 1)
        dirs = tuple(Path(path).resolve() for path in self.library_dirs)
        object.__setattr__(self, "library_dirs", dirs)
        music_folders(dirs)  # refuses two folders of one name, and "Uploads"

    @property
    def music_folders(self) -> dict[str, Path]:
        """Each library folder by its name (its last path component), in the given order."""
        return music_folders(self.library_dirs)

    @property
    def sqlite_path(self) -> Path:
        return self.data_dir / "mosic.sqlite3"

    @property
    def transcode_cache_dir(self) -> Path:
        return self.data_dir / TRANSCODE_CACHE_DIR

    @property
    def transcode_cache_bytes(self) -> int:
        return self.transcode_cache_mb * 1024 * 1024

    @property
    def max_json_bytes(self) -> int:
        return self.max_json_kb * 1024

    @property
    def max_upload_bytes(self) -> int:
        return self.max_upload_mb * 1024 * 1024

    @property
    def uses_s3(self) -> bool:
        return self.storage == "s3"

    def describe_storage(self) -> str:
        if self.uses_s3:
            return f"media store: {self.s3.describe()}"
        return f"media directory: {self.media_root}"

    def describe_database(self) -> str:
        if self.postgres is not None:
            return self.postgres.describe()
        return f"SQLite {self.sqlite_path}"

    def replace(self, **changes) -> Settings:
        return dataclasses.replace(self, **changes)


def music_folders(dirs: tuple[Path, ...]) -> dict[str, Path]:
    """``dirs`` by name; two of one name, or one named as the uploads are, is an error (a
    clip is identified by its folder's name and path, so a name must mean one folder)."""
    named: dict[str, Path] = {}
    for path in dirs:
        name = path.name
        if not name:
            raise SettingsError(f"{PREFIX}LIBRARY_DIRS: {path} has no name to be known by")
        if name == UPLOADS_FOLDER:
            raise SettingsError(
                f"{PREFIX}LIBRARY_DIRS: {path} is named {UPLOADS_FOLDER!r}, the name of the "
                "uploads' music folder; mount it under another name"
            )
        if name in named:
            raise SettingsError(
                f"{PREFIX}LIBRARY_DIRS: {named[name]} and {path} are both named {name!r}; "
                "a music folder is known by its last path component, so mount one elsewhere"
            )
        named[name] = path
    return named


def _library(env: Env) -> dict:
    # ':'-separated, as PATH is; empty entries (a trailing ':') mean nothing.
    dirs = tuple(Path(part) for part in env.str("LIBRARY_DIRS", "").split(":") if part.strip())
    interval = env.float("LIBRARY_SCAN_INTERVAL_S", DEFAULT_LIBRARY_SCAN_INTERVAL_S)
    if interval < 0:
        raise SettingsError(f"{PREFIX}LIBRARY_SCAN_INTERVAL_S must be 0 (never) or more")
    settle = env.float("LIBRARY_SETTLE_S", DEFAULT_LIBRARY_SETTLE_S)
    if settle < 0:
        raise SettingsError(f"{PREFIX}LIBRARY_SETTLE_S must be 0 or more seconds")
    return {
        "library_dirs": dirs,
        "library_watch": env.bool("LIBRARY_WATCH", True),
        "library_settle_s": settle,
        "library_scan_interval_s": interval,
        "library_missing_days": _positive(
            "LIBRARY_MISSING_DAYS",
            env.int("LIBRARY_MISSING_DAYS", DEFAULT_LIBRARY_MISSING_DAYS),
            minimum=0,
        ),
    }


def parse_database_url(url: str) -> PostgresConfig:
    parts = urlsplit(url)
    if parts.scheme not in ("postgres", "postgresql") or not parts.hostname:
        raise SettingsError(
            f"{PREFIX}DATABASE_URL_OVERRIDE must look like postgresql://user:password@host:5432/db"
        )
    try:
        port = parts.port or 5432
    except ValueError as exc:
        raise SettingsError(f"{PREFIX}DATABASE_URL_OVERRIDE has an invalid port: {exc}") from None
    return PostgresConfig(
        host=parts.hostname,
        port=port,
        name=unquote(parts.path.lstrip("/")) or "mosic",
        user=unquote(parts.username) if parts.username else "mosic",
        password=unquote(parts.password) if parts.password else None,
    )


def load_settings(env_file: str | Path | None = ".env") -> Settings:
    """Read settings from the environment and an optional ``.env`` file.

    ``env_file`` is resolved against the working directory: environs' own default searches
    upward from *its caller's* source file, which is never what an operator means.
    """
    env = Env(expand_vars=True)
    if env_file is not None and Path(env_file).is_file():
        env.read_env(str(Path(env_file).resolve()), recurse=False)
    _refuse_self_references(os.environ)
    try:
        with env.prefixed(PREFIX):
            settings = _read(env)
    except EnvError as exc:
        raise SettingsError(str(exc).splitlines()[0]) from None
    return settings


def _refuse_self_references(environ) -> None:
    """A value that refers back to its own variable, directly or through others, is an error.

    environs would recurse until Python gives up; a Compose tool that passes
    ``${MOSIC_API_KEY:-}`` through literally produces exactly that.
    """
    for name in sorted(n for n in environ if n.startswith(PREFIX)):
        chain = _reference_cycle(environ, name, [name])
        if chain:
            raise SettingsError(
                f"{name} refers to itself ({' -> '.join(chain)}): its value is a ${{...}} "
                "reference that was never expanded; set a real value or leave it unset"
            )


def _reference_cycle(environ, name: str, path: list[str]) -> list[str] | None:
    for ref in REFERENCE.findall(environ.get(name, "")):
        if ref in path:
            return [*path, ref] if ref == path[0] else None
        found = _reference_cycle(environ, ref, [*path, ref])
        if found:
            return found
    return None


def _secret(name: str, value: str | None, file_name: str | None) -> str | None:
    """A secret from ``MOSIC_<name>`` or from the file ``MOSIC_<name>_FILE`` names."""
    if not file_name:
        return value or None
    if value:
        raise SettingsError(f"set {PREFIX}{name} or {PREFIX}{name}{FILE_SUFFIX}, not both")
    try:
        text = Path(file_name).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise SettingsError(
            f"{PREFIX}{name}{FILE_SUFFIX}: cannot read {file_name}: {reason}"
        ) from None
    # Secret files usually end with a newline that is not part of the secret.
    return text.rstrip("\r\n") or None


def _positive(name: str, value: int, *, minimum: int = 1) -> int:
    if value < minimum:
        raise SettingsError(f"{PREFIX}{name} must be at least {minimum}, got {value}")
    return value


def check_port(name: str, value: int) -> int:
    if not 1 <= value <= 65535:
        raise SettingsError(f"{name} must be a port number from 1 to 65535, got {value}")
    return value


def _non_empty(name: str, value: str) -> str:
    if not value.strip():
        raise SettingsError(f"{PREFIX}{name} must not be empty")
    return value.strip()


USER_NAME_MAX = 64  # a user's name, in the users table too


def _admin_user(env: Env) -> str:
    """``MOSIC_ADMIN_USER``, or its old name ``MOSIC_SUBSONIC_USER``; a valid user name."""
    name = "ADMIN_USER" if env.str("ADMIN_USER", None) is not None else "SUBSONIC_USER"
    value = _non_empty(name, env.str(name, "mosic"))
    if len(value) > USER_NAME_MAX:
        raise SettingsError(f"{PREFIX}{name} must be at most {USER_NAME_MAX} characters")
    return value


def _key_list(value: str) -> tuple[str, ...]:
    # An empty entry ("a,,b" or a trailing comma) must never become a key that "" matches.
    return tuple(key for key in (part.strip() for part in value.split(",")) if key)


def _access_and_limits(env: Env) -> dict:
    return {
        "read_api_keys": _key_list(env.str("READ_API_KEYS", "")),
        "max_json_kb": _positive("MAX_JSON_KB", env.int("MAX_JSON_KB", 64)),
        "body_timeout_s": _seconds(
            "BODY_TIMEOUT_S", env.float("BODY_TIMEOUT_S", DEFAULT_BODY_TIMEOUT_S)
        ),
        "body_min_rate": _positive(
            "BODY_MIN_RATE", env.int("BODY_MIN_RATE", DEFAULT_BODY_MIN_RATE), minimum=0
        ),
        "header_timeout_s": _seconds(
            "HEADER_TIMEOUT_S", env.float("HEADER_TIMEOUT_S", DEFAULT_HEADER_TIMEOUT_S)
        ),
        "shutdown_grace_s": _seconds(
            "SHUTDOWN_GRACE_S", env.float("SHUTDOWN_GRACE_S", DEFAULT_SHUTDOWN_GRACE_S)
        ),
    }


def _backups(env: Env) -> dict:
    return {
        "backup_dir": env.path("BACKUP_DIR", None),
        "backup_interval_h": _hours(
            "BACKUP_INTERVAL_H", env.float("BACKUP_INTERVAL_H", DEFAULT_BACKUP_INTERVAL_H)
        ),
        "backup_keep": _positive("BACKUP_KEEP", env.int("BACKUP_KEEP", DEFAULT_BACKUP_KEEP)),
    }


def _hours(name: str, value: float) -> float:
    if not value > 0:
        raise SettingsError(f"{PREFIX}{name} must be a positive number of hours")
    return value


def _seconds(name: str, value: float) -> float:
    # "not value > 0" also refuses NaN, which every comparison would let through.
    if not value > 0:
        raise SettingsError(f"{PREFIX}{name} must be a positive number of seconds")
    return value


def _log_level(value: str) -> str:
    level = value.upper()
    if level not in LOG_LEVELS:
        raise SettingsError(f"{PREFIX}LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}")
    return level


def _accel_prefix(value: str | None) -> str | None:
    if not value:
        return None
    if not (value.startswith("/") and value.endswith("/")):
        raise SettingsError(f"{PREFIX}ACCEL_REDIRECT must start and end with '/', got {value!r}")
    return value


def _postgres(env: Env) -> PostgresConfig | None:
    url = _secret(
        "DATABASE_URL_OVERRIDE",
        env.str("DATABASE_URL_OVERRIDE", None),
        env.str("DATABASE_URL_OVERRIDE_FILE", None),
    )
    if url:
        return parse_database_url(url)
    host = env.str("DB_HOST", None)
    if not host:
        return None
    return PostgresConfig(
        host=host,
        port=env.int("DB_PORT", 5432),
        name=env.str("DB_NAME", "mosic"),
        user=env.str("DB_USER", "mosic"),
        password=_secret(
            "DB_PASSWORD", env.str("DB_PASSWORD", None), env.str("DB_PASSWORD_FILE", None)
        ),
    )


def _read(env: Env) -> Settings:
    postgres = _postgres(env)
    log_format = env.str("LOG_FORMAT", "text").lower()
    if log_format not in LOG_FORMATS:
        raise SettingsError(f"{PREFIX}LOG_FORMAT must be one of {', '.join(LOG_FORMATS)}")
    metrics_port = env.int("METRICS_PORT", None)
    transcode_max = env.int("TRANSCODE_MAX", None)
    return Settings(
        storage=_choice("STORAGE", env.str("STORAGE", "local").lower(), STORAGE_KINDS),
        s3=_s3(env),
        data_dir=env.path("DATA_DIR", Path("data")),
        media_root=env.path("MEDIA_ROOT", None),
        **_backups(env),
        postgres=postgres,
        db_pool_size=_positive("DB_POOL_SIZE", env.int("DB_POOL_SIZE", 10)),
        api_key=_secret("API_KEY", env.str("API_KEY", None), env.str("API_KEY_FILE", None)),
        signing_secret=_secret(
            "SIGNING_SECRET",
            env.str("SIGNING_SECRET", None),
            env.str("SIGNING_SECRET_FILE", None),
        ),
        signed_url_ttl=_positive(
            "SIGNED_URL_TTL", env.int("SIGNED_URL_TTL", DEFAULT_SIGNED_URL_TTL)
        ),
        max_upload_mb=_positive("MAX_UPLOAD_MB", env.int("MAX_UPLOAD_MB", 200)),
        host=env.str("HOST", "127.0.0.1"),
        port=check_port(f"{PREFIX}PORT", env.int("PORT", 8000)),
        workers=_positive("WORKERS", env.int("WORKERS", 1)),
        log_level=_log_level(env.str("LOG_LEVEL", "INFO")),
        log_format=log_format,
        metrics_port=(
            check_port(f"{PREFIX}METRICS_PORT", metrics_port) if metrics_port is not None else None
        ),
        metrics_on_api_port=env.bool("METRICS_ON_API_PORT", True),
        admin_user=_admin_user(env),
        transcode_max=(
            _positive("TRANSCODE_MAX", transcode_max) if transcode_max is not None else None
        ),
        transcode_cache_mb=_positive(
            "TRANSCODE_CACHE_MB", env.int("TRANSCODE_CACHE_MB", DEFAULT_TRANSCODE_CACHE_MB)
        ),
        accel_redirect=_accel_prefix(env.str("ACCEL_REDIRECT", None)),
        nginx_auth_request=env.bool("NGINX_AUTH_REQUEST", False),
        **_access_and_limits(env),
        **_library(env),
    )


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise SettingsError(f"{PREFIX}{name} must be one of {', '.join(allowed)}, got {value!r}")
    return value


def _s3(env: Env) -> S3Config | None:
    """The bucket, when one is named: the store with MOSIC_STORAGE=s3, or the other side of
    ``mosic storage migrate``."""
    bucket = env.str("S3_BUCKET", None)
    if not bucket:
        if env.str("STORAGE", "local").lower() == "s3":
            raise SettingsError(f"{PREFIX}S3_BUCKET is required when {PREFIX}STORAGE=s3")
        return None
    endpoint = env.str("S3_ENDPOINT_URL", None) or None
    addressing = env.str("S3_ADDRESSING", "path" if endpoint else "virtual").lower()
    prefix = env.str("S3_PREFIX", "").strip("/")
    return S3Config(
        bucket=bucket,
        prefix=f"{prefix}/" if prefix else "",
        endpoint_url=endpoint,
        region=env.str("S3_REGION", "us-east-1"),
        access_key_id=env.str("S3_ACCESS_KEY_ID", None) or None,
        secret_access_key=env.str("S3_SECRET_ACCESS_KEY", None) or None,
        addressing=_choice("S3_ADDRESSING", addressing, S3_ADDRESSING),
        stream=_choice("S3_STREAM", env.str("S3_STREAM", "redirect").lower(), S3_STREAM_MODES),
        heartbeat_s=_positive("S3_HEARTBEAT_S", env.int("S3_HEARTBEAT_S", DEFAULT_S3_HEARTBEAT_S)),
    )
