"""User keys at rest: a fingerprint to find a key by, and the key sealed for token login.

- The fingerprint is HMAC-SHA256 of the key under a secret outside the database, so a copy of
  the database alone cannot even test guesses (a key set by ``changePassword`` is a password a
  person chose).
- Subsonic's token login sends ``md5(key + salt)``, so checking it needs the key itself, which
  Mosic must therefore be able to recover (Navidrome keeps passwords the same way): the key is
  sealed with AES-256-GCM.

Both secrets are derived (HKDF-SHA256) from the signing secret, which lives outside the
database (``MOSIC_SIGNING_SECRET`` or its file in the data directory): losing it loses every
user key (the configured ones keep working).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

NONCE_BYTES = 12
_PURPOSE = b"mosic: user keys sealed at rest"
_FINGERPRINT = b"mosic: user key fingerprints"


def _derive(secret: str, purpose: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose).derive(
        secret.encode()
    )


class Sealer:
    def __init__(self, secret: str) -> None:
        self._aead = AESGCM(_derive(secret, _PURPOSE))
        self._pepper = _derive(secret, _FINGERPRINT)

    def fingerprint(self, key: str) -> str:
        """What the database keeps to find ``key`` by (64 hex digits)."""
        return hmac.new(self._pepper, key.encode(), hashlib.sha256).hexdigest()

    def seal(self, plain: str) -> str:
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, plain.encode(), _PURPOSE)
        return base64.b64encode(nonce + sealed).decode()

    def unseal(self, sealed: str) -> str | None:
        """The plain text, or None when it was sealed under another secret (rotated)."""
        try:
            raw = base64.b64decode(sealed)
            return self._aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], _PURPOSE).decode()
        except (InvalidTag, ValueError):
            return None
