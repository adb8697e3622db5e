"""Transcoding: how fast a rendition is made, against the ffmpeg command line.

Reference: Debian's ``ffmpeg`` encoding the same source to the same codec, bitrate and
container (``-f ogg`` / ``-f mp3`` to /dev/null), in the same run.

Ours: a real ``mosic serve`` (``--workers 1``) answering ``GET /play/{id}/stream?format=…``
for a 5-minute stereo 44.1 kHz FLAC of a tone over noise: the first, progressive request
(time to first byte, whole-rendition time as a multiple of real time, server CPU seconds),
then the same request from the cache. The cached rendition is removed between runs so each
first request encodes again. Reported: medians of ``RUNS`` runs.

Run: ``python -m bench.transcode``
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

if __package__ in (None, ""):  # run as a file: python bench/transcode.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (  # noqa: E402
    Row,
    arguments,
    group_cpu_seconds,
    log,
    mosic_server,
    report,
    temp_dir,
)

SOURCE_SECONDS = 300
RUNS = 3
CASES = (("opus", 96, ["-c:a", "libopus", "-b:a", "96k", "-vbr", "constrained", "-f", "ogg"]),
         ("mp3", 128, ["-c:a", "libmp3lame", "-b:a", "128k", "-f", "mp3"]))  # fmt: skip
TIMEOUT_S = 300


def make_source(path: Path) -> Path:
    subprocess.run(
        ["ffmpeg", "-nostdin", "-loglevel", "error", "-y",
         "-f", "lavfi", "-i", f"sine=frequency=440:duration={SOURCE_SECONDS}",
         "-f", "lavfi", "-i", f"anoisesrc=d={SOURCE_SECONDS}:a=0.1",
         "-filter_complex", "amix=inputs=2", "-ac", "2", "-ar", "44100", "-c:a", "flac",
         str(path)],
        check=True,
    )  # fmt: skip
    return path


def reference_seconds(source: Path, encoder: list[str]) -> float:
    began = time.perf_counter()
    subprocess.run(
        ["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-i", str(source), *encoder,
         "/dev/null"],
        check=True,
    )  # fmt: skip
    return time.perf_counter() - began


def first_listen(server, url: str) -> tuple[float, float, float, int, bool]:
    """(seconds to first byte, seconds in all, server CPU seconds, bytes, chunked)."""
    cpu = group_cpu_seconds(server.pid)
    began = time.perf_counter()
    first_byte, size = None, 0
    with httpx.stream("GET", url, headers=server.headers, timeout=TIMEOUT_S) as resp:
        resp.raise_for_status()
        chunked = "content-length" not in resp.headers
        for chunk in resp.iter_raw():
            first_byte = first_byte or time.perf_counter() - began
            size += len(chunk)
    elapsed = time.perf_counter() - began
    return first_byte or elapsed, elapsed, group_cpu_seconds(server.pid) - cpu, size, chunked


def main() -> None:
    args = arguments(__doc__.splitlines()[0])
    rows = []
    with temp_dir("mosic-bench-transcode-") as tmp:
        source = make_source(tmp / "source.flac")
        with mosic_server(tmp / "data") as server:
            with source.open("rb") as fh:
                clip = httpx.post(
                    server.base + "/play/upload",
                    headers=server.headers,
                    files={"file": (source.name, fh, "audio/flac")},
                    timeout=TIMEOUT_S,
                ).json()
            for fmt, kbps, encoder in CASES:
                rows.append(_case(server, tmp, source, clip["id"], fmt, kbps, encoder))
    report(rows, args.json)


def _case(server, tmp: Path, source: Path, clip_id: str, fmt: str, kbps: int, encoder) -> Row:
    url = f"{server.base}/play/{clip_id}/stream?format={fmt}&bitrate={kbps}"
    refs, ttfb, totals, cpus, cached = [], [], [], [], []
    problems = []
    for run in range(1, RUNS + 1):
        refs.append(reference_seconds(source, encoder))
        first, total, cpu, size, chunked = first_listen(server, url)
        ttfb.append(first)
        totals.append(total)
        cpus.append(cpu)
        if not chunked:
            problems.append(f"run {run}: the first answer was not progressive")
        began = time.perf_counter()
        again = httpx.get(url, headers=server.headers, timeout=TIMEOUT_S)
        cached.append(time.perf_counter() - began)
        if again.headers.get("content-length") != str(size):
            problems.append(f"run {run}: the second answer was not the cached {size} bytes")
        log(
            f"{fmt} run {run}: ffmpeg {refs[-1]:.2f} s; first byte {first * 1000:.0f} ms, "
            f"whole {total:.2f} s, server CPU {cpu:.2f} s; cached {cached[-1] * 1000:.0f} ms"
        )
        shutil.rmtree(server.data_dir / "transcodes", ignore_errors=True)
    ref, total = statistics.median(refs), statistics.median(totals)
    return Row(
        benchmark="transcode",
        case=f"{SOURCE_SECONDS // 60} min stereo FLAC -> {fmt} {kbps} kbit/s, --workers 1",
        reference=f"ffmpeg CLI: {SOURCE_SECONDS / ref:.0f}x real time ({ref:.2f} s)",
        ours=(
            f"first listen {SOURCE_SECONDS / total:.0f}x real time ({total:.2f} s), first byte "
            f"{statistics.median(ttfb) * 1000:.0f} ms; {ref / total:.0%} of reference speed"
        ),
        check=(
            f"server CPU {statistics.median(cpus):.2f} s per rendition; from the cache "
            f"{statistics.median(cached) * 1000:.0f} ms; "
            + ("progressive, then cached" if not problems else "; ".join(problems))
        ),
        data={
            "reference_s": refs,
            "first_byte_s": ttfb,
            "total_s": totals,
            "server_cpu_s": cpus,
            "cached_s": cached,
            "problems": problems,
        },  # fmt: skip
    )


if __name__ == "__main__":
    main()
