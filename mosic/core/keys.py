"""API keys: who presents a key, and what it may do; the configured keys of the admin."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass


@dataclass(frozen=True)
class User:
    """Who a key belongs to: ``music_folders`` are the names it may see (None for all)."""

    id: int
    name: str
    role: str
    music_folders: tuple[str, ...] | None = None

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


@dataclass(frozen=True)
class Grant:
    """What an accepted key allows: a ``full`` key writes, a ``read`` key does not. ``user``
    is its owner; None only for a signed link, which opens one resource of one clip."""

    writes: bool
    user: User | None = None


LINK = Grant(writes=False)


class KeyRing:
    """The configured keys: the admin's full API key and any read-only keys.

    Every key is compared, in constant time, whatever matched first, so the response time
    says nothing about how much of a guess was right or which kind of key it was near.
    """

    def __init__(self, api_key: str, read_keys: tuple[str, ...], admin: User) -> None:
        full, read = Grant(writes=True, user=admin), Grant(writes=False, user=admin)
        self._keys = [(api_key.encode(), full)] + [
            # Empty entries never become keys, even if a caller passes them.
            (key.encode(), read)
            for key in read_keys
            if key
        ]

    def grant(self, given: str | None) -> Grant | None:
        """The grant of the key ``given``, or None when it is no key of ours."""
        if not given:
            return None
        candidate = given.encode()
        return _first([hmac.compare_digest(candidate, key) for key, _ in self._keys], self._keys)

    def grant_for_token(self, token: str, salt: str) -> Grant | None:
        """The grant of the key whose ``md5(key + salt)`` is ``token`` (Subsonic token auth,
        where the key is the password and only its salted hash travels)."""
        given = token.lower().encode()
        matches = (
            hmac.compare_digest(
                given, hashlib.md5(key + salt.encode(), usedforsecurity=False).hexdigest().encode()
            )
            for key, _ in self._keys
        )
        return _first(matches, self._keys)


def _first(matches, keys) -> Grant | None:
    # Every comparison runs (a list, not a short-circuit), then the first match wins.
    results = list(matches)
    return next((grant for matched, (_, grant) in zip(results, keys, strict=True) if matched), None)
