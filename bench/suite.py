"""The benchmark suite of issue 11: every figure beside its reference, measured in the same run.

Starts on 127.0.0.1 a throwaway PostgreSQL, ``mosic serve`` (one worker, pinned to CPU 0)
on it and on SQLite, nginx with sendfile, the raw ASGI ceiling, and supysonic; seeds the same
audio files into Mosic (upload API) and supysonic (its scanner); runs bounded wrk loads (wrk
and PostgreSQL pinned to CPU 1); prints a table, writes JSON, and stops everything it started,
also on Ctrl-C or SIGTERM.

Run: ``python -m bench`` (``--quick`` for a short run, ``--profile`` to also record py-spy
profiles of the hot paths into bench/profiles/, ``--json PATH``, ``--markdown``).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import datetime as dt
import json
import os
import shutil
import signal
import statistics
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from bench.common import (
    REPO_ROOT,
    MiB,
    Row,
    format_table,
    group_pids,
    log,
    mb_per_s,
    mosic_server,
    postgres_url,
    temp_dir,
    upload_streamed,
)
from bench.load import (
    CLIENT_CPU,
    SERVER_CPU,
    WrkResult,
    can_pin,
    concurrent_gets,
    pin,
    py_spy,
    summarise_profile,
    wrk,
)
from bench.references import ceiling, nginx, supysonic, supysonic_available
from bench.run_all import machine
from bench.upload import reference_write
from tests.support.measure import RssSampler
from tests.support.nginx import OFFLOAD_PREFIX, instant_offloader, nginx_in_front
from tests.support.server import Mosic

PROFILES = REPO_ROOT / "bench" / "profiles"


@dataclass(frozen=True)
class Plan:
    clips: int
    seconds: float  # of each wrk load
    warmup: float
    plays: int
    stream_file_mb: int  # the big file 200 clients stream
    big_upload_mb: int
    upload_mb: int
    upload_rounds: int


FULL = Plan(
    clips=1000,
    seconds=8,
    warmup=1,
    plays=2000,
    stream_file_mb=500,
    big_upload_mb=1024,
    upload_mb=50,
    upload_rounds=3,
)
# The same steps, shorter loads and smaller files.
QUICK = replace(FULL, clips=200, seconds=2, stream_file_mb=100, big_upload_mb=200, upload_rounds=1)
STREAM_CONNECTIONS = 16
API_CONNECTIONS = 64
MEMORY_CLIENTS = 200


# -- fixtures -------------------------------------------------------------------------------
def make_library(library: Path, count: int) -> tuple[list[Path], Path]:
    """``count`` real MP3s (a few tones encoded by ffmpeg, each copy given distinct ID3 tags,
    so each has its own bytes and content hash) and one MP3 of about 5 MiB."""
    from mutagen.id3 import TALB, TIT2, TPE1
    from mutagen.mp3 import MP3

    from tests.support.audio import _ffmpeg, make_clip

    library.mkdir(parents=True)
    bases = [
        make_clip(library.parent / f"base{i}.mp3", "mp3", seconds=2 + i, freq=220 + 110 * i)
        for i in range(5)
    ]
    files = []
    for i in range(count):
        path = library / f"track{i:04d}.mp3"
        shutil.copyfile(bases[i % len(bases)], path)
        audio = MP3(path)
        if audio.tags is None:
            audio.add_tags()
        audio.tags.add(TIT2(encoding=3, text=[f"Track {i:04d}"]))
        audio.tags.add(TPE1(encoding=3, text=[f"Artist {i % 37}"]))
        audio.tags.add(TALB(encoding=3, text=[f"Album {i % 101}"]))
        audio.save(v2_version=3)
        files.append(path)
    # 128 kbit/s for 327.68 s is 5 MiB of audio frames.
    big = library / "five-mib.mp3"
    _ffmpeg(
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=330:duration=327.68",
        "-ac",
        "2",
        "-ar",
        "44100",
        "-c:a",
        "libmp3lame",
        "-b:a",
        "128k",
        "-metadata",
        "title=Five MiB",
        "-f",
        "mp3",
        str(big),
    )
    return files, big


def seed(server: Mosic, files: list[Path], jobs: int = 4) -> list[str]:
    """Upload every file through the API, a few at a time; the clip ids in order."""
    with concurrent.futures.ThreadPoolExecutor(jobs) as pool:
        return [clip["id"] for clip in pool.map(lambda p: server.upload(p, "audio/mpeg"), files)]


def stored_file(server: Mosic, size: int) -> Path:
    """The file Mosic stored for an upload of ``size`` bytes (same disk as everything else)."""
    return next(
        p
        for p in (server.data_dir / "media").rglob("*")
        if p.is_file() and p.stat().st_size == size
    )


def pin_server(pid: int) -> None:
    pin(group_pids(os.getpgid(pid)), SERVER_CPU)


def pin_postgres(url: str) -> None:
    """PostgreSQL beside the client (CPU 1): its postmaster and so every backend forked later.
    Only the throwaway cluster: a database given in MOSIC_TEST_DATABASE_URL is left alone."""
    import psycopg

    if os.environ.get("MOSIC_TEST_DATABASE_URL"):
        return
    with contextlib.closing(psycopg.connect(url)) as conn, conn.cursor() as cur:
        cur.execute("SELECT pg_backend_pid()")
        ppid = _parent(cur.fetchone()[0])
    if ppid is None:
        return
    pin(
        [ppid, *[int(p) for p in os.listdir("/proc") if p.isdigit() and _parent(int(p)) == ppid]],
        CLIENT_CPU,
    )


def _parent(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as fh:
            return next(int(ln.split()[1]) for ln in fh if ln.startswith("PPid:"))
    except (OSError, StopIteration):
        return None


# -- measuring ------------------------------------------------------------------------------
class Runner:
    def __init__(self, plan: Plan, scratch: Path, native: bool = False) -> None:
        self.plan = plan
        self.scratch = scratch
        self.native = native  # profiles with C frames, written as NAME-native.*
        self.results: dict[str, dict] = {}

    def load(
        self,
        name: str,
        base: str,
        paths: list[str],
        connections: int,
        headers: dict | None = None,
        slow: bool = False,
    ) -> WrkResult:
        """Warm up, then one measured wrk run; kept under ``name``. ``slow``: responses may
        take seconds (500-row lists), so the load lasts at least 5 s with a 30 s timeout, and
        the warm-up uses one connection: 64 requests queued by a warm-up at a server that
        answers one at a time would still be draining through the whole measured run."""
        seconds = max(self.plan.seconds, 5) if slow else self.plan.seconds
        wrk(
            base,
            paths,
            connections=1 if slow else connections,
            seconds=self.plan.warmup,
            headers=headers,
            scratch=self.scratch,
        )
        result = wrk(
            base,
            paths,
            connections=connections,
            seconds=seconds,
            headers=headers,
            scratch=self.scratch,
            timeout_s=30 if slow else 10,
        )
        self.results[name] = {**asdict(result), "rps": result.rps, "mib_s": result.mib_s}
        log(
            f"{name}: {result.rps:,.0f} req/s, {result.mib_s:,.0f} MiB/s, p50 "
            f"{result.p50_ms:.1f} ms, p99 {result.p99_ms:.1f} ms, errors {result.errors or 0}"
        )
        return result

    def profile(
        self, name: str, pid: int, base: str, paths: list[str], connections: int, headers: dict
    ) -> None:
        raw = self.scratch / f"{name}.raw"
        seconds = max(self.plan.seconds, 5)
        with py_spy(pid, raw, seconds, self.native):
            result = wrk(
                base,
                paths,
                connections=connections,
                seconds=seconds,
                headers=headers,
                scratch=self.scratch,
            )
        if not raw.exists():
            log(f"profile {name}: py-spy wrote nothing")
            return
        PROFILES.mkdir(exist_ok=True)
        head = (
            f"# {name}: py-spy record of the mosic serve process under wrk -c{connections}"
            f" ({result.rps:,.0f} req/s while sampled, {result.mib_s:,.0f} MiB/s)\n"
        )
        stem = f"{name}-native" if self.native else name
        (PROFILES / f"{stem}.txt").write_text(head + summarise_profile(raw))
        shutil.copyfile(raw, PROFILES / f"{stem}.collapsed")
        log(f"profile {name}: written to {PROFILES / (stem + '.txt')}")


def ratio(ours: float, reference: float) -> str:
    if not reference:
        return "- (the reference finished no request)"
    share = ours / reference
    return f"{share:.2f}×" if share >= 0.1 else f"{share:.3f}× ({100 * share:.1f}%)"


def latency(result: dict) -> str:
    if not result["requests"]:
        return f"no request finished within the {result['seconds']:.0f} s load"
    errors = sum(result["errors"].values())
    text = f"p50 {result['p50_ms']:.1f} ms, p99 {result['p99_ms']:.1f} ms"
    return text + (f", {errors:,} errors {result['errors']}" if errors else "")


# -- the run --------------------------------------------------------------------------------
def run(plan: Plan, root: Path, profile: bool, native: bool = False) -> tuple[list[Row], dict]:
    runner = Runner(plan, root, native)
    R = runner.results
    rows: list[Row] = []
    extra: dict = {}
    log(f"making {plan.clips} MP3s and a 5 MiB one")
    files, big = make_library(root / "library", plan.clips)
    env = {"MOSIC_MAX_UPLOAD_MB": str(plan.big_upload_mb + 100)}

    with contextlib.ExitStack() as stack:
        url = stack.enter_context(postgres_url())
        pin_postgres(url)
        server = stack.enter_context(mosic_server(root / "mosic-pg", database_url=url, env=env))
        pin_server(server.pid)
        key = server.headers
        log(f"seeding Mosic (PostgreSQL) with {len(files)} clips through POST /play/upload")
        began = time.monotonic()
        ids = seed(server, files)
        big_clip = server.upload(big, "audio/mpeg")
        extra["seed_seconds"] = time.monotonic() - began
        five = stored_file(server, big_clip["size"])
        some = ids[:: max(1, len(ids) // 100)][:100]

        # Bytes: nginx sendfile against Mosic, same file, same disk.
        ref = stack.enter_context(nginx(five.parent, root / "nginx"))
        pin_server(ref.pid)
        runner.load("nginx_stream", ref.base, [f"/files/{five.name}"], STREAM_CONNECTIONS)
        stream_path = f"/play/{big_clip['id']}/stream"
        runner.load("mosic_stream", server.base, [stream_path], STREAM_CONNECTIONS, key)
        offload_stream(runner, server, url, root, env, stream_path)
        offload_ceiling(runner, server, root, stream_path, five.name)

        # Requests: the raw ASGI ceiling against Mosic's reads.
        cap = stack.enter_context(ceiling(root))
        pin_server(cap.pid)
        runner.load("ceiling", cap.base, ["/"], API_CONNECTIONS)
        reads = {
            "stats": [f"/play/{i}/stats" for i in some],
            "clip": [f"/play/{i}" for i in some],
            "list100": ["/play?limit=100"],
            "list500": ["/play?limit=500"],
        }
        for name, paths in reads.items():
            slow = name.startswith("list")
            runner.load(f"mosic_{name}", server.base, paths, API_CONNECTIONS, key, slow=slow)

        # A real peer on the same files.
        if supysonic_available():
            log("scanning the same files into supysonic")
            began = time.monotonic()
            try:
                supy = stack.enter_context(supysonic(root / "library", root / "supysonic"))
            except Exception as exc:  # a missing peer is reported, not fatal
                log(f"supysonic did not start: {exc}")
                supy = None
            extra["supysonic_scan_seconds"] = time.monotonic() - began
            if supy is not None:
                pin_server(supy.pid)
                began = time.perf_counter()
                songs = supy.get("search3", "query=Track&songCount=500")["searchResult3"]["song"]
                # One 500-row search alone, unloaded: what its rate under load is made of.
                extra["supysonic_search3_alone_s"] = time.perf_counter() - began
                five_song = supy.get("search3", "query=Five")["searchResult3"]["song"][0]
                extra["supysonic_search3_rows"] = len(songs)
                runner.load(
                    "supysonic_stream",
                    supy.base,
                    [f"/rest/stream?id={five_song['id']}&{supy.auth}"],
                    STREAM_CONNECTIONS,
                )
                runner.load(
                    "supysonic_clip",
                    supy.base,
                    [f"/rest/getSong?id={s['id']}&{supy.auth}" for s in songs[:100]],
                    API_CONNECTIONS,
                )
                runner.load(
                    "supysonic_list500",
                    supy.base,
                    [f"/rest/search3?query=Track&songCount=500&{supy.auth}"],
                    API_CONNECTIONS,
                    slow=True,
                )
        else:
            log("supysonic is not installed (see bench/README.md): its rows are skipped")

        # Exact play counts, 2,000 connections at once.
        fresh = server.upload(_fresh_clip(root, "pg"), "audio/mpeg")
        extra["plays_postgresql"] = plays(server, fresh, plan.plays)

        # Memory while 200 clients stream a big file, and during a big upload.
        extra.update(memory(runner, url, root, plan, env))

        if profile:
            log("profiling the hot paths with py-spy")
            runner.profile(
                "stream", server.pid, server.base, [stream_path], STREAM_CONNECTIONS, key
            )
            for name in ("stats", "clip", "list500"):
                runner.profile(name, server.pid, server.base, reads[name], API_CONNECTIONS, key)
            profile_upload(server, root, plan, runner.native)

    # Play counts on SQLite: a server of its own.
    with mosic_server(root / "mosic-sqlite") as lite:
        pin_server(lite.pid)
        fresh = lite.upload(_fresh_clip(root, "sqlite"), "audio/mpeg")
        extra["plays_sqlite"] = plays(lite, fresh, plan.plays)

    # -- the table --
    mosic_rows = min(500, plan.clips + 1)  # the catalogue when the lists were read
    peer_rows = extra.get("supysonic_search3_rows", 500)

    def row(
        group: str, case: str, ours: str, ref: str, ref_name: str, unit: str, check: str = ""
    ) -> None:
        o, r = R.get(ours), R.get(ref)
        if o is None:
            return
        value = "mib_s" if unit == "MiB/s" else "rps"
        ours_text = f"{o[value]:,.0f} {unit}"
        if unit == "rows/s":
            ours_text = f"{o['rps'] * mosic_rows:,.0f} rows/s ({o['rps']:,.0f} req/s)"
        if r is None:
            rows.append(Row(group, case, f"{ref_name}: not run", ours_text, check or latency(o)))
            return
        ref_text = f"{ref_name}: {r[value]:,.0f} {unit}"
        if unit == "rows/s":
            ref_text = f"{ref_name}: {r['rps'] * peer_rows:,.0f} rows/s ({r['rps']:,.0f} req/s)"
        rows.append(
            Row(
                group,
                case,
                ref_text + f" ({latency(r)})",
                f"{ours_text} = {ratio(o[value], r[value])}",
                check or latency(o),
                {"ours": o, "reference": r},
            )
        )

    row(
        "bytes",
        "stream 5 MiB mp3, 16 conns",
        "mosic_stream",
        "nginx_stream",
        "nginx sendfile",
        "MiB/s",
    )
    row(
        "bytes",
        "stream 5 MiB via nginx offload (X-Accel-Redirect), 16 conns",
        "offload_stream",
        "nginx_stream",
        "nginx sendfile",
        "MiB/s",
    )
    row(
        "bytes",
        "the offload's own ceiling: nginx in front of an upstream answering at once",
        "offload_ceiling",
        "nginx_stream",
        "nginx sendfile",
        "MiB/s",
    )
    row(
        "bytes",
        "Mosic's offload against that ceiling",
        "offload_stream",
        "offload_ceiling",
        "nginx, instant upstream",
        "MiB/s",
    )
    for name, case in (
        ("stats", "GET /play/{id}/stats"),
        ("clip", "GET /play/{id}"),
        ("list100", "GET /play?limit=100"),
        ("list500", "GET /play?limit=500"),
    ):
        row(
            "requests", f"{case}, 64 conns", f"mosic_{name}", "ceiling", "raw ASGI ceiling", "req/s"
        )
    row(
        "vs supysonic",
        "stream 5 MiB (/rest/stream), 16 conns",
        "mosic_stream",
        "supysonic_stream",
        "supysonic",
        "MiB/s",
    )
    row(
        "vs supysonic",
        "single song (/rest/getSong), 64 conns",
        "mosic_clip",
        "supysonic_clip",
        "supysonic",
        "req/s",
    )
    alone = extra.get("supysonic_search3_alone_s")
    row(
        "vs supysonic",
        "500 rows (/rest/search3?songCount=500), 64 conns",
        "mosic_list500",
        "supysonic_list500",
        "supysonic",
        "rows/s",
        check=(latency(R["mosic_list500"]) if "mosic_list500" in R else "")
        + (f"; one supysonic search3 alone took {alone:.2f} s" if alone else ""),
    )
    for backend in ("postgresql", "sqlite"):
        p = extra[f"plays_{backend}"]
        rows.append(
            Row(
                "plays",
                f"{plan.plays:,} concurrent GET /stream, {backend}",
                "exact = stats +" + f"{plan.plays:,}",
                f"{p['rate']:,.0f} plays/s, counted +{p['delta']:,}",
                ("exact, " if p["exact"] else "NOT EXACT, ") + f"outcomes {p['outcomes']}",
                p,
            )
        )
    m = extra["memory"]
    rows.append(
        Row(
            "memory",
            f"RSS, {MEMORY_CLIENTS} clients stream a {plan.stream_file_mb} MiB file",
            "target < +20 MiB",
            f"{m['stream_baseline_mib']:.0f} -> {m['stream_peak_mib']:.0f} MiB "
            f"(+{m['stream_peak_mib'] - m['stream_baseline_mib']:.1f})",
            f"{m['stream_mib_s']:,.0f} MiB/s aggregate over {MEMORY_CLIENTS} open streams, "
            f"{sum(m['stream_wrk']['errors'].values())} errors",
            m,
        )
    )
    rows.append(
        Row(
            "memory",
            f"RSS during a {plan.big_upload_mb} MiB upload",
            "target < +20 MiB",
            f"{m['upload_baseline_mib']:.0f} -> {m['upload_peak_mib']:.0f} MiB "
            f"(+{m['upload_peak_mib'] - m['upload_baseline_mib']:.1f})",
            f"{m['big_upload_mb_s']:,.0f} MiB/s, HTTP {m['big_upload_status']}",
        )
    )
    u = extra["upload"]
    rows.append(
        Row(
            "upload",
            f"{plan.upload_mb} MiB WAV, POST /play/upload",
            f"write + SHA-256 the same bytes: {u['reference_mb_s']:,.0f} MiB/s",
            f"{u['mb_s']:,.0f} MiB/s = {ratio(u['mb_s'], u['reference_mb_s'])}",
            f"rounds {[round(x) for x in u['runs_mb_s']]} vs "
            f"{[round(x) for x in u['reference_runs_mb_s']]}",
        )
    )
    return rows, {"figures": R, **extra}


def profile_upload(server: Mosic, root: Path, plan: Plan, native: bool) -> None:
    """py-spy while one big WAV is uploaded (as long as the memory figure's upload)."""
    from tests.support.audio import make_wav_of_size

    wav = make_wav_of_size(root / "profile-upload.wav", plan.big_upload_mb * MiB)
    raw = root / "upload.raw"
    with py_spy(server.pid, raw, 60, native):
        response, seconds = upload_streamed(server, wav, "audio/wav", timeout=600)
    wav.unlink()
    if response.status_code == 201:
        server.delete(f"/play/{response.json()['id']}")
    if raw.exists():
        head = (
            f"# upload: py-spy record of the mosic serve process during one streamed "
            f"{plan.big_upload_mb} MiB upload ({mb_per_s(plan.big_upload_mb * MiB, seconds):,.0f}"
            f" MiB/s while sampled)\n"
        )
        stem = "upload-native" if native else "upload"
        (PROFILES / f"{stem}.txt").write_text(head + summarise_profile(raw))
        shutil.copyfile(raw, PROFILES / f"{stem}.collapsed")


def _fresh_clip(root: Path, tag: str) -> Path:
    from tests.support.audio import make_clip

    return make_clip(
        root / f"plays-{tag}.mp3",
        "mp3",
        seconds=5,
        title=f"plays {tag}",
        artist=str(time.time_ns()),
    )


def offload_stream(
    runner: Runner, server: Mosic, url: str, root: Path, env: dict, path: str
) -> None:
    """The same stream through nginx (deploy/nginx/mosic.conf) in front of a second Mosic on
    the same database and media with MOSIC_ACCEL_REDIRECT: both share the server CPU."""
    accel = {**env, "MOSIC_MEDIA_ROOT": str(server.data_dir / "media")}
    accel["MOSIC_ACCEL_REDIRECT"] = OFFLOAD_PREFIX
    with contextlib.ExitStack() as stack:
        behind = stack.enter_context(
            mosic_server(root / "mosic-accel", database_url=url, env=accel)
        )
        pin_server(behind.pid)
        front, pid = stack.enter_context(
            nginx_in_front(behind.base, server.data_dir / "media", root / "nginx-front")
        )
        pin_server(pid)
        runner.load("offload_stream", front, [path], STREAM_CONNECTIONS, server.headers)


def offload_ceiling(runner: Runner, server: Mosic, root: Path, path: str, file_name: str) -> None:
    """The same nginx in front of an upstream that answers at once with the X-Accel-Redirect
    Mosic would send (nginx itself): what the offload path costs nginx alone."""
    with contextlib.ExitStack() as stack:
        upstream, upstream_pid = stack.enter_context(
            instant_offloader(OFFLOAD_PREFIX + file_name, root / "nginx-instant")
        )
        pin_server(upstream_pid)
        front, pid = stack.enter_context(
            nginx_in_front(upstream, server.data_dir / "media", root / "nginx-front-instant")
        )
        pin_server(pid)
        runner.load("offload_ceiling", front, [path], STREAM_CONNECTIONS)


def plays(server: Mosic, clip: dict, n: int) -> dict:
    """``n`` plain GETs of one clip's stream at once, each on its own connection: exact means
    every one answered 200 with the whole file and the play count rose by exactly ``n``."""
    stats = f"/play/{clip['id']}/stats"
    before = server.get(stats).json()["play_count"]
    elapsed, outcomes = concurrent_gets(
        server.base, f"/play/{clip['id']}/stream", server.headers, n, clip["size"]
    )
    after = server.get(stats).json()["play_count"]
    result = {
        "rate": n / elapsed,
        "seconds": elapsed,
        "delta": after - before,
        "outcomes": dict(outcomes),
        "exact": after - before == n and outcomes["ok"] == n,
    }
    log(f"plays: {result}")
    return result


def memory(runner: Runner, url: str, root: Path, plan: Plan, env: dict) -> dict:
    """Server RSS during one big upload, then while ``MEMORY_CLIENTS`` clients stream a big
    file, each in a fresh ``mosic serve`` (so earlier loads' heap hides nothing); and upload
    MiB/s beside writing and hashing the same bytes."""
    from tests.support.audio import make_clip, make_wav_of_size

    out: dict = {}
    data = root / "mosic-memory"
    with mosic_server(data, database_url=url, env=env) as server:
        pin_server(server.pid)
        # Warm the upload path (imports, pool) before its memory is measured.
        warm = server.upload(make_clip(root / "warm.mp3", "mp3", title="warm"), "audio/mpeg")
        server.delete(f"/play/{warm['id']}")

        log(f"memory: a {plan.big_upload_mb} MiB upload")
        wav = make_wav_of_size(root / "upload.wav", plan.big_upload_mb * MiB)
        with RssSampler(server.pid) as rss:
            out["upload_baseline_mib"] = rss.baseline_mib()
            began = time.monotonic()
            response, seconds = upload_streamed(server, wav, "audio/wav", timeout=600)
            out["upload_peak_mib"], out["upload_samples"] = rss.peak_mib(began)
        out["big_upload_status"] = response.status_code
        out["big_upload_mb_s"] = mb_per_s(wav.stat().st_size, seconds)
        if response.status_code == 201:
            server.delete(f"/play/{response.json()['id']}")
        wav.unlink()

        log(f"upload: {plan.upload_rounds} rounds of {plan.upload_mb} MiB, beside write + hash")
        wav = make_wav_of_size(root / "fifty.wav", plan.upload_mb * MiB)
        size = wav.stat().st_size
        refs, ours = [], []
        for _ in range(plan.upload_rounds):
            refs.append(mb_per_s(size, reference_write(wav, data / "reference.tmp")))
            response, seconds = upload_streamed(server, wav, "audio/wav")
            if response.status_code != 201:
                raise RuntimeError(f"upload: {response.status_code} {response.text}")
            ours.append(mb_per_s(size, seconds))
            server.delete(f"/play/{response.json()['id']}")
        wav.unlink()
        upload = {
            "mb_s": statistics.median(ours),
            "runs_mb_s": ours,
            "reference_mb_s": statistics.median(refs),
            "reference_runs_mb_s": refs,
        }

        wav = make_wav_of_size(root / "stream.wav", plan.stream_file_mb * MiB)
        response, _ = upload_streamed(server, wav, "audio/wav", timeout=300)
        response.raise_for_status()
        wav.unlink()
        clip = response.json()

    log(f"memory: a {plan.stream_file_mb} MiB WAV streamed by {MEMORY_CLIENTS} clients")
    with mosic_server(data, database_url=url, env=env) as server:
        pin_server(server.pid)
        path = f"/play/{clip['id']}/stream"
        server.get(path, headers={"Range": "bytes=0-1023"})  # warm the stream path
        with RssSampler(server.pid) as rss:
            out["stream_baseline_mib"] = rss.baseline_mib()
            began = time.monotonic()
            result = wrk(
                server.base,
                [path],
                connections=MEMORY_CLIENTS,
                seconds=runner.plan.seconds,
                headers=server.headers,
                scratch=root,
                timeout_s=60,
            )
            out["stream_peak_mib"], out["stream_samples"] = rss.peak_mib(began)
            out["stream_wrk"] = asdict(result)
            out["stream_mib_s"] = result.mib_s
            time.sleep(1)
            out["stream_idle_after_mib"] = rss.baseline_mib()
        server.delete(f"/play/{clip['id']}")
    log(f"memory: {out}; upload: {upload}")
    return {"memory": out, "upload": upload}


def _exit_on_sigterm(signum, frame) -> None:
    raise SystemExit(128 + signum)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short loads, smaller files")
    parser.add_argument(
        "--profile", action="store_true", help="also record py-spy profiles into bench/profiles/"
    )
    parser.add_argument(
        "--native",
        action="store_true",
        help="profile with C frames too (py-spy --native), into bench/profiles/NAME-native.*",
    )
    parser.add_argument("--json", type=Path, help="write every figure to this file")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    for tool in ("wrk", "ffmpeg"):
        if shutil.which(tool) is None:
            print(
                f"bench: {tool} is not installed (Debian: apt-get install {tool})", file=sys.stderr
            )
            return 2
    plan = QUICK if args.quick else FULL
    load_before = os.getloadavg()
    began = time.monotonic()
    with temp_dir("mosic-bench-") as root:
        rows, data = run(plan, root, args.profile or args.native, args.native)
    elapsed = time.monotonic() - began
    load_after = os.getloadavg()
    pinning = f"server CPU {SERVER_CPU}, client and PostgreSQL CPU {CLIENT_CPU}"
    pinning = pinning if can_pin() else "no (taskset missing or one CPU)"
    header = [
        f"Measured {dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H:%M')} UTC on {machine()}",
        f"Plan: {'quick' if args.quick else 'full'} ({plan.seconds:g} s per load), "
        f"pinned: {pinning}",
        f"Wall time {elapsed:.0f} s; load average before {load_before[0]:.2f}, "
        f"after {load_after[0]:.2f} (above ~2 means other work shared the CPUs)",
    ]
    print()
    print("\n".join(header))
    print()
    print(format_table(rows, markdown=args.markdown))
    if args.json:
        args.json.write_text(
            json.dumps(
                {"header": header, "plan": asdict(plan), "rows": [asdict(r) for r in rows], **data},
                indent=2,
                default=str,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
