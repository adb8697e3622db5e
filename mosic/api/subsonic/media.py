"""Bytes and listens: ``stream``, ``download``, ``getCoverArt`` and ``scrobble``.

Subsonic apps report their listens themselves (``scrobble``), so ``stream`` and
``download`` count nothing: an app's listen is counted exactly once, by ``scrobble``,
through the one ``PlayRecorder`` that ``/play/{id}/stats`` and ``mosic_plays_total`` see.
"""

from __future__ import annotations

from pathlib import PurePosixPath

from mosic.api.streams import serve_stored
from mosic.api.subsonic.call import Call
from mosic.api.subsonic.response import missing, not_found
from mosic.core.catalogue import Catalogue
from mosic.core.library import Library, NotInLibrary
from mosic.core.plays import PlayRecorder
from mosic.media.storage import MediaMissing
from mosic.observability.metrics import Metrics

COVER_SIZE_MAX = 4096


class Media:
    def __init__(
        self,
        *,
        library: Library,
        catalogue: Catalogue,
        plays: PlayRecorder,
        metrics: Metrics,
        link_ttl: int,
    ) -> None:
        # An object store may answer with a 307 to its own URL, valid this long.
        self._link_ttl = link_ttl
        self._library = library
        self._catalogue = catalogue
        self._plays = plays
        self._metrics = metrics

    def methods(self) -> dict:
        return {
            "stream": self.stream,
            "download": self.download,
            "getCoverArt": self.cover_art,
            "scrobble": self.scrobble,
        }

    async def _send(self, call: Call, *, attachment: bool) -> None:
        try:
            clip = await self._library.song(call.params.required("id"))
        except NotInLibrary:
            raise not_found("song") from None
        try:
            # No listen callback: Subsonic plays are counted by scrobble alone.
            await serve_stored(
                call.req,
                call.resp,
                clip,
                catalogue=self._catalogue,
                metrics=self._metrics,
                link_lifetime=self._link_ttl,
            )
        except MediaMissing:
            raise not_found("the song's audio file") from None
        if attachment:
            suffix = PurePosixPath(clip.file_name).suffix
            call.resp.downloadable_as = f"{clip.title}{suffix}"

    async def stream(self, call: Call) -> None:
        # maxBitRate and format are accepted and, until the transcoder lands, the original
        # file is served (with Range), which every Subsonic app plays.
        # TODO(transcode branch): format=opus|mp3 / maxBitRate through media/transcode.py.
        call.params.integer("maxBitRate", 0, 0, 10_000)
        await self._send(call, attachment=False)

    async def download(self, call: Call) -> None:
        await self._send(call, attachment=True)

    async def cover_art(self, call: Call) -> dict:
        item_id = call.params.required("id")
        call.params.integer("size", None, 1, COVER_SIZE_MAX)
        # TODO(library branch): the clip's (or album's first clip's) embedded picture,
        # resized once to ``size`` and cached. Until covers exist, there is none to send.
        raise not_found(f"cover art {item_id!r}")

    async def scrobble(self, call: Call) -> dict:
        ids = call.params.all("id")
        if not ids:
            raise missing("id")
        songs = await self._library.songs_by_id(ids)
        if len(songs) != len(ids):
            raise not_found("song")  # nothing counted: all or none
        if call.params.flag("submission", True):
            for clip in songs:
                await self._plays.record(clip.id)
        # submission=false is "now playing": nothing to count, nothing to keep.
        return {}
