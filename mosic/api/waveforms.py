"""``GET /play/{clip_id}/waveform``: the clip's peaks in the audiowaveform formats.

``points`` picks the resolution (``mosic.core.waveform.Peaks.resample``); ``format=dat`` gives
the binary ``.dat`` file instead of JSON. Stored peaks never change, so the ETag is derived
from their name (the audio's hash) and what was asked; the cache policy is
``mosic.api.serving``'s.
"""

from __future__ import annotations

import hashlib
import json
import uuid

from mosic.api.errors import bad_request
from mosic.api.params import int_param
from mosic.api.serving import Validators, send_whole
from mosic.core import waveform
from mosic.core.catalogue import Catalogue
from mosic.core.waveform import Waveforms

FORMATS = {"json": "application/json", "dat": "application/octet-stream"}


class ClipWaveform:
    def __init__(self, *, catalogue: Catalogue, waveforms: Waveforms) -> None:
        self._catalogue = catalogue
        self._waveforms = waveforms

    async def on_get(self, req, resp, clip_id: uuid.UUID) -> None:
        points = int_param(req, "points", 1, waveform.POINTS_MAX) or waveform.DEFAULT_POINTS
        kind = req.get_param("format") or "json"
        if kind not in FORMATS:
            raise bad_request(f"'format' must be json or dat, got {kind!r}")
        clip = await self._catalogue.get(clip_id, seen=req.context.grant.folders)
        peaks = await self._waveforms.get(clip)  # NoWaveform is a 404 (errors.py)
        asked = f"{clip.waveform_name}:{points}:{kind}".encode()
        validators = Validators.of(clip, hashlib.sha256(asked).hexdigest(), FORMATS[kind])
        send_whole(req, resp, validators, lambda: _body(peaks.resample(points), kind))


def _body(shown: waveform.Peaks, kind: str) -> bytes:
    if kind == "dat":
        return shown.to_dat()
    return json.dumps(shown.to_json(), separators=(",", ":")).encode()
