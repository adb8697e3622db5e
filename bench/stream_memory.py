"""Streaming a 500 MB file: throughput and the server's memory.

Reference: a ``cat``-like read of the stored file (128 KiB reads, bytes discarded) in the same
run. Like the server, it reads through the page cache, which holds the freshly uploaded file.

Ours: a real ``mosic serve`` (``--workers 1``) sends the whole 500 MiB clip to 1 client, then to
8 concurrent clients (``curl -o /dev/null``: a separate process each, so the client's own CPU
use does not throttle the server; httpx when curl is missing). Reported: MB/s (aggregate for
8), and the server process' VmRSS sampled every 20 ms: idle baseline, peak per phase, and after.

Then one client reads 1 MiB and hangs up: ``mosic_active_streams`` on ``/metrics`` must return
to 0 and ``mosic_stream_bytes_total`` must grow by far less than the 500 MiB, which shows the
stream stops reading the file when its listener goes.

Run: ``python -m bench.stream_memory``
"""

from __future__ import annotations

import asyncio
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

if __package__ in (None, ""):  # run as a file: python bench/stream_memory.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (  # noqa: E402
    API_KEY,
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
from tests.support.measure import RssSampler, metric  # noqa: E402
from tests.support.server import Mosic  # noqa: E402

SIZE_BYTES = 500 * MiB
MAX_UPLOAD_MB = 600
CAT_CHUNK_BYTES = 128 * 1024
REFERENCE_RUNS = 3
SINGLE_RUNS = 3
CONCURRENT_CLIENTS = 8
CONCURRENT_RUNS = 2
DOWNLOAD_TIMEOUT_S = 120
HANG_UP_AFTER_BYTES = MiB
SETTLE_TIMEOUT_S = 10


def reference_read(path: Path) -> float:
    """Seconds to read ``path`` start to end, as cat does, discarding the bytes."""
    buffer = bytearray(CAT_CHUNK_BYTES)
    view = memoryview(buffer)
    began = time.perf_counter()
    with path.open("rb", buffering=0) as fh:
        while fh.readinto(view):
            pass
    return time.perf_counter() - began


# -- clients that download the whole clip ---------------------------------------------------
def _curl_downloads(url: str, clients: int) -> list[tuple[int, int]]:
    command = [
        "curl", "-sS", "-o", "/dev/null", "-w", "%{http_code} %{size_download}",
        "--max-time", str(DOWNLOAD_TIMEOUT_S), "-H", f"X-API-Key: {API_KEY}", url,
    ]  # fmt: skip
    procs = [
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(clients)
    ]
    results = []
    try:
        for proc in procs:
            out, err = proc.communicate(timeout=DOWNLOAD_TIMEOUT_S + 10)
            status, size = out.split() if out.strip() else ("0", "0")
            results.append((int(status), int(size)))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
    return results


async def _httpx_downloads(url: str, clients: int) -> list[tuple[int, int]]:
    async def one(client: httpx.AsyncClient) -> tuple[int, int]:
        received = 0
        async with client.stream("GET", url, headers={"X-API-Key": API_KEY}) as response:
            async for chunk in response.aiter_raw():
                received += len(chunk)
        return response.status_code, received

    async with httpx.AsyncClient(timeout=DOWNLOAD_TIMEOUT_S) as client:
        return await asyncio.wait_for(
            asyncio.gather(*(one(client) for _ in range(clients))), DOWNLOAD_TIMEOUT_S
        )


def download(url: str, clients: int) -> tuple[list[tuple[int, int]], float]:
    began = time.perf_counter()
    if shutil.which("curl"):
        results = _curl_downloads(url, clients)
    else:
        results = asyncio.run(_httpx_downloads(url, clients))
    return results, time.perf_counter() - began


# -- a client that hangs up -----------------------------------------------------------------
async def hang_up_after(url: str, metrics_url: str, nbytes: int) -> tuple[int, float]:
    """Read ``nbytes`` of the stream, look at ``mosic_active_streams`` while it is open, then
    close the connection with the rest unread. Returns (bytes read, active streams seen)."""
    received = 0
    async with (
        httpx.AsyncClient(timeout=30) as client,
        client.stream("GET", url, headers={"X-API-Key": API_KEY}) as response,
    ):
        # Held in a name: a dropped generator is finalised at once, which closes the response.
        chunks = response.aiter_raw()
        async for chunk in chunks:
            received += len(chunk)
            if received >= nbytes:
                break
        scrape = await client.get(metrics_url)
        active_during = metric(scrape.text, "mosic_active_streams")
    # Leaving both blocks closed the connection with the body unread.
    return received, active_during


def streams_state(server: Mosic) -> tuple[float, float]:
    """(streams being sent now, bytes sent to listeners so far) from ``/metrics``."""
    text = server.metrics()
    return metric(text, "mosic_active_streams"), metric(text, "mosic_stream_bytes_total")


def disconnect_check(server: Mosic, url: str) -> dict:
    active_before, bytes_before = streams_state(server)
    received, active_during = asyncio.run(
        asyncio.wait_for(hang_up_after(url, server.base + "/metrics", HANG_UP_AFTER_BYTES), 60)
    )
    hung_up = time.monotonic()
    deadline = hung_up + SETTLE_TIMEOUT_S
    active, sent = streams_state(server)
    while active > 0 and time.monotonic() < deadline:
        time.sleep(0.05)
        active, sent = streams_state(server)
    settled_after = time.monotonic() - hung_up
    # Once nothing is active the counter must stay put: nothing keeps reading for nobody.
    time.sleep(1.0)
    active_later, sent_later = streams_state(server)
    return {
        "active_before": active_before,
        "received": received,
        "active_during": active_during,
        "active_after": active,
        "settled_seconds": settled_after,
        "sent_bytes": sent - bytes_before,
        "sent_bytes_1s_later": sent_later - bytes_before,
        "active_1s_later": active_later,
    }


# -- the benchmark --------------------------------------------------------------------------
def main() -> None:
    args = arguments(__doc__.splitlines()[0])
    from tests.support.audio import make_wav_of_size

    client_name = "curl" if shutil.which("curl") else "httpx"
    rows: list[Row] = []
    with temp_dir("mosic-bench-stream-") as root:
        data_dir = root / "data"
        env = {"MOSIC_MAX_UPLOAD_MB": str(MAX_UPLOAD_MB)}
        log(f"writing a {SIZE_BYTES // MiB} MiB WAV and uploading it")
        wav = make_wav_of_size(root / "big.wav", SIZE_BYTES)
        with mosic_server(data_dir, env=env) as server:
            response, _ = upload_streamed(server, wav, "audio/wav", timeout=DOWNLOAD_TIMEOUT_S)
            if response.status_code != 201:
                raise RuntimeError(f"upload: {response.status_code} {response.text}")
            clip = response.json()
        wav.unlink()
        size = clip["size"]
        stored = next((data_dir / "media").glob("*/*.wav"))

        ref_times = [reference_read(stored) for _ in range(REFERENCE_RUNS)]
        ref_speed = mb_per_s(size, statistics.median(ref_times))
        log(f"reference read: {ref_speed:,.0f} MB/s")

        # A fresh process, so the upload's memory does not hide anything the streams do.
        with mosic_server(data_dir, env=env) as server, RssSampler(server.pid) as rss:
            url = f"{server.base}/play/{clip['id']}/stream"
            # Warm up the stream path with a short probe (a range that never counts as a play).
            server.get(f"/play/{clip['id']}/stream", headers={"Range": "bytes=0-1023"})
            server.metrics()
            baseline = rss.baseline_mib()
            log(f"server RSS baseline {baseline:.1f} MiB")

            phases = []
            for clients, runs in ((1, SINGLE_RUNS), (CONCURRENT_CLIENTS, CONCURRENT_RUNS)):
                speeds, problems, settled = [], [], []
                began, cpu_before, sent = time.monotonic(), group_cpu_seconds(server.pid), 0
                for _ in range(runs):
                    results, elapsed = download(url, clients)
                    bad = [r for r in results if r != (200, size)]
                    if bad:
                        problems.append(f"{len(bad)} incomplete: {bad[:3]}")
                    sent += sum(n for _, n in results)
                    speeds.append(mb_per_s(sum(n for _, n in results), elapsed))
                    # Idle again after each run: a leak would climb from run to run.
                    settled.append(rss.baseline_mib(0.3))
                peak, samples = rss.peak_mib(began)
                # CPU seconds per GiB sent, idle pauses included (they cost next to nothing).
                cpu_per_gib = (group_cpu_seconds(server.pid) - cpu_before) / (sent / 1024 / MiB)
                phases.append(
                    {
                        "clients": clients,
                        "mb_s": statistics.median(speeds),
                        "runs_mb_s": speeds,
                        "peak_mib": peak,
                        "samples": samples,
                        "idle_after_runs_mib": settled,
                        "baseline_mib": baseline,
                        "server_cpu_s_per_gib": cpu_per_gib,
                        "problems": problems,
                    }
                )
                log(
                    f"{clients} client(s): {statistics.median(speeds):,.0f} MB/s, "
                    f"peak RSS {peak:.1f} MiB ({samples} samples), idle after each run "
                    f"{[round(x, 1) for x in settled]} MiB {problems or ''}"
                )

            gone = disconnect_check(server, url)
            after = rss.baseline_mib()
            log(f"hang-up: {gone}; RSS after everything {after:.1f} MiB")
            if server.proc.poll() is not None:
                raise RuntimeError(f"the server died:\n{server.log_tail()}")

    for phase in phases:
        clients, peak, problems = phase["clients"], phase["peak_mib"], phase["problems"]
        label = "1 client" if clients == 1 else f"{clients} concurrent clients"
        idle = "/".join(f"{x:.0f}" for x in phase["idle_after_runs_mib"])
        rows.append(
            Row(
                benchmark="stream_memory",
                case=f"GET whole {size / MiB:.0f} MiB clip, {label} ({client_name}), --workers 1",
                reference=f"cat-like read of the file: {ref_speed:,.0f} MB/s",
                ours=(
                    f"{phase['mb_s']:,.0f} MB/s"
                    + (" aggregate" if clients > 1 else "")
                    + f"; server CPU {phase['server_cpu_s_per_gib']:.2f} s/GiB"
                ),
                check=(
                    f"RSS {baseline:.0f} -> peak {peak:.0f} MiB (+{peak - baseline:.1f}), "
                    f"idle after each run {idle} MiB; "
                    + ("all complete" if not problems else "; ".join(problems))
                ),
                data=phase,
            )
        )
    stopped = gone["active_after"] == 0 and gone["sent_bytes"] < size / 10
    rows.append(
        Row(
            benchmark="stream_memory",
            case=f"client hangs up after {HANG_UP_AFTER_BYTES / MiB:.0f} MiB of {size / MiB:.0f}",
            reference="-",
            ours=(
                f"mosic_active_streams {gone['active_during']:.0f} while reading, "
                f"{gone['active_after']:.0f} {gone['settled_seconds']:.2f} s after hang-up; "
                f"stream_bytes +{gone['sent_bytes'] / MiB:.1f} MiB"
            ),
            check=(
                ("stream stopped" if stopped else "STREAM DID NOT STOP")
                + f"; RSS idle at the end {after:.0f} MiB"
            ),
            data={**gone, "rss_after_mib": after, "rss_baseline_mib": baseline},
        )
    )
    report(rows, args.json)


if __name__ == "__main__":
    main()
