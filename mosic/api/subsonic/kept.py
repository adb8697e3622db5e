"""Answers kept across requests: the encoded artist lists of ``getArtists`` and ``getIndexes``.

Those list every artist (25,000 at a million songs, 1.6 MB of JSON): building and encoding
them was the whole cost of the call, and they change only when the artists do. So each
worker keeps the encoded answer under the library's version (``Library.version``, one row
every writer of artists moves in its own transaction), read on every request: a change made
by any worker or replica is seen by the next request everywhere, with nothing to tell the
other processes. An answer is built once per version and variant, even when many requests
ask for it at once; the few entries are dropped least recently used first, and every entry
of another version as soon as one of a new version is kept. The version is its number and
when it moved, so a database restored under a running server cannot bring back a number
with other artists behind it.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable

from mosic.api.subsonic.response import Encoded

# Variants: two methods x two encodings x the folders shown (every one; those a listener
# sees; one asked by musicFolderId) x the users who ask (each sees its own stars and ratings
# of artists): a household's, at its busiest.
KEPT_MAX = 16


class Kept:
    def __init__(self, size: int = KEPT_MAX) -> None:
        self._size = size
        self._answers: OrderedDict[tuple[Hashable, Hashable], Encoded] = OrderedDict()
        self._building: dict[tuple[Hashable, Hashable], asyncio.Future] = {}
        self._version: Hashable = None  # the version of what is kept
        self.built = 0  # answers built (a test and a metric can read it)

    def __len__(self) -> int:
        return len(self._answers)

    async def answer(
        self, version: Hashable, variant: Hashable, build: Callable[[], Awaitable[Encoded]]
    ) -> Encoded:
        """The answer ``variant`` at ``version``: kept, being built, or built now. ``version``
        must have been read before ``build`` reads anything."""
        key = (version, variant)
        found = self._answers.get(key)
        if found is not None:
            self._answers.move_to_end(key)
            return found
        pending = self._building.get(key)
        if pending is None:
            pending = asyncio.ensure_future(self._build(key, build))
            # Its error reaches those who wait; if none is left, it is not logged as lost.
            pending.add_done_callback(lambda done: done.cancelled() or done.exception())
            self._building[key] = pending
        # Shielded: a client that goes away does not cancel the build others wait for.
        return await asyncio.shield(pending)

    async def _build(self, key: tuple[Hashable, Hashable], build) -> Encoded:
        try:
            encoded = await build()
            self.built += 1
            self._keep(key, encoded)
            return encoded
        finally:
            del self._building[key]

    def _keep(self, key: tuple[Hashable, Hashable], encoded: Encoded) -> None:
        # Versions only move on, but a request that read the version just before a change
        # may finish after one that read it after: the next request rebuilds, no more.
        if key[0] != self._version:
            self._version = key[0]
            self._answers.clear()
        self._answers[key] = encoded
        while len(self._answers) > self._size:
            self._answers.popitem(last=False)
