"""Two versions' memory under 200 streams of a 500 MiB file, measured in the same run.

One throwaway PostgreSQL and one stored 500 MiB WAV; then, ``--rounds`` times, for A (``mosic``
imported from ``--before``, another checkout) and B (this checkout) in turn: a fresh
``mosic serve`` (one worker, pinned to CPU 0; wrk and PostgreSQL on CPU 1) on that database
and media, one short stream to warm the path, then wrk holding 200 connections that stream the
file for ``--seconds``. Reported: the server's VmRSS growth (peak, sampled every 20 ms, over
its idle baseline), as bench/suite.py's memory figure, and the aggregate MiB/s.

Run: ``python -m bench.ab_stream_memory --before /path/to/other/checkout``
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time
from pathlib import Path

from bench.common import API_KEY, MiB, log, temp_dir, upload_streamed
from bench.load import wrk
from bench.scale import fresh_database
from bench.suite import MEMORY_CLIENTS, pin_postgres, pin_server
from tests.support.audio import make_wav_of_size
from tests.support.measure import RssSampler
from tests.support.postgres import throwaway_cluster
from tests.support.server import mosic_serve

FILE_MIB = 500


def one(name: str, where: Path | None, root: Path, url: str, media: Path, clip_id: str, secs,
        env: dict[str, str]):  # fmt: skip
    """A fresh server's RSS growth (MiB) and MiB/s under the load."""
    data = root / f"{name}-{time.monotonic_ns()}"
    settings = {"MOSIC_DATABASE_URL_OVERRIDE": url, "MOSIC_MEDIA_ROOT": str(media), **env}
    with mosic_serve(data, "--workers", "1", api_key=API_KEY, pythonpath=where, **settings) as s:
        pin_server(s.pid)
        path = f"/play/{clip_id}/stream"
        s.get(path, headers={"Range": "bytes=0-1023"})  # warm the stream path
        with RssSampler(s.pid) as rss:
            baseline = rss.baseline_mib()
            began = time.monotonic()
            result = wrk(s.base, [path], connections=MEMORY_CLIENTS, seconds=secs,
                         headers=s.headers, scratch=root, timeout_s=60)  # fmt: skip
            peak, _ = rss.peak_mib(began)
    return peak - baseline, result.mib_s, baseline


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--before", type=Path, required=True, help="checkout A imports from")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=8)
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
        wav = make_wav_of_size(root / "big.wav", FILE_MIB * MiB)
        response, _ = upload_streamed(seed, wav, "audio/wav", timeout=600)
        response.raise_for_status()
        wav.unlink()
        clip_id, media = response.json()["id"], seed.data_dir / "media"
        grown: dict[str, list[float]] = {"A": [], "B": []}
        for round_ in range(args.rounds):
            for name, where in (("A", args.before), ("B", None)):
                env = dict(e.split("=", 1) for e in args.env) if name == "B" else {}
                growth, rate, base = one(name, where, root, url, media, clip_id, args.seconds, env)
                grown[name].append(growth)
                log(f"round {round_ + 1} {name}: RSS {base:.1f} MiB +{growth:.1f} MiB, "
                    f"{rate:,.0f} MiB/s")  # fmt: skip
        a, b = statistics.median(grown["A"]), statistics.median(grown["B"])
        log(f"median growth A +{a:.1f} MiB, B +{b:.1f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
