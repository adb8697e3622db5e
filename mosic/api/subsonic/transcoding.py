"""OpenSubsonic ``transcoding``: ``getTranscodeDecision`` (POSTed with the client's
capabilities, a ``ClientInfo`` JSON body) says whether the client plays a song's file as it is
or which of Mosic's renditions it should get (the rule is ``mosic.core.transcode_decision``);
``getTranscodeStream`` sends what the decision's ``transcodeParams`` name, from ``offset``
seconds. Its bytes, plays (none: Subsonic apps report listens) and "now playing" are those of
``stream``.
"""

from __future__ import annotations

import json

from mosic.api.params import JSON_DEPTH_MAX, json_depth
from mosic.api.subsonic.call import Call
from mosic.api.subsonic.media import Media, time_offset
from mosic.api.subsonic.request import invalid
from mosic.api.subsonic.response import Code, SubsonicError, not_found
from mosic.core import transcode_decision
from mosic.core.library import Library, NotInLibrary
from mosic.core.transcode_decision import BadClientInfo, Decision, Stream

# A ClientInfo lists a few profiles; this is room for hundreds.
CLIENT_INFO_MAX_BYTES = 64 * 1024
SONG = "song"


class TranscodeMethods:
    def __init__(self, *, library: Library, media: Media) -> None:
        self._library = library
        self._media = media

    def methods(self) -> dict:
        return {"getTranscodeDecision": self.decision, "getTranscodeStream": self.stream}

    async def _song(self, call: Call):
        media_type = call.params.required("mediaType")
        if media_type != SONG:
            raise invalid("mediaType", f"must be {SONG!r} (Mosic has no podcasts)")
        try:
            return await self._library.seen_by(call.folders).song(call.params.required("mediaId"))
        except NotInLibrary:
            raise not_found("song") from None

    async def decision(self, call: Call) -> dict:
        if call.req.method != "POST":
            raise SubsonicError(
                Code.GENERIC,
                "getTranscodeDecision is a POST, with the client's capabilities "
                "(OpenSubsonic ClientInfo) as its JSON body",
            )
        clip = await self._song(call)
        info = await _client_info(call.req)
        suffix = transcode_decision.suffix_of(clip.file_name)
        source = transcode_decision.source_stream(
            suffix, clip.channels, clip.bitrate, clip.sample_rate
        )
        try:
            decided = transcode_decision.decide(info, source)
        except BadClientInfo as exc:
            raise SubsonicError(Code.GENERIC, f"the ClientInfo body: {exc}") from None
        return {"transcodeDecision": _answer(decided, source)}

    async def stream(self, call: Call) -> None:
        params = call.params.required("transcodeParams")
        start_s = time_offset(call.params, "offset")
        clip = await self._song(call)
        try:
            rendition = transcode_decision.rendition_of(params)
        except ValueError as exc:
            raise invalid("transcodeParams", str(exc)) from None
        if rendition is None and start_s:
            raise invalid("offset", "needs a transcode: the original seeks by Range")
        await self._media.send_stream(call, clip, rendition, start_s)


def _answer(decided: Decision, source: Stream) -> dict:
    answer = {
        "canDirectPlay": decided.direct,
        "canTranscode": decided.rendition is not None,
        "transcodeReason": decided.reasons,
        "errorReason": decided.error,
        "transcodeParams": decided.params,
        "sourceStream": source.details(),
    }
    if decided.rendition is not None:
        target = transcode_decision.target_stream(decided.rendition, source)
        answer["transcodeStream"] = target.details()
    return answer


async def _client_info(req) -> dict:
    """The POSTed ClientInfo, read no further than ``CLIENT_INFO_MAX_BYTES``."""
    data = await req.stream.read(CLIENT_INFO_MAX_BYTES + 1)
    if not data.strip():
        raise SubsonicError(
            Code.MISSING_PARAMETER, "the client's capabilities (a ClientInfo JSON body) are missing"
        )
    if len(data) > CLIENT_INFO_MAX_BYTES:
        raise invalid("body", f"must be at most {CLIENT_INFO_MAX_BYTES // 1024} kB of JSON")
    if json_depth(data) > JSON_DEPTH_MAX:
        raise invalid("body", f"nests deeper than {JSON_DEPTH_MAX} levels")
    try:
        return json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise invalid("body", f"is not JSON: {exc}") from None
