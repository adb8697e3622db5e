"""Bytes and listens: ``stream``, ``download``, ``getCoverArt``, ``scrobble``,
``reportPlayback`` and ``getNowPlaying``.

Subsonic apps report their listens themselves (``scrobble``, or OpenSubsonic playback reports,
whose rule is ``mosic.core.reports``), so ``stream`` and ``download`` count nothing: an app's
listen is counted exactly once, through the one ``PlayRecorder`` that ``/play/{id}/stats`` and
``mosic_plays_total`` see, for the caller and globally. A stream from its start, a scrobble or
a playback report shows the song as the caller's "now playing" on that player (``c``).

``stream``'s ``timeOffset`` (OpenSubsonic ``transcodeOffset``) starts a transcode that many
seconds into the song; it is a seek, so it is no new "now playing" either.
"""

from __future__ import annotations

from pathlib import PurePosixPath

from mosic.api.serving import ByteServer
from mosic.api.subsonic import shapes
from mosic.api.subsonic.call import Call
from mosic.api.subsonic.request import Params, invalid
from mosic.api.subsonic.response import missing, not_found
from mosic.api.subsonic.shapes import MarksLoader
from mosic.core.covers import NoCover
from mosic.core.library import ALBUM_PREFIX, Library, NotInLibrary
from mosic.core.listening import Listening
from mosic.core.plays import PlayRecorder
from mosic.core.reports import PLAYBACK_RATE_MAX, STATES, PlaybackReports, Report
from mosic.media import transcode
from mosic.media.storage import MediaMissing
from mosic.media.transcode import Rendition
from mosic.persistence.models import Clip, utcnow

COVER_SIZE_MAX = 4096
MAX_BIT_RATE_MAX = 10_000
# The original, untouched (Subsonic's name for it).
RAW = "raw"
# A lower bitrate with no format asked is sent as MP3, which every Subsonic app plays.
DEFAULT_TRANSCODE = transcode.FORMATS["mp3"]
POSITION_MS_MAX = 2**62
# The one kind of media a playback report may name here (Mosic has no podcasts).
SONG = "song"


def stream_rendition(
    clip, format_name: str | None, max_kbps: int, *, seeking: bool = False
) -> Rendition | None:
    """What ``stream`` sends: the asked format at ``maxBitRate`` (or its default), or MP3
    when only a bitrate below the file's is asked; None for the original. A format Mosic
    does not make (an app's flv or aac) gets the original, which every app plays, unless
    the app is ``seeking`` (a ``timeOffset``): only a transcode starts later in the song, so
    that is MP3. ``raw`` is always the original, untouched (its offset is ignored)."""
    fmt = transcode.FORMATS.get(format_name or RAW)
    if fmt is None:
        lower = max_kbps and clip.bitrate and clip.bitrate > max_kbps
        if format_name == RAW or not (lower or seeking):
            return None
        fmt = DEFAULT_TRANSCODE
    kbps = min(max_kbps or fmt.default_kbps, transcode.BITRATE_MAX_KBPS)
    return Rendition(fmt, max(kbps, transcode.BITRATE_MIN_KBPS))


class Media:
    def __init__(
        self,
        *,
        library: Library,
        plays: PlayRecorder,
        serving: ByteServer,
        listening: Listening,
        reports: PlaybackReports,
        marks: MarksLoader,
    ) -> None:
        self._library = library
        self._plays = plays
        self._reports = reports
        self._serving = serving
        self._listening = listening
        self._marks = marks

    def methods(self) -> dict:
        return {
            "stream": self.stream,
            "download": self.download,
            "getCoverArt": self.cover_art,
            "scrobble": self.scrobble,
            "reportPlayback": self.report_playback,
            "getNowPlaying": self.now_playing,
        }

    async def _song(self, call: Call):
        try:
            return await self._library.seen_by(call.folders).song(call.params.required("id"))
        except NotInLibrary:
            raise not_found("song") from None

    async def _send(
        self, call: Call, clip, rendition: Rendition | None, start_s: float = 0.0
    ) -> None:
        try:
            # Subsonic plays are counted by scrobble alone.
            await self._serving.clip(
                call.req, call.resp, clip, counts_plays=False, rendition=rendition, start_s=start_s
            )
        except MediaMissing:
            raise not_found("the song's audio file") from None

    async def stream(self, call: Call) -> None:
        max_kbps = call.params.integer("maxBitRate", 0, 0, MAX_BIT_RATE_MAX)
        start_s = time_offset(call.params, "timeOffset")
        clip = await self._song(call)
        fmt = call.params.one("format")
        rendition = stream_rendition(clip, fmt, max_kbps, seeking=start_s > 0)
        await self.send_stream(call, clip, rendition, start_s if rendition else 0.0)

    async def send_stream(
        self, call: Call, clip, rendition: Rendition | None, start_s: float = 0.0
    ) -> None:
        """A song's audio, or ``rendition`` of it from ``start_s`` seconds: the caller's "now
        playing" when it is the start of a listen (from byte 0, and from the song's start)."""
        from_the_start = _from_the_start(call.req.get_header("Range")) and not start_s
        if call.req.method == "GET" and from_the_start:
            await self._listening.playing(call.caller.user.id, call.client, clip.id)
        await self._send(call, clip, rendition, start_s)

    async def download(self, call: Call) -> None:
        clip = await self._song(call)
        await self._send(call, clip, None)
        suffix = PurePosixPath(clip.file_name).suffix
        call.resp.downloadable_as = f"{clip.title}{suffix}"

    async def cover_art(self, call: Call) -> None:
        item_id = call.params.required("id")
        size = call.params.integer("size", None, 1, COVER_SIZE_MAX)
        clip = await self._covered(self._library.seen_by(call.folders), item_id)
        if clip is None:
            raise not_found(f"cover art {item_id!r}")
        try:
            await self._serving.cover(call.req, call.resp, clip, size)
        except NoCover:
            raise not_found(f"cover art {item_id!r}") from None

    async def _covered(self, library: Library, item_id: str) -> Clip | None:
        """The song with that id, or the album's first song with a cover; None if neither
        (or if ``library`` does not hold it)."""
        if item_id.startswith(ALBUM_PREFIX):
            try:
                album = await library.album(item_id)
            except NotInLibrary:
                return None
            if album.cover_clip_id is None:
                return None
            item_id = str(album.cover_clip_id)
        songs = await library.songs_by_id([item_id])
        return songs[0] if songs and songs[0].cover_name else None

    async def scrobble(self, call: Call) -> dict:
        ids = call.params.all("id")
        if not ids:
            raise missing("id")
        songs = await self._library.seen_by(call.folders).songs_by_id(ids)
        if len(songs) != len(ids):
            raise not_found("song")  # nothing counted: all or none
        user = call.caller.user
        if call.params.flag("submission", True):
            for clip in songs:
                await self._plays.record(clip.id, user)
        else:  # "now playing": the last song named
            await self._listening.playing(user.id, call.client, songs[-1].id)
        return {}

    async def report_playback(self, call: Call) -> dict:
        """OpenSubsonic ``playbackReport``: where the caller's player is in a song; the
        song becomes its "now playing" there, and the listen may count a play (the rule
        and how it counts once: ``mosic.core.reports``)."""
        p = call.params
        media_id = p.required("mediaId")
        media_type = p.required("mediaType")
        p.required("positionMs")
        position_ms = p.integer("positionMs", 0, 0, POSITION_MS_MAX)
        state = p.required("state")
        if state not in STATES:
            raise invalid("state", f"must be one of {', '.join(STATES)}, got {state!r}")
        rate = _playback_rate(p.one("playbackRate"))
        ignore = p.flag("ignoreScrobble", False)
        if media_type != SONG:
            raise not_found(f"{media_type} {media_id!r}")
        try:
            clip = await self._library.seen_by(call.folders).song(media_id)
        except NotInLibrary:
            raise not_found("song") from None
        report = Report(clip.id, clip.duration, state, position_ms, rate, ignore)
        await self._reports.report(call.caller.user, call.client, report)
        return {}

    async def now_playing(self, call: Call) -> dict:
        """What every user plays now, of the songs the caller may see."""
        playing = await self._listening.now_playing()
        seen_songs = self._library.seen_by(call.folders)
        songs = await seen_songs.songs_by_id([str(p.clip_id) for p in playing])
        by_id = {clip.id: clip for clip in songs}
        marks = await self._marks(call.caller.user.id, songs)
        # Players are numbered in the answer: a user's player keeps its number while it plays.
        seen = dict.fromkeys((p.user, p.player) for p in playing)
        players = {key: n for n, key in enumerate(sorted(seen), start=1)}
        now = utcnow()
        entries = [
            shapes.now_playing(p, shapes.song(by_id[p.clip_id], marks), players[key], now)
            for p in playing
            if p.clip_id in by_id and (key := (p.user, p.player))
        ]
        return {"nowPlaying": {"entry": entries}}


def _playback_rate(raw: str | None) -> float:
    if raw is None or raw == "":
        return 1.0
    try:
        rate = float(raw)
    except ValueError:
        raise invalid("playbackRate", f"must be a number, got {raw!r}") from None
    if not 0 <= rate <= PLAYBACK_RATE_MAX:  # also refuses nan
        raise invalid("playbackRate", f"must be between 0 and {PLAYBACK_RATE_MAX:g}")
    return rate


def time_offset(params: Params, name: str) -> float:
    """Where the song starts, in seconds (0 when ``name`` is absent or empty)."""
    raw = params.one(name)
    if raw is None or raw == "":
        return 0.0
    try:
        return transcode.start_offset(raw)
    except ValueError as exc:
        raise invalid(name, str(exc)) from None


def _from_the_start(range_header: str | None) -> bool:
    """A request for the song from its first byte: the start of a listen, not a seek."""
    return not range_header or range_header.replace(" ", "").startswith("bytes=0-")
