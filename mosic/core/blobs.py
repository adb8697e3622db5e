"""Covers and peaks are named by content and shared between clips (one cover serves a whole
album; an identical upload that lost a race has the same peaks), so one leaves the media
store only once no clip names it: after a delete, a failed upload, or a scan's purge."""

from __future__ import annotations

import logging

from mosic.core import covers
from mosic.media.storage import MediaStore
from mosic.persistence.models import Clip

log = logging.getLogger(__name__)


class UnusedBlobs:
    def __init__(self, *, db, store: MediaStore) -> None:
        self._db = db
        self._store = store

    async def drop_if_unused(self, column, name: str | None) -> None:
        """Remove the cover or peaks ``name`` (of ``column``) from the media store once no
        clip names it."""
        if not name:
            return
        named = await self._db.aio_execute(Clip.select(Clip.id).where(column == name).limit(1))
        if named:
            return
        await self._store.remove(name)
        if column is Clip.cover_name:  # and the copies made for getCoverArt sizes
            for scaled in covers.sized_names(name):
                await self._store.remove(scaled)

    async def drop_quietly(self, row: dict) -> None:
        """After a failed add: drop its cover and peaks unless another clip uses them. Never
        raises, so the failure that brought us here is the one the caller sees."""
        for column in (Clip.cover_name, Clip.waveform_name):
            name = row.get(column.name)
            try:
                await self.drop_if_unused(column, name)
            except Exception as exc:
                log.warning("%s of a failed upload was left behind: %s", name, exc)
