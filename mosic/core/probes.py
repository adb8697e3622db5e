"""What operations ask of a running service: does the database answer, does the media store
take writes (readiness), how many clips are listed, and how many users there are and listen
now (metrics)."""

from __future__ import annotations

from peewee import fn

from mosic.core.listening import NOW_PLAYING_FOR
from mosic.media.storage import MediaStore
from mosic.persistence.models import MusicFolder, NowPlaying, UserRow, utcnow

# A listener is active while getNowPlaying shows it: it started a song within this window.
ACTIVE_WITHIN = NOW_PLAYING_FOR


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

    async def users(self) -> tuple[int, int]:
        """Users, and those who started a song within ``ACTIVE_WITHIN`` (through the
        started_at index of what is playing now: one row per user and player)."""
        users = await UserRow.select(fn.COUNT(UserRow.id)).aio_scalar(self._db)
        since = utcnow() - ACTIVE_WITHIN
        active = await (
            NowPlaying.select(fn.COUNT(fn.DISTINCT(NowPlaying.user_id)))
            .where(NowPlaying.started_at >= since)
            .aio_scalar(self._db)
        )
        return int(users or 0), int(active or 0)
