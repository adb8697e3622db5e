"""Waiting for an upload's analysis: its peaks and measured loudness come a moment after its
201 (``mosic.core.analysis``), as a client sees them: ``waveform_url`` turns from null to
the clip's waveform."""

from __future__ import annotations

import asyncio
import time

from tests.support.server import wait_for

ANALYSIS_WAIT_S = 60


async def analysed(api, clip_id: str) -> dict:
    """The clip, once its peaks are drawn (an in-process ``api``)."""
    deadline = time.monotonic() + ANALYSIS_WAIT_S
    while True:
        clip = (await api.get(f"/play/{clip_id}")).json
        if clip["waveform_url"] is not None:
            return clip
        assert time.monotonic() < deadline, f"clip {clip_id} was not analysed: {clip}"
        await asyncio.sleep(0.02)


def analysed_on(server, clip_id: str) -> dict:
    """The clip, once its peaks are drawn (a real server)."""

    def drawn() -> dict | None:
        clip = server.get(f"/play/{clip_id}").json()
        return clip if clip["waveform_url"] is not None else None

    return wait_for(f"the analysis of clip {clip_id}", drawn, ANALYSIS_WAIT_S, server.log)
