"""API keys: which key a request may present."""

from __future__ import annotations

import hmac


class KeyRing:
    """The configured API key, checked in constant time so the response time says nothing
    about how much of a guess was right."""

    def __init__(self, api_key: str) -> None:
        self._key = api_key.encode()

    def accepts(self, given: str | None) -> bool:
        return bool(given) and hmac.compare_digest(given.encode(), self._key)
