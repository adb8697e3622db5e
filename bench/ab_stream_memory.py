"""Two versions' memory under 200 streams of a 500 MiB file, and their stream rate, measured in
the same run.

One throwaway PostgreSQL, one stored 500 MiB WAV and one of 5 MiB; then, ``--rounds`` times,
for A (``mosic`` imported from ``--before``, another checkout) and B (this checkout) in turn: a
fresh ``mosic serve`` (one worker, pinned to CPU 0; wrk and PostgreSQL on CPU 1) on that
database and media, one short stream to warm the path, then wrk holding 200 connections that
stream the big file for ``--seconds``. Reported: the server's VmRSS growth (peak, sampled every
20 ms, over its idle baseline), as bench/suite.py's memory figure, and the aggregate MiB/s.
Then, in another fresh server, the suite's stream rate: wrk, 16 connections, whole GETs of
the 5 MiB file (each a counted play) for ``--stream-seconds`` after a 1 s warm-up: MiB/s and
the server's CPU seconds per GiB. A phase given 0 seconds is skipped.

Run: ``python -m bench.ab_stream_memory --before /path/to/other/checkout``
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

from bench.common import API_KEY, MiB, group_cpu_seconds, log, temp_dir, upload_streamed
from bench.load import wrk
from bench.scale import fresh_database
from bench.suite import MEMORY_CLIENTS, STREAM_CONNECTIONS, pin_postgres, pin_server
from tests.support.audio import make_wav_of_size
from tests.support.measure import RssSampler
from tests.support.postgres import throwaway_cluster
from tests.support.server import mosic_serve

FILE_MIB = 500
SMALL_MIB = 5
WARMUP_S = 1


@dataclass(frozen=True)
class Run:
    """What one checkout's fresh server did (``stream_mib_s`` 0 when not measured)."""

    baseline_mib: float
    growth_mib: float
    memory_mib_s: float
    stream_mib_s: float
    stream_cpu_s_per_gib: float


@contextlib.contextmanager
def server(name: str, where: Path | None, root: Path, url: str, media: Path,
           env: dict[str, str]):  # fmt: skip
    """A fresh ``mosic serve`` (one worker, pinned) of ``where`` on the shared data."""
    data = root / f"{name}-{time.monotonic_ns()}"
    settings = {"MOSIC_DATABASE_URL_OVERRIDE": url, "MOSIC_MEDIA_ROOT": str(media), **env}
    with mosic_serve(data, "--workers", "1", api_key=API_KEY, pythonpath=where, **settings) as s:
        pin_server(s.pid)
        yield s


def memory(s, clip_id: str, secs: float, scratch: Path) -> tuple[float, float, float]:
    """(idle RSS, its growth under 200 streams of ``clip_id``, their MiB/s)."""
    path = f"/play/{clip_id}/stream"
    s.get(path, headers={"Range": "bytes=0-1023"})  # warm the stream path
    with RssSampler(s.pid) as rss:
        baseline = rss.baseline_mib()
        began = time.monotonic()
        result = wrk(s.base, [path], connections=MEMORY_CLIENTS, seconds=secs,
                     headers=s.headers, scratch=scratch, timeout_s=60)  # fmt: skip
        peak, _ = rss.peak_mib(began)
    return baseline, peak - baseline, result.mib_s


def stream_rate(s, clip_id: str, secs: float, scratch: Path) -> tuple[float, float]:
    """(MiB/s, server CPU seconds per GiB) of whole GETs of ``clip_id`` over the suite's 16
    connections, after a warm-up. The CPU figure tells more than the rate when others load
    the machine: it does not count the time the server waited for its core."""
    path = f"/play/{clip_id}/stream"
    wrk(s.base, [path], connections=STREAM_CONNECTIONS, seconds=WARMUP_S, headers=s.headers,
        scratch=scratch)  # fmt: skip
    cpu_before = group_cpu_seconds(os.getpgid(s.pid))
    result = wrk(s.base, [path], connections=STREAM_CONNECTIONS, seconds=secs,
                 headers=s.headers, scratch=scratch)  # fmt: skip
    cpu = group_cpu_seconds(os.getpgid(s.pid)) - cpu_before
    return result.mib_s, cpu / (result.nbytes / 2**30) if result.nbytes else 0.0


def one(name: str, where: Path | None, root: Path, url: str, media: Path, clips: tuple[str, str],
        secs: tuple[float, float], env: dict[str, str]) -> Run:  # fmt: skip
    """A fresh server's RSS growth under 200 streams of ``clips[0]``, then another's rate
    streaming ``clips[1]`` (its own server: the first may still be busy with streams whose
    listeners left); ``secs`` are the two loads' durations."""
    baseline = growth = mib_s = rate = cpu = 0.0
    if secs[0] > 0:
        with server(name, where, root, url, media, env) as s:
            baseline, growth, mib_s = memory(s, clips[0], secs[0], root)
    if secs[1] > 0:
        with server(name, where, root, url, media, env) as s:
            rate, cpu = stream_rate(s, clips[1], secs[1], root)
    return Run(baseline, growth, mib_s, rate, cpu)


def stored(seed, path: Path) -> str:
    """Upload ``path`` (a WAV) to ``seed`` and remove it; the new clip's id."""
    response, _ = upload_streamed(seed, path, "audio/wav", timeout=600)
    response.raise_for_status()
    path.unlink()
    return response.json()["id"]


def describe(run: Run) -> str:
    return (
        f"RSS {run.baseline_mib:.1f} MiB +{run.growth_mib:.1f} MiB, "
        f"{run.memory_mib_s:,.0f} MiB/s; {SMALL_MIB} MiB x {STREAM_CONNECTIONS} conns "
        f"{run.stream_mib_s:,.0f} MiB/s, {run.stream_cpu_s_per_gib:.2f} CPU s/GiB"
    )


def summarise(runs: dict[str, list[Run]]) -> None:
    growth = {n: statistics.median(r.growth_mib for r in runs[n]) for n in runs}
    rate = {n: statistics.median(r.stream_mib_s for r in runs[n]) for n in runs}
    cpu = {n: statistics.median(r.stream_cpu_s_per_gib for r in runs[n]) for n in runs}
    ratio = rate["B"] / rate["A"] if rate["A"] else 0.0
    log(f"median growth A +{growth['A']:.1f} MiB, B +{growth['B']:.1f} MiB; median stream "
        f"rate A {rate['A']:,.0f}, B {rate['B']:,.0f} MiB/s (B/A {ratio:.2f}), "
        f"CPU A {cpu['A']:.2f}, B {cpu['B']:.2f} s/GiB")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--before", type=Path, required=True, help="checkout A imports from")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--stream-seconds", type=float, default=5)
    parser.add_argument("--env", action="append", default=[], help="NAME=VALUE for B only")
    args = parser.parse_args()
    with contextlib.ExitStack() as stack:
        root = stack.enter_context(temp_dir("mosic-ab-memory-"))
        cluster = stack.enter_context(throwaway_cluster())
        pin_postgres(cluster)
        url = stack.enter_context(fresh_database(cluster, "mosic_ab_memory"))
        seed = stack.enter_context(
            mosic_serve(
                root / "seed",
                api_key=API_KEY,
                MOSIC_DATABASE_URL_OVERRIDE=url,
                MOSIC_MAX_UPLOAD_MB=str(FILE_MIB + 100),
            )
        )
        clips = (
            stored(seed, make_wav_of_size(root / "big.wav", FILE_MIB * MiB)),
            stored(seed, make_wav_of_size(root / "small.wav", SMALL_MIB * MiB)),
        )
        media, secs = seed.data_dir / "media", (args.seconds, args.stream_seconds)
        runs: dict[str, list[Run]] = {"A": [], "B": []}
        for round_ in range(args.rounds):
            for name, where in (("A", args.before), ("B", None)):
                env = dict(e.split("=", 1) for e in args.env) if name == "B" else {}
                run = one(name, where, root, url, media, clips, secs, env)
                runs[name].append(run)
                log(f"round {round_ + 1} {name}: {describe(run)}")
        summarise(runs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
