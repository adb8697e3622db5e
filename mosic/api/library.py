"""``/library/scan``: the status of the current or last scan of the music folders, and a new
scan started on demand (the full key: a read-only key is refused by the route table)."""

from __future__ import annotations

import falcon

from mosic.core.scanning.service import LibraryScans


class LibraryScan:
    def __init__(self, *, scans: LibraryScans) -> None:
        self._scans = scans

    async def on_get(self, req, resp) -> None:
        resp.media = await self._scans.status()

    async def on_post(self, req, resp) -> None:
        if not await self._scans.start_scan():
            raise falcon.HTTPConflict(
                title="Scan running",
                description="a scan of the music folders is running; its progress is at "
                "GET /library/scan",
            )
        resp.status = falcon.HTTP_202
        resp.media = await self._scans.status()
