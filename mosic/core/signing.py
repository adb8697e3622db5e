"""Signed, expiring links, so an ``<audio src>`` can play without sending a header.

A signature names one clip and one resource of it (``stream`` unless told otherwise), so a
stream link opens no other clip and nothing else of the same clip.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass


class BadSignature(Exception):
    pass


class ExpiredSignature(BadSignature):
    pass


@dataclass(frozen=True)
class Signer:
    secret: str
    ttl: int

    def _digest(self, clip_id: str, expires: int, resource: str) -> str:
        message = f"{resource}:{clip_id}:{expires}".encode()
        return hmac.new(self.secret.encode(), message, hashlib.sha256).hexdigest()

    def sign(
        self, clip_id: str, now: float | None = None, resource: str = "stream"
    ) -> tuple[int, str]:
        expires = int(now if now is not None else time.time()) + self.ttl
        return expires, self._digest(clip_id, expires, resource)

    def query(self, clip_id: str, now: float | None = None, resource: str = "stream") -> str:
        expires, sig = self.sign(clip_id, now, resource)
        return f"expires={expires}&sig={sig}"

    def verify(
        self,
        clip_id: str,
        expires: str,
        sig: str,
        now: float | None = None,
        resource: str = "stream",
    ) -> None:
        """Raise ``BadSignature`` (or ``ExpiredSignature``) unless the link is valid now."""
        try:
            expires_at = int(expires)
        except (TypeError, ValueError):
            raise BadSignature("the link's expiry is not a number") from None
        if not hmac.compare_digest(
            self._digest(clip_id, expires_at, resource).encode(), (sig or "").encode()
        ):
            raise BadSignature("the link's signature is not valid for this clip")
        if expires_at < (now if now is not None else time.time()):
            raise ExpiredSignature("the link has expired")
