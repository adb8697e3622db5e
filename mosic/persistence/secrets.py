"""The API key and signing secret: configured, or generated once and kept.

A generated secret lives in its own file in the data directory, mode 0600, created atomically
so several workers starting at once agree on one value.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mosic.settings import Settings

API_KEY_FILE = "api_key"
SIGNING_SECRET_FILE = "signing_secret"  # noqa: S105 - a file name
# 32 random bytes: as strong as the HMAC-SHA256 that checks signed links.
SECRET_BYTES = 32


def load_or_create(path: Path) -> tuple[str, bool]:
    """Return (secret, created): the stored secret, or a new one written with mode 0600."""
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(SECRET_BYTES)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        stored = path.read_text().strip()
        if not stored:
            raise RuntimeError(f"{path} is empty; delete it to have a new secret made") from None
        return stored, False
    with os.fdopen(fd, "w") as fh:
        fh.write(value + "\n")
    return value, True


@dataclass(frozen=True)
class Credentials:
    api_key: str
    signing_secret: str


def resolve_credentials(
    settings: Settings, announce: Callable[[str, Path], None] | None = None
) -> Credentials:
    """The configured API key and signing secret, or ones generated and kept in the data dir.

    A generated key is announced once (through ``announce``) by whichever process made it.
    """
    api_key = settings.api_key
    if api_key is None:
        key_path = settings.data_dir / API_KEY_FILE
        api_key, created = load_or_create(key_path)
        if created and announce is not None:
            announce(api_key, key_path)
    secret = settings.signing_secret
    if secret is None:
        secret, _ = load_or_create(settings.data_dir / SIGNING_SECRET_FILE)
    return Credentials(api_key=api_key, signing_secret=secret)
