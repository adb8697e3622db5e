"""Bytes four ways, in the same run: MiB/s and CPU core-seconds per GiB served.

One 5 MiB MP3 uploaded once, then 16 keep-alive connections fetching it again and again from:

* ``nginx``: nginx (sendfile) serving the stored file directly (bench/references.py);
* ``mosic``: ``mosic serve`` sending it itself (the default path);
* ``accel``: nginx with deploy/nginx/mosic.conf in front of ``mosic serve`` with
  ``MOSIC_ACCEL_REDIRECT`` (Mosic answers, nginx swaps in the file);
* ``auth_request``: nginx with deploy/nginx/mosic-auth-request.conf in front of ``mosic serve``
  with ``MOSIC_NGINX_AUTH_REQUEST`` (nginx asks Mosic, then sends the file itself).

Every server (Mosic, nginx) is pinned to CPU 0, wrk and PostgreSQL (the plays are counted)
to CPU 1. CPU is user + system time of the servers' process groups from /proc, before and
after each load: the CPU the server side spent per GiB it sent (PostgreSQL's share of
counting plays is left out, the same for every Mosic path). The modes take turns, ``--rounds``
times; the median of each is printed beside nginx direct.

Run: ``python -m bench.offload`` (``--rounds 3``, ``--seconds 6``).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
from pathlib import Path

from bench.common import API_KEY, group_cpu_seconds, log, mosic_server, temp_dir
from bench.load import SERVER_CPU, pin, wrk
from bench.references import nginx
from bench.scale import fresh_database
from bench.suite import pin_postgres, pin_server, stored_file
from tests.support.nginx import OFFLOAD_PREFIX, SHIPPED, SHIPPED_AUTH_REQUEST, nginx_in_front
from tests.support.postgres import throwaway_cluster

CONNECTIONS = 16
MiB = 1 << 20
GiB = 1 << 30
SECONDS_OF_AUDIO = 327.68  # 128 kbit/s: 5 MiB


def five_mib_mp3(path: Path) -> Path:
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i",
         f"sine=frequency=330:duration={SECONDS_OF_AUDIO}", "-ac", "2", "-ar", "44100",
         "-c:a", "libmp3lame", "-b:a", "128k", str(path)],
        check=True, timeout=300,
    )  # fmt: skip
    return path


def pin_group(pid: int) -> None:
    """An nginx (master and worker) on the servers' CPU."""
    pgid = os.getpgid(pid)
    pids = [int(p) for p in os.listdir("/proc") if p.isdigit() and _pgid(int(p)) == pgid]
    pin(pids, SERVER_CPU)


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


def cpu_busy_seconds(cpu: int) -> float:
    """Seconds CPU ``cpu`` was not idle (user, system, interrupts: /proc/stat), whoever ran."""
    with open("/proc/stat") as stat:
        for line in stat:
            if line.startswith(f"cpu{cpu} "):
                ticks = [int(v) for v in line.split()[1:]]
                return (sum(ticks[:8]) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")
    raise RuntimeError(f"no cpu{cpu} in /proc/stat")


def measure(base: str, path: str, headers: dict | None, pids: list[int], scratch: Path, seconds):
    """One load: (MiB/s, core-seconds per GiB of each of ``pids``' groups, the same of the
    servers' CPU as a whole, p99 ms). The processes' own time misses the kernel's work for
    their sockets that ran while another process was on the CPU (loopback delivery runs as
    softirqs); the CPU's busy time has it, and whatever else ran there too."""
    groups = [os.getpgid(pid) for pid in pids]
    before = [group_cpu_seconds(g) for g in groups]
    busy = cpu_busy_seconds(SERVER_CPU)
    result = wrk(
        base,
        [path],
        connections=CONNECTIONS,
        seconds=seconds,
        headers=headers,
        scratch=scratch,
    )
    spent = [group_cpu_seconds(g) - b for g, b in zip(groups, before, strict=True)]
    busy = cpu_busy_seconds(SERVER_CPU) - busy
    if result.errors:
        raise RuntimeError(f"{base}{path}: errors {result.errors}")
    gib = result.nbytes / GiB
    rate = result.nbytes / MiB / result.seconds
    return rate, [s / gib for s in spent], busy / gib, result.p99_ms


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=6)
    args = parser.parse_args()
    with contextlib.ExitStack() as stack:
        root = stack.enter_context(temp_dir("mosic-offload-"))
        cluster = stack.enter_context(throwaway_cluster())
        pin_postgres(cluster)
        url = stack.enter_context(fresh_database(cluster, "mosic_offload"))
        mosic = stack.enter_context(mosic_server(root / "mosic", database_url=url))
        pin_server(mosic.pid)
        clip = mosic.upload(five_mib_mp3(root / "five.mp3"), "audio/mpeg")
        stored = stored_file(mosic, clip["size"])
        media = {"MOSIC_MEDIA_ROOT": str(mosic.data_dir / "media")}
        path = f"/play/{clip['id']}/stream"
        modes: dict[str, tuple[str, str, dict | None, list[int]]] = {}
        ref = stack.enter_context(nginx(stored.parent, root / "nginx"))
        pin_group(ref.pid)
        modes["nginx"] = (ref.base, f"/files/{stored.name}", None, [ref.pid])
        modes["mosic"] = (mosic.base, path, mosic.headers, [mosic.pid])
        for mode, site, setting in (
            ("accel", SHIPPED, {"MOSIC_ACCEL_REDIRECT": OFFLOAD_PREFIX}),
            ("auth_request", SHIPPED_AUTH_REQUEST, {"MOSIC_NGINX_AUTH_REQUEST": "true"}),
        ):
            behind = stack.enter_context(
                mosic_server(root / f"mosic-{mode}", database_url=url, env={**media, **setting})
            )
            pin_server(behind.pid)
            front, nginx_pid = stack.enter_context(
                nginx_in_front(behind.base, mosic.data_dir / "media", root / f"nginx-{mode}", site)
            )
            pin_group(nginx_pid)
            # CPU split as Mosic + nginx.
            modes[mode] = (front, path, {"X-API-Key": API_KEY}, [behind.pid, nginx_pid])
        results: dict[str, list[tuple[float, float, float]]] = {m: [] for m in modes}
        for round_ in range(args.rounds):
            for mode, (base, target, headers, pids) in modes.items():
                rate, cpus, busy, p99 = measure(base, target, headers, pids, root, args.seconds)
                results[mode].append((rate, sum(cpus), busy))
                split = " + ".join(f"{c:.3f}" for c in cpus)
                log(
                    f"round {round_ + 1} {mode}: {rate:,.0f} MiB/s, {sum(cpus):.3f} core-s/GiB"
                    f" ({split}), CPU {SERVER_CPU} busy {busy:.3f} s/GiB, p99 {p99:.0f} ms"
                )
        report(results, args.rounds)
    return 0


def report(results: dict, rounds: int) -> None:
    def med(mode: str, i: int) -> float:
        return statistics.median(r[i] for r in results[mode])

    log(f"medians of {rounds} rounds, beside nginx direct in the same run:")
    for mode in results:
        rate, cpu, busy = med(mode, 0), med(mode, 1), med(mode, 2)
        log(f"  {mode:13s} {rate:8,.0f} MiB/s = {rate / med('nginx', 0):.2f}x   "
            f"{cpu:.3f} core-s/GiB = {cpu / med('nginx', 1):.2f}x   "
            f"CPU busy {busy:.3f} s/GiB = {busy / med('nginx', 2):.2f}x")  # fmt: skip
    for i in range(rounds):
        ratios = {m: results[m][i][1] / results["nginx"][i][1] for m in results}
        log(
            f"  round {i + 1} CPU/GiB vs nginx: "
            + ", ".join(f"{m} {r:.2f}x" for m, r in ratios.items())
        )


if __name__ == "__main__":
    raise SystemExit(main())
