"""A 200 MB streamed upload.

Reference: what the storage layer must do anyway, measured on the same file in the same run:
read it in 1 MiB chunks, SHA-256 each chunk and write it to a new file on the same file system
(no fsync, as Mosic does not fsync either).

Ours: ``POST /play/upload`` of a real 200 MiB WAV as multipart through a real ``mosic serve``
(``MOSIC_MAX_UPLOAD_MB=300``), the body streamed from disk by the client with a
Content-Length, never held in memory on either side. Reported: MB/s, and the server process'
resident memory (VmRSS sampled every 20 ms) before and at its peak during the upload, and the
server's CPU time per upload. Reference and upload take turns, ``RUNS`` rounds; the median
speeds are reported with their range, and the highest peak.

Run: ``python -m bench.upload``
"""

from __future__ import annotations

import hashlib
import statistics
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a file: python bench/upload.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (  # noqa: E402
    MiB,
    Row,
    arguments,
    group_cpu_seconds,
    log,
    mb_per_s,
    mosic_server,
    report,
    temp_dir,
    upload_streamed,
)
from tests.support.measure import RssSampler  # noqa: E402

SIZE_BYTES = 200 * MiB
MAX_UPLOAD_MB = 300
RUNS = 5
CHUNK_BYTES = MiB
UPLOAD_TIMEOUT_S = 60
MEASURE_TIMEOUT_S = 120


def reference_write(source: Path, target: Path) -> float:
    """Seconds to copy ``source`` to ``target`` in 1 MiB chunks, hashing every chunk."""
    digest = hashlib.sha256()
    began = time.perf_counter()
    with source.open("rb") as src, target.open("xb") as out:
        while chunk := src.read(CHUNK_BYTES):
            digest.update(chunk)
            out.write(chunk)
    elapsed = time.perf_counter() - began
    target.unlink()
    return elapsed


def wait_measured(server, clip_id: str) -> float:
    """Seconds until the clip's loudness, measured after its 201, is known."""
    began = time.perf_counter()
    while server.get(f"/play/{clip_id}").json()["replay_gain"]["track_peak"] is None:
        if time.perf_counter() - began > MEASURE_TIMEOUT_S:
            raise RuntimeError(f"clip {clip_id}: no loudness after {MEASURE_TIMEOUT_S} s")
        time.sleep(0.05)
    return time.perf_counter() - began


def main() -> None:
    args = arguments(__doc__.splitlines()[0])
    from tests.support.audio import make_clip, make_wav_of_size

    ref_speeds, speeds, server_cpu, baselines, peaks, problems = [], [], [], [], [], []
    measured_after: list[float] = []
    with temp_dir("mosic-bench-upload-") as root:
        log(f"writing a {SIZE_BYTES // MiB} MiB WAV")
        wav = make_wav_of_size(root / "big.wav", SIZE_BYTES)
        size = wav.stat().st_size
        small = make_clip(root / "warmup.mp3", "mp3", seconds=1.0)
        data_dir = root / "data"
        with mosic_server(data_dir, env={"MOSIC_MAX_UPLOAD_MB": str(MAX_UPLOAD_MB)}) as server:
            # Warm up the upload path (imports, pool, first probe) before measuring memory.
            warm = server.upload(small, "audio/mpeg")
            server.delete(f"/play/{warm['id']}")
            with RssSampler(server.pid) as rss:
                # Reference and upload take turns, so both see the same machine (and the same
                # page-cache writeback) in every round.
                for run in range(RUNS):
                    ref_speeds.append(mb_per_s(size, reference_write(wav, root / "copy.part")))
                    baselines.append(rss.baseline_mib())
                    began, cpu_before = time.monotonic(), group_cpu_seconds(server.pid)
                    response, elapsed = upload_streamed(
                        server, wav, "audio/wav", CHUNK_BYTES, UPLOAD_TIMEOUT_S
                    )
                    server_cpu.append(group_cpu_seconds(server.pid) - cpu_before)
                    peak, samples = rss.peak_mib(began)
                    peaks.append(peak)
                    if response.status_code != 201:
                        problems.append(f"run {run}: {response.status_code} {response.text[:200]}")
                        continue
                    clip = response.json()
                    if clip["size"] != size:
                        problems.append(f"run {run}: stored {clip['size']} of {size} bytes")
                    leftovers = list((data_dir / "media" / ".incoming").glob("*"))
                    if leftovers:
                        problems.append(f"run {run}: {len(leftovers)} file(s) left in .incoming")
                    speeds.append(mb_per_s(size, elapsed))
                    # The loudness is measured after the 201: wait for it, so the next round
                    # (and its reference) does not share the machine with this one's measure.
                    measured_after.append(wait_measured(server, clip["id"]) + elapsed)
                    log(
                        f"run {run}: reference {ref_speeds[-1]:,.0f} MB/s, upload "
                        f"{speeds[-1]:,.0f} MB/s (server CPU {server_cpu[-1]:.2f} s), "
                        f"RSS {baselines[-1]:.1f} -> {peak:.1f} MiB ({samples} samples)"
                    )
                    # The same bytes again would be a 409: remove the clip (and its file).
                    deleted = server.delete(f"/play/{clip['id']}")
                    if deleted.status_code != 204:
                        problems.append(f"run {run}: DELETE answered {deleted.status_code}")

    ref_speed = statistics.median(ref_speeds)
    ours = statistics.median(speeds) if speeds else float("nan")
    baseline, peak = baselines[0], max(peaks)
    rows = [
        Row(
            benchmark="upload",
            case=f"{size / MiB:.0f} MiB WAV, POST /play/upload multipart, --workers 1",
            reference=(
                f"copy in 1 MiB chunks + SHA-256: {ref_speed:,.0f} MB/s "
                f"(runs {min(ref_speeds):,.0f}–{max(ref_speeds):,.0f})"
            ),
            ours=(
                f"{ours:,.0f} MB/s (runs {min(speeds):,.0f}–{max(speeds):,.0f}); "
                f"{ours / ref_speed:.0%} of reference"
            ),
            check=(
                f"RSS {baseline:.0f} -> peak {peak:.0f} MiB (+{peak - baseline:.1f}); "
                f"server CPU {statistics.median(server_cpu):.2f} s per upload; loudness known "
                f"{statistics.median(measured_after):.1f} s after the request began; "
                + ("201, size ok, nothing left" if not problems else "; ".join(problems))
            ),
            data={
                "reference_mb_s": ref_speeds,
                "mb_s": speeds,
                "server_cpu_s": server_cpu,
                "measured_after_s": measured_after,
                "rss_baseline_mib": baselines,
                "rss_peak_mib": peaks,
                "problems": problems,
            },
        )
    ]
    report(rows, args.json)


if __name__ == "__main__":
    main()
