"""API keys: who presents a key, and what it may do; the configured keys of the admin."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from mosic.persistence.models import UPLOADS


@dataclass(frozen=True)
class Folders:
    """The music folders a read may show: ``names``, or every one when None. Sorted, so two
    users who see the same folders share what is kept for them (the Subsonic artist lists).
    Make them with ``Folders.of``."""

    names: tuple[str, ...] | None = None

    @classmethod
    def of(cls, names) -> Folders:
        return cls(None if names is None else tuple(sorted(set(names))))

    def shows(self, name: str) -> bool:
        return self.names is None or name in self.names

    def narrowed(self, name: str | None) -> Folders:
        """These folders narrowed to the one a request asks for (None: not narrowed); no
        folder at all when it asks for one these do not show."""
        if name is None:
            return self
        return Folders((name,) if self.shows(name) else ())


EVERY_FOLDER = Folders()


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

    @property
    def folders(self) -> Folders:
        """What every read of this user shows (an admin's too: its folders are its choice)."""
        return Folders.of(self.music_folders)

    @property
    def may_upload(self) -> bool:
        """Uploads land in the folder ``UPLOADS``: a listener adds only what it will see."""
        return self.is_admin or self.folders.shows(UPLOADS)


@dataclass(frozen=True)
class Grant:
    """What an accepted key allows: a ``full`` key writes, a ``read`` key does not. ``user``
    is its owner (for a signed link, the user it was made for); None for a link made before
    links named their user, which opens one resource of one clip, and for a share's visitor
    (``VISITOR``), who opens that share's songs alone."""

    writes: bool
    user: User | None = None

    @property
    def folders(self) -> Folders:
        """The folders its reads show: its user's; every one for a link made before links
        named their user (it opens only the clip it was signed for)."""
        return EVERY_FOLDER if self.user is None else self.user.folders


LINK = Grant(writes=False)
# Whoever opens a share's link: no key, no user (its plays are nobody's own), no writes.
VISITOR = Grant(writes=False)


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
