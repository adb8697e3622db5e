"""API keys: which key a request may present, and what it may do with it."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass


@dataclass(frozen=True)
class Grant:
    """What an accepted key allows. Read-only keys (``MOSIC_READ_API_KEYS``) will answer
    ``Grant(writes=False)``; today the one key is a full key."""

    writes: bool


FULL = Grant(writes=True)


class KeyRing:
    """The configured API key, checked in constant time so the response time says nothing
    about how much of a guess was right."""

    def __init__(self, api_key: str) -> None:
        self._key = api_key.encode()

    def accepts(self, given: str | None) -> bool:
        return self.grant(given) is not None

    def grant(self, given: str | None) -> Grant | None:
        """The grant of the key ``given``, or None when it is no key of ours."""
        if given and hmac.compare_digest(given.encode(), self._key):
            return FULL
        return None

    def grant_for_token(self, token: str, salt: str) -> Grant | None:
        """The grant of the key whose ``md5(key + salt)`` is ``token`` (Subsonic token auth,
        where the key is the password and only its salted hash travels)."""
        expected = hashlib.md5(self._key + salt.encode(), usedforsecurity=False).hexdigest()
        if hmac.compare_digest(token.lower().encode(), expected.encode()):
            return FULL
        return None
