"""What counts as a play, and the one place a play is counted.

One listen counts once: a GET from byte 0 that is not a probe. Seeks (a range from a later
byte, or a transcode started later in the song), HEAD, 304s and failed requests never count.
Every API family counts through ``PlayRecorder``: REST streams by this rule (applied where
bytes are served, ``mosic.api.serving``), Subsonic apps by ``scrobble``, which reports the
listen itself, or by playback reports (``mosic.core.reports``), whose listen counts once a
report reaches ``reaches_a_play``; so the database counter and ``mosic_plays_total`` always
agree.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from mosic.core.counting import PlayCounts
from mosic.core.keys import User
from mosic.media.ranges import ByteRange
from mosic.persistence.models import utcnow

if TYPE_CHECKING:
    from mosic.observability.metrics import Metrics

# A range that starts at 0 and ends before this byte, without covering the whole file, is a
# probe (Safari asks for bytes=0-1 before it decides to play), not a listen.
PROBE_END_BEFORE = 65535


def counts_as_play(
    method: str, byte_range: ByteRange | None, size: int, start_s: float = 0.0
) -> bool:
    """Whether a stream request is a listen: a GET from byte 0, and from the song's start
    (``start_s``, where a transcode begins), that is not a probe."""
    if method != "GET" or start_s > 0:
        return False  # a transcode started later is a seek within a listen
    if byte_range is None:
        return True
    if byte_range.start != 0:
        return False  # a seek within a listen already counted
    covers_whole_file = byte_range.end >= size - 1
    return covers_whole_file or byte_range.end >= PROBE_END_BEFORE


# A reported listen is a play once its position reaches half the song or this many seconds,
# whichever comes first (the scrobbling rule players and Last.fm use).
PLAY_AFTER_SHARE = 0.5
PLAY_AFTER_S = 240


def reaches_a_play(position_ms: int, duration_s: float | None) -> bool:
    """Whether a playback report at ``position_ms`` into a song of ``duration_s`` seconds has
    heard enough of it to count a play (a song of unknown length: ``PLAY_AFTER_S``)."""
    enough_s = PLAY_AFTER_S
    if duration_s and duration_s > 0:
        enough_s = min(duration_s * PLAY_AFTER_SHARE, PLAY_AFTER_S)
    return position_ms >= enough_s * 1000


class PlayRecorder:
    """Counts a play in the database (globally and for its listener, atomically: see
    ``mosic.core.counting``) and in the metrics."""

    def __init__(self, *, counts: PlayCounts, metrics: Metrics) -> None:
        self._counts = counts
        self._metrics = metrics

    async def record(
        self, clip_id: uuid.UUID, user: User | None, player: str | None = None
    ) -> bool:
        """Count one play by ``user`` (None: nobody's, an old signed link), which starts now
        on ``player`` when given; False when the clip is gone (nothing was counted)."""
        user_id = user.id if user else None
        counted = await self._counts.count(clip_id, user_id, utcnow(), player)
        if counted:
            self._metrics.play()
        return counted
