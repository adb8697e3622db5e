"""What operations ask of a running service: does the database answer, does the media store
take writes (readiness), and how many clips are listed (metrics)."""

from __future__ import annotations

from peewee import fn

from mosic.media.storage import MediaStore
from mosic.persistence.models import MusicFolder


class Probes:
    def __init__(self, *, db, store: MediaStore) -> None:
        self._db = db
        self._store = store

    async def ping(self) -> None:
        """Raise unless the database answers."""
        await self._db.aio_execute_sql("SELECT 1")

    async def store_problem(self) -> str | None:
        """Why the media store cannot take writes now, or None."""
        return await self._store.problem()

    async def count(self) -> int:
        """Clips listed now, from the folders' counts: no clip row is read."""
        total = await MusicFolder.select(fn.SUM(MusicFolder.clips)).aio_scalar(self._db)
        return int(total or 0)
