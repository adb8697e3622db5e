"""Scanning the music folders, as Subsonic apps ask for it: ``startScan`` (a write: a
read-only key gets error 50) and ``getScanStatus``. Both answer the scan status; ``count``
is the files seen so far while a scan runs, else the songs in the library."""

from __future__ import annotations

from mosic.api.subsonic.call import Call
from mosic.core.library import Library
from mosic.core.scanning.service import LibraryScans


class Scanning:
    def __init__(self, *, scans: LibraryScans, library: Library) -> None:
        self._scans = scans
        self._library = library

    def methods(self) -> dict:
        return {"startScan": self.start_scan, "getScanStatus": self.scan_status}

    async def start_scan(self, call: Call) -> dict:
        # One already running is not an error to a Subsonic app: it sees it scanning.
        await self._scans.start_scan()
        return await self.scan_status(call)

    async def scan_status(self, call: Call) -> dict:
        status = await self._scans.status()
        if status["scanning"]:
            return {"scanStatus": {"scanning": True, "count": status["seen"]}}
        return {"scanStatus": {"scanning": False, "count": await self._library.song_count()}}
