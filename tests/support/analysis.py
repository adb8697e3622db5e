"""Waiting for an upload's loudness: what its tags lack is measured a moment after its 201
(``mosic.core.analysis``), as a client sees it: ``replay_gain.track_peak`` turns from null
to a figure (every audible signal the tests make has a peak)."""

from __future__ import annotations

import asyncio
import os
import time

from tests.support.server import wait_for

ANALYSIS_WAIT_S = 60


def _measured(clip: dict) -> bool:
    return clip["replay_gain"]["track_peak"] is not None


async def once_measured(api, clip_id: str) -> dict:
    """The clip, once its loudness is known (an in-process ``api``)."""
    deadline = time.monotonic() + ANALYSIS_WAIT_S
    while True:
        clip = (await api.get(f"/play/{clip_id}")).json
        if _measured(clip):
            return clip
        assert time.monotonic() < deadline, f"clip {clip_id} was not measured: {clip}"
        await asyncio.sleep(0.02)


async def once_drawn(api, clip_id: str) -> dict:
    """The clip, once its peaks are drawn (an in-process ``api``): a long upload's come after
    its 201, with its loudness."""
    deadline = time.monotonic() + ANALYSIS_WAIT_S
    while True:
        clip = (await api.get(f"/play/{clip_id}")).json
        if clip["waveform_url"] is not None:
            return clip
        assert time.monotonic() < deadline, f"clip {clip_id} has no peaks: {clip}"
        await asyncio.sleep(0.02)


def measured_on(server, clip_id: str) -> dict:
    """The clip, once its loudness is known (a real server)."""

    def known() -> dict | None:
        clip = server.get(f"/play/{clip_id}").json()
        return clip if _measured(clip) else None

    return wait_for(f"the loudness of clip {clip_id}", known, ANALYSIS_WAIT_S, server.log)


def who_reads(fileobj) -> tuple[int, int, bytes]:
    """A reader for ``MediaStore.inspect``: the process it runs in, that process' nice value
    and the file's first bytes (a module function, so it pickles to a worker process)."""
    return os.getpid(), os.nice(0), fileobj.read(4)


def dies(fileobj) -> None:
    """A reader whose process dies, as one killed for its memory would."""
    os._exit(3)
