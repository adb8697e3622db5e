"""How clips look to REST clients: the clip object, stats, and the next-page link."""

from __future__ import annotations

import datetime as dt
from typing import TypedDict
from urllib.parse import urlencode

import msgspec
import orjson

from mosic.core import signing
from mosic.core.listing import ListQuery, Page
from mosic.core.marks import UNMARKED, ClipMarks
from mosic.core.signing import Links
from mosic.persistence.models import WholeClip

# Read from the file at upload (null when it has none).
TAG_FIELDS = (
    "track",
    "disc",
    "year",
    "genre",
    "album_artist",
    "bitrate",
    "sample_rate",
    "channels",
)


# Times stay datetimes here: the JSON encoder writes them (``rfc3339``), which for a list is
# orjson's C (20 ns a value, where formatting each in Python was 600 ns: 11 % of a 500-row
# page). Stored times are naive UTC. A clip list's page has an encoder of its own, msgspec's,
# which writes its UTC-aware times alike (``page_json``).
ORJSON_TIMES = orjson.OPT_NAIVE_UTC | orjson.OPT_UTC_Z


def rfc3339(moment: dt.datetime) -> str:
    """The text orjson writes with ``ORJSON_TIMES``: "2026-11-25T14:00:00Z", with the
    microseconds when there are any ("…:00.250000Z")."""
    return moment.isoformat() + "Z"


class ReplayGainJson(TypedDict):
    """ReplayGain 2.0 figures (dB against -18 LUFS, linear peaks), each null until known."""

    track_gain_db: float | None
    track_peak: float | None
    album_gain_db: float | None
    album_peak: float | None


class ClipJson(TypedDict):
    """The clip object of the REST API (its schema is ``Clip`` in openapi.json)."""

    id: str
    title: str
    description: str | None
    duration: float
    artist: str | None
    album: str | None
    content_type: str | None
    size: int | None
    audio_url: str
    stream_url: str
    cover_url: str | None
    waveform_url: str | None
    play_count: int
    created_at: dt.datetime
    track: int | None
    disc: int | None
    year: int | None
    genre: str | None
    album_artist: str | None
    bitrate: int | None
    sample_rate: int | None
    channels: int | None
    source: str
    music_folder: str
    path: str | None
    # The caller's own, beside the global play_count.
    my_play_count: int
    my_last_played_at: dt.datetime | None
    starred: bool
    rating: int
    replay_gain: ReplayGainJson


class ClipStatsJson(ClipJson):
    """``/play/{id}/stats`` (``Stats`` in openapi.json): the clip object and its plays."""

    song_id: str
    last_played_at: dt.datetime | None


class ClipLinks:
    """One clip's id as text and its links, as a clip object shows them."""

    __slots__ = ("id", "stream_path", "stream_url", "waveform_url", "cover_url")

    def __init__(self, clip_id: str, stream_query: str) -> None:
        self.id = clip_id
        self.stream_path = f"/play/{clip_id}/stream"
        self.stream_url = f"{self.stream_path}?{stream_query}"
        self.waveform_url = f"/play/{clip_id}/waveform"
        self.cover_url: str | None = None  # signed when a clip with a cover first asks


class AnswerLinks:
    """The links of one answer's clip objects, for the user ``links`` names, all expiring
    as links made now do. Each clip's texts (its id formatted, its paths, its signed links)
    are made once and kept by the signer for the answers of the same minute and user, so a
    500-row page formats and signs only what it has not shown in that minute (those were a
    third of shaping a row)."""

    __slots__ = ("_links", "_expires", "_kept")

    def __init__(self, links: Links, now: float | None = None) -> None:
        self._links = links
        self._expires = links.signer.expiry(now)
        self._kept = links.signer.kept(self._expires, links.user_id)

    def of(self, clip_id: str, has_cover: bool) -> ClipLinks:
        """The links of the clip whose id, as text, is ``clip_id`` (its cover's too when it
        ``has_cover``)."""
        found = self._kept.get(clip_id)
        if found is None:
            found = self._kept[clip_id] = ClipLinks(clip_id, self._query(clip_id, signing.STREAM))
        if found.cover_url is None and has_cover:
            query = self._query(found.id, signing.COVER)
            found.cover_url = f"/play/{found.id}/cover?{query}"
        return found

    def _query(self, clip_id: str, resource: str) -> str:
        signer, user_id = self._links.signer, self._links.user_id
        return signer.signed_query(resource, clip_id, self._expires, user_id)


def clip_json(clip: WholeClip, links: AnswerLinks, marks: ClipMarks = UNMARKED) -> ClipJson:
    """The clip object; ``marks`` are the caller's (none for a clip it just made)."""
    urls = links.of(str(clip.id), clip.cover_name is not None)
    return {
        "id": urls.id,
        "title": clip.title,
        "description": clip.description,
        "duration": clip.duration,
        "artist": clip.artist,
        "album": clip.album,
        "content_type": clip.content_type,
        "size": clip.size,
        "audio_url": clip.external_url or urls.stream_path,
        "stream_url": urls.stream_url,
        "cover_url": urls.cover_url if clip.cover_name is not None else None,
        "waveform_url": urls.waveform_url if clip.waveform_name else None,
        "play_count": clip.play_count,
        "created_at": clip.created_at,
        "track": clip.track,
        "disc": clip.disc,
        "year": clip.year,
        "genre": clip.genre,
        "album_artist": clip.album_artist,
        "bitrate": clip.bitrate,
        "sample_rate": clip.sample_rate,
        "channels": clip.channels,
        "source": clip.source,
        "music_folder": clip.music_folder,
        "path": clip.path,
        "my_play_count": marks.my_play_count,
        "my_last_played_at": marks.my_last_played_at,
        "starred": marks.starred,
        "rating": marks.rating,
        "replay_gain": {
            "track_gain_db": clip.track_gain_db,
            "track_peak": clip.track_peak,
            "album_gain_db": clip.album_gain_db,
            "album_peak": clip.album_peak,
        },
    }


# A list page's clip objects as msgspec Structs: made in C from a row's values and encoded in
# C, where a dict of 30 keys per row for orjson took a third more of the server's time per
# 500-row page (bench/ab_lists.py); untracked by the cycle collector (they hold only strings,
# numbers and times), so a page brings no collection of the young generation with it. The
# fields are ClipJson's, in its order.
ReplayGainObject = msgspec.defstruct(
    "ReplayGainObject", list(ReplayGainJson.__annotations__), gc=False
)
ClipObject = msgspec.defstruct("ClipObject", list(ClipJson.__annotations__), gc=False)
_encode_page = msgspec.json.Encoder().encode


def page_json(rows: list[tuple], links: AnswerLinks) -> bytes:
    """The JSON of a list page's clip objects, made from its rows as they come
    (``mosic.core.listing.ListedRow``: the id as text, times UTC-aware, the caller's marks)
    with no dict per row: the bytes ``_dump_json`` writes of what ``clip_json`` makes (but
    for a float of 1e16 or more, which msgspec spells 1e16 where orjson spelt 1e+16)."""
    page = []
    for (
        clip_id, title, description, duration, artist, album, content_type, size, external_url,
        play_count, created_at, track, disc, year, genre, album_artist, bitrate, sample_rate,
        channels, cover_name, waveform_name, source, music_folder, path,
        track_gain_db, track_peak, album_gain_db, album_peak,
        my_play_count, my_last_played_at, starred, rating, _matches,
    ) in rows:  # fmt: skip
        urls = links.of(clip_id, cover_name is not None)
        page.append(ClipObject(
            clip_id, title, description, duration, artist, album, content_type, size,
            external_url or urls.stream_path, urls.stream_url,
            urls.cover_url if cover_name is not None else None,
            urls.waveform_url if waveform_name else None,
            play_count, created_at, track, disc, year, genre, album_artist, bitrate,
            sample_rate, channels, source, music_folder, path,
            my_play_count, my_last_played_at, starred, rating,
            ReplayGainObject(track_gain_db, track_peak, album_gain_db, album_peak),
        ))  # fmt: skip
    return _encode_page(page)


def stats_json(clip: WholeClip, links: AnswerLinks, marks: ClipMarks) -> ClipStatsJson:
    return {
        "song_id": str(clip.id),
        "play_count": clip.play_count,
        "last_played_at": clip.last_played_at,
        **clip_json(clip, links, marks),
    }


def next_link(path: str, query: ListQuery, page: Page) -> str | None:
    params = {"limit": query.limit, "sort": query.sort}
    for name in ("q", "genre", "artist", "album", "year", "music_folder", "source"):
        if getattr(query, name) is not None:
            params[name] = getattr(query, name)
    if page.next_offset is not None:
        params["offset"] = page.next_offset
    elif page.next_cursor is not None:
        params["cursor"] = page.next_cursor
    else:
        return None
    return f'<{path}?{urlencode(params)}>; rel="next"'
