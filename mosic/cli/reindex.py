"""``mosic reindex``: rebuild everything derived from the clips in place (artists, albums,
genres, folder counts, the music folders' directory tree, the search index), safe while
Mosic serves.

For after clips were loaded into the database by other means (a restore, a bulk SQL load) or
a change of the grouping rules; ``mosic migrate`` runs it once after the migration that made
the derived rows.
"""

from __future__ import annotations

import asyncio
import logging
import time

from mosic.core import rebuild
from mosic.persistence.database import make_database
from mosic.settings import Settings

log = logging.getLogger("mosic")


def reindex(settings: Settings) -> int:
    """Rebuild the derived rows; exit status."""
    started = time.monotonic()
    regrouped = 0

    def progress(count: int) -> None:
        nonlocal regrouped
        regrouped += count

    async def run() -> None:
        db = make_database(settings)
        try:
            await rebuild.reindex(db, progress)
        finally:
            await db.aio_close()

    try:
        asyncio.run(run())
    except Exception as exc:  # the operator needs one clear line, not a traceback
        log.error("reindex failed: %s", exc)
        return 1
    log.info("reindexed %d clip(s) in %.1f s", regrouped, time.monotonic() - started)
    return 0
