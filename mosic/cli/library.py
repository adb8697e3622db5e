"""Library work from the command line: reading tags of clips added before the current rules
(after ``mosic migrate``), and ``mosic import``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from mosic.app import make_catalogue, make_store
from mosic.core.catalogue import Catalogue
from mosic.persistence.database import make_database
from mosic.settings import Settings

log = logging.getLogger("mosic")


@contextlib.asynccontextmanager
async def open_catalogue(settings: Settings) -> AsyncIterator[Catalogue]:
    """The catalogue over the configured database and media store, both closed afterwards."""
    db = make_database(settings)
    store = make_store(settings)
    await store.start()
    try:
        yield make_catalogue(db, store)
    finally:
        await db.aio_close()
        await store.close()


def read_pending(settings: Settings) -> int:
    """Read the files of clips whose tags predate the current rules; exit status."""

    async def run() -> int:
        async with open_catalogue(settings) as catalogue:
            return await catalogue.read_pending()

    try:
        count = asyncio.run(run())
    except Exception as exc:  # the operator needs one clear line, not a traceback
        log.error("reading tags of existing clips failed: %s", exc)
        return 1
    if count:
        log.info("read the tags of %d existing clip(s)", count)
    return 0
