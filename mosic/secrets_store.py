"""Secrets Mosic generates for itself when the operator configured none.

Each lives in its own file in the data directory, mode 0600, created atomically so several
workers starting at once agree on one value.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

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
