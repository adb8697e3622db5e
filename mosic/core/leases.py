"""One process at a time, across workers and replicas, for a background job: a lease in the
job's ``mosic_lease`` row (migration 0011 made the ``loudness`` one).

Taking it is one conditional UPDATE (free, or its holder's time ran out), so two processes
asking at once cannot both win, on SQLite or PostgreSQL. The holder renews it as it works; a
holder that dies stops renewing, and the lease is free again ``LEASE_TTL_S`` later. (The
library's scans have their own lease, in the row that also is their status: ``scanning``.)
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
import socket

from mosic.persistence.models import LeaseRow, utcnow

# Long enough for the slowest step between renewals (one clip decoded); short enough that
# a crashed holder holds the job up for two minutes only.
LEASE_TTL_S = 120


class Lease:
    def __init__(self, *, db, name: str, ttl_s: float = LEASE_TTL_S) -> None:
        self._db = db
        self._name = name
        self._ttl = dt.timedelta(seconds=ttl_s)
        # Host and process for an operator; a random part so a reused pid is someone else.
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"

    async def take(self) -> bool:
        """Take the lease; False when another process holds it."""
        now = utcnow()
        free = LeaseRow.owner.is_null() | (LeaseRow.lease_until < now)
        taken = await self._db.aio_execute(
            LeaseRow.update(owner=self.owner, lease_until=now + self._ttl).where(
                (LeaseRow.name == self._name) & free
            )
        )
        return bool(taken)

    async def renew(self) -> bool:
        """Extend the lease; False when it was lost (it ran out and another took it)."""
        renewed = await self._db.aio_execute(
            LeaseRow.update(lease_until=utcnow() + self._ttl).where(self._mine())
        )
        return bool(renewed)

    async def release(self) -> None:
        await self._db.aio_execute(
            LeaseRow.update(owner=None, lease_until=None).where(self._mine())
        )

    def _mine(self):
        return (LeaseRow.name == self._name) & (LeaseRow.owner == self.owner)
