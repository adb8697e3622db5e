"""Lyrics: ``getLyricsBySongId`` (OpenSubsonic ``songLyrics``, version 1: every lyrics of the
song, structured) and ``getLyrics`` (Subsonic's, by artist and title: one plain text)."""

from __future__ import annotations

from mosic.api.subsonic.call import Call
from mosic.api.subsonic.response import not_found
from mosic.core.library import Library, NotInLibrary
from mosic.core.lrc import Lyrics
from mosic.core.lyrics import SongLyrics

# OpenSubsonic's ``lang`` is required: "xxx" is what taggers write for "not known".
UNKNOWN_LANG = "xxx"
# Longer parameters than this name no song.
NAME_MAX = 1000


def structured(lyrics: Lyrics, artist: str | None, title: str) -> dict:
    """One ``structuredLyrics``: starts as written, the offset beside them (the client
    applies it); an unsynced line has no ``start``."""
    return {
        "displayArtist": artist,
        "displayTitle": title,
        "lang": lyrics.lang or UNKNOWN_LANG,
        "synced": lyrics.synced,
        "offset": lyrics.offset_ms,
        "line": [{"start": line.start_ms, "value": line.text} for line in lyrics.lines],
    }


class LyricsMethods:
    def __init__(self, *, library: Library, lyrics: SongLyrics) -> None:
        self._library = library
        self._lyrics = lyrics

    def methods(self) -> dict:
        return {"getLyricsBySongId": self.by_song_id, "getLyrics": self.by_name}

    async def by_song_id(self, call: Call) -> dict:
        try:
            song = await self._library.seen_by(call.folders).song(call.params.required("id"))
        except NotInLibrary:
            raise not_found("song") from None
        found = await self._lyrics.of(song)
        entries = [structured(lyrics, song.artist, song.title) for lyrics in found]
        return {"lyricsList": {"structuredLyrics": entries}}

    async def by_name(self, call: Call) -> dict:
        """The first song by ``artist`` titled ``title`` that has lyrics: its first lyrics
        as plain text (an empty ``value`` when none is found, as Subsonic answers)."""
        artist = call.params.text("artist", NAME_MAX) or ""
        title = call.params.text("title", NAME_MAX) or ""
        found = await self._lyrics.find(artist, title, call.folders)
        if found is None:
            return {"lyrics": {"value": ""}}
        song, lyrics = found
        return {"lyrics": {"artist": song.artist, "title": song.title, "value": lyrics[0].text}}
