"""A worker's periodic jobs (the partial-upload sweep, scheduled backups, the library's
rescan) as an operator relies on them: they come round on their interval, a failed round is
one log line and not the end of the job, and shutdown does not wait for them."""

from __future__ import annotations

import asyncio
import logging
import time

from mosic.core.periodic import Periodic

INTERVAL = 0.02


async def test_a_job_runs_on_its_interval_first_after_one_interval():
    runs: list[float] = []

    async def job() -> None:
        runs.append(time.monotonic())

    started = time.monotonic()
    periodic = Periodic(job, INTERVAL, name="counting")
    periodic.start()
    await asyncio.sleep(INTERVAL * 6)
    await periodic.stop()
    assert 3 <= len(runs) <= 7
    assert runs[0] - started >= INTERVAL * 0.9  # not at start


async def test_a_job_asked_to_runs_at_once_at_start():
    runs: list[float] = []

    async def job() -> None:
        runs.append(time.monotonic())

    periodic = Periodic(job, 60, name="at start", at_start=True)
    periodic.start()
    await asyncio.sleep(INTERVAL)
    await periodic.stop()
    assert len(runs) == 1


async def test_a_failed_round_is_logged_and_the_next_one_runs(caplog):
    rounds = 0

    async def job() -> None:
        nonlocal rounds
        rounds += 1
        if rounds == 1:
            raise OSError("the disk is full")

    with caplog.at_level(logging.ERROR, logger="mosic.core.periodic"):
        periodic = Periodic(job, INTERVAL, name="backing up", at_start=True)
        periodic.start()
        await asyncio.sleep(INTERVAL * 4)
        await periodic.stop()
    assert rounds >= 2
    failures = [r.getMessage() for r in caplog.records]
    assert failures == ["backing up failed: the disk is full"]


async def test_stop_returns_at_once_while_a_round_or_the_wait_is_under_way():
    in_round = asyncio.Event()

    async def slow_job() -> None:
        in_round.set()
        await asyncio.sleep(60)

    for job, at_start in ((slow_job, True), (slow_job, False)):
        periodic = Periodic(job, 60, name="slow", at_start=at_start)
        periodic.start()
        await asyncio.sleep(0)
        if at_start:
            await asyncio.wait_for(in_round.wait(), 1)
        asked = time.monotonic()
        await asyncio.wait_for(periodic.stop(), 1)
        assert time.monotonic() - asked < 0.5
    await periodic.stop()  # a second stop is harmless
