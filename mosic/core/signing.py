"""Signed, expiring links, so an ``<audio src>`` or ``<img src>`` can open a clip's stream or
cover without sending a header.

The signed message names the resource as well as the clip, so a link opens one clip's one
resource: a stream signature opens no cover, and a cover signature no stream. A link made for
a user also names that user (``u=<id>``, signed with the rest): it opens the clip as that user,
who must still exist and see the clip's music folder. A link without ``u`` (made before links
named their user) is checked as before."""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass, field

# The resources a link can open. The stream's name is the one links had before resources
# were named, so links already handed out stay valid.
STREAM = "stream"
COVER = "cover"


# Links made within the same minute expire at the same moment (the next whole minute after
# their lifetime), so a link asked for again comes back the same: a list page can be
# cached by whoever reads it, and each link is signed once a minute, not once per answer
# (15 % of a 500-row page). Lifetimes under ten minutes keep their exact second.
EXPIRY_STEP_S = 60
# Signatures kept for reuse; the memo starts afresh when full (a minute's worth of links).
MEMO_SIZE = 8192
# Users whose link texts are kept at once (``Signer.kept``); past that they start afresh.
KEPT_USERS = 64


class BadSignature(Exception):
    pass


class ExpiredSignature(BadSignature):
    pass


@dataclass(frozen=True)
class Signer:
    secret: str
    ttl: int
    # Keyed once: a list signs a link per clip, and copying a keyed HMAC skips hashing the
    # key's pads again (9 % of a 500-row list's time before).
    _keyed: hmac.HMAC = field(init=False, repr=False, compare=False)

    _memo: dict = field(init=False, repr=False, compare=False, default_factory=dict)
    _kept: dict = field(init=False, repr=False, compare=False, default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_keyed", hmac.new(self.secret.encode(), None, hashlib.sha256))

    def _expiry(self, now: float) -> int:
        earliest = int(now) + self.ttl
        if self.ttl < 10 * EXPIRY_STEP_S:
            return earliest
        return -(-earliest // EXPIRY_STEP_S) * EXPIRY_STEP_S

    def _digest(self, resource: str, clip_id: str, expires: int, user_id: int | None) -> str:
        mac = self._keyed.copy()
        # A user's link signs one field more, so no link can lose (or gain) its user.
        user = "" if user_id is None else f":{user_id}"
        mac.update(f"{resource}:{clip_id}:{expires}{user}".encode())
        return mac.hexdigest()

    def sign(
        self,
        clip_id: str,
        now: float | None = None,
        *,
        resource: str = STREAM,
        user_id: int | None = None,
    ) -> tuple[int, str]:
        expires = self._expiry(now if now is not None else time.time())
        return expires, self._signed(resource, clip_id, expires, user_id)[0]

    def query(
        self,
        clip_id: str,
        now: float | None = None,
        *,
        resource: str = STREAM,
        user_id: int | None = None,
    ) -> str:
        expires = self._expiry(now if now is not None else time.time())
        return self._signed(resource, clip_id, expires, user_id)[1]

    def expiry(self, now: float | None = None) -> int:
        """When a link made at ``now`` (default: this moment) expires."""
        return self._expiry(now if now is not None else time.time())

    def kept(self, expires: int, user_id: int | None) -> dict:
        """A dict for what callers make from the links that expire at ``expires`` for
        ``user_id`` (texts holding them), kept while such links are made: the dicts of other
        expiries are dropped when a new one starts (or when ``KEPT_USERS`` users have one),
        and one is emptied when it holds ``MEMO_SIZE`` entries."""
        key = (expires, user_id)
        kept = self._kept.get(key)
        if kept is None:
            if len(self._kept) >= KEPT_USERS or any(held != expires for held, _ in self._kept):
                self._kept.clear()
            kept = self._kept[key] = {}
        elif len(kept) >= MEMO_SIZE:
            kept.clear()
        return kept

    def signed_query(self, resource: str, clip_id: str, expires: int, user_id: int | None) -> str:
        """The query text of the link to ``clip_id``'s ``resource`` expiring at ``expires``."""
        return self._signed(resource, clip_id, expires, user_id)[1]

    def for_user(self, user_id: int | None) -> Links:
        """What makes the links of one answer, each for the user ``user_id``."""
        return Links(self, user_id)

    def _signed(
        self, resource: str, clip_id: str, expires: int, user_id: int | None
    ) -> tuple[str, str]:
        """The signature, and the link's query text, made once per memo entry."""
        key = (resource, clip_id, expires, user_id)
        signed = self._memo.get(key)
        if signed is None:
            if len(self._memo) >= MEMO_SIZE:
                self._memo.clear()
            sig = self._digest(resource, clip_id, expires, user_id)
            user = "" if user_id is None else f"&u={user_id}"
            signed = self._memo[key] = (sig, f"expires={expires}{user}&sig={sig}")
        return signed

    def verify(
        self,
        clip_id: str,
        expires: str,
        sig: str,
        now: float | None = None,
        *,
        resource: str = STREAM,
        user_id: int | None = None,
    ) -> None:
        """Raise ``BadSignature`` (or ``ExpiredSignature``) unless the link is valid now for
        this clip's ``resource``, made for ``user_id`` (None: a link without a user)."""
        try:
            expires_at = int(expires)
        except (TypeError, ValueError):
            raise BadSignature("the link's expiry is not a number") from None
        if not hmac.compare_digest(
            self._digest(resource, clip_id, expires_at, user_id).encode(), (sig or "").encode()
        ):
            raise BadSignature(f"the link's signature is not valid for this clip's {resource}")
        if expires_at < (now if now is not None else time.time()):
            raise ExpiredSignature("the link has expired")


@dataclass(frozen=True)
class Links:
    """The ``Signer``'s links for one user: what an answer's clip objects carry."""

    signer: Signer
    user_id: int | None

    def query(self, clip_id: str, now: float | None = None, *, resource: str = STREAM) -> str:
        return self.signer.query(clip_id, now, resource=resource, user_id=self.user_id)
