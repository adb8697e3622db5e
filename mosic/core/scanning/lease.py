"""One scanner at a time, across workers and replicas: a lease in the one ``library_scan`` row.

Taking it is a single conditional UPDATE (free, or its holder's time ran out), so two
processes asking at once cannot both win, on SQLite or PostgreSQL. The holder renews it while
it scans and writes its progress with each renewal; a holder that dies stops renewing, and
the lease is free again ``LEASE_TTL_S`` later. The row also is the scan status clients read.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
import secrets
import socket
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, fields

from mosic.persistence.models import ScanRow, utcnow

log = logging.getLogger(__name__)
# Long enough that a busy database never costs a live scanner its lease; short enough that
# a crashed one holds up the next scan for only a minute.
LEASE_TTL_S = 60
RENEW_EVERY_S = LEASE_TTL_S / 4
STATUS_ROW = 1


@dataclass
class Counts:
    seen: int = 0
    added: int = 0
    updated: int = 0
    moved: int = 0
    missing: int = 0
    unchanged: int = 0
    failed: int = 0

    def summary(self) -> str:
        return (
            f"{self.added} added, {self.updated} updated, {self.moved} moved, "
            f"{self.missing} missing, {self.unchanged} unchanged, {self.failed} failed"
        )


COUNT_NAMES = tuple(f.name for f in fields(Counts))


class LeaseLost(Exception):
    """Another process took the lease over (this one could not renew it in time)."""


def owner_name() -> str:
    """Who holds the lease: the host and process (for an operator), and a random part so a
    reused pid never passes for its predecessor."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


class ScanLease:
    def __init__(self, *, db, owner: str | None = None) -> None:
        self._db = db
        self.owner = owner or owner_name()
        # Set once a renewal finds the lease taken over: the scan must stop writing.
        self.lost = False

    async def take(self) -> bool:
        """Take the lease and start a new status; False when another scan holds it."""
        now = utcnow()
        free = (ScanRow.scanning == False) | (ScanRow.lease_until < now)  # noqa: E712
        taken = await self._db.aio_execute(
            ScanRow.update(
                scanning=True,
                owner=self.owner,
                lease_until=now + dt.timedelta(seconds=LEASE_TTL_S),
                started_at=now,
                finished_at=None,
                **asdict(Counts()),
            ).where((ScanRow.id == STATUS_ROW) & free)
        )
        return bool(taken)

    async def renew(self, counts: Counts) -> bool:
        """Extend the lease and record progress; False if it was lost (taken over)."""
        until = utcnow() + dt.timedelta(seconds=LEASE_TTL_S)
        return bool(
            await self._db.aio_execute(
                ScanRow.update(lease_until=until, **asdict(counts)).where(self._mine())
            )
        )

    async def release(self, counts: Counts) -> None:
        await self._db.aio_execute(
            ScanRow.update(
                scanning=False, lease_until=None, finished_at=utcnow(), **asdict(counts)
            ).where(self._mine())
        )

    def _mine(self):
        return (ScanRow.id == STATUS_ROW) & (ScanRow.owner == self.owner)

    @contextlib.asynccontextmanager
    async def held(self, counts: Counts) -> AsyncIterator[None]:
        """Hold the lease (taken already) while the body runs, renewing it with ``counts``
        as they grow; released however the body ends."""
        renewer = asyncio.create_task(self._keep(counts))
        try:
            yield
        finally:
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewer
            try:
                await self.release(counts)
            except Exception as exc:  # the lease then runs out by itself
                log.warning("library scan: could not release the lease: %s", exc)

    async def _keep(self, counts: Counts) -> None:
        while True:
            await asyncio.sleep(RENEW_EVERY_S)
            try:
                if not await self.renew(counts):
                    self.lost = True
                    log.error("library scan: the lease was lost to another process")
            except Exception as exc:  # a blip: the next renewal is still in time
                log.warning("library scan: renewing the lease failed: %s", exc)


async def status(db) -> dict:
    """The current or last scan, as the contract's status object."""
    rows = await db.aio_execute(ScanRow.select().where(ScanRow.id == STATUS_ROW))
    if not rows:
        return {"scanning": False, "started_at": None, "finished_at": None,
                **asdict(Counts())}  # fmt: skip
    row = rows[0]
    scanning = bool(row.scanning) and (row.lease_until is None or row.lease_until > utcnow())
    return {
        "scanning": scanning,
        "started_at": row.started_at,
        "finished_at": row.finished_at,
        **{name: getattr(row, name) for name in COUNT_NAMES},
    }
