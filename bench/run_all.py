"""Run every benchmark, each in its own process, and print one summary table.

Run: ``python -m bench.run_all`` (``--markdown`` for a table to paste into bench/README.md,
``--only plays upload`` for a subset).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a file: python bench/run_all.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import REPO_ROOT, Row, format_table  # noqa: E402
from tests.support.server import stop  # noqa: E402

BENCHMARKS = ("plays", "upload", "stream_memory", "transcode")
# Each is meant to finish in about two minutes; this only stops a hung one.
TIMEOUT_S = 300


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as fh:
        for line in fh:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return f"{os.cpu_count()} CPU ({cpu}), Python {platform.python_version()}, {platform.system()}"


def run(name: str) -> tuple[list[Row], float, str | None]:
    """Run one benchmark; returns its rows, its seconds and an error, if any."""
    with tempfile.TemporaryDirectory(prefix="mosic-bench-") as tmp:
        out = Path(tmp) / f"{name}.json"
        command = [sys.executable, "-m", f"bench.{name}", "--json", str(out)]
        began = time.monotonic()
        # Progress and the benchmark's own table go to stderr; its rows come back in the file.
        proc = subprocess.Popen(command, cwd=REPO_ROOT, stdout=sys.stderr, start_new_session=True)
        try:
            code = proc.wait(timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            code = None
        finally:
            stop(proc)
        elapsed = time.monotonic() - began
        if code is None:
            return [], elapsed, f"timed out after {TIMEOUT_S} s"
        if code != 0 or not out.exists():
            return [], elapsed, f"exited with {code}"
        rows = [Row(**row) for row in json.loads(out.read_text())]
        return rows, elapsed, None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    parser.add_argument("--only", nargs="+", choices=BENCHMARKS, help="run only these")
    args = parser.parse_args()

    load_before = os.getloadavg()[0]
    rows: list[Row] = []
    timings, failures = [], []
    for name in args.only or BENCHMARKS:
        print(f"== bench.{name}", file=sys.stderr, flush=True)
        got, elapsed, error = run(name)
        rows += got
        timings.append(f"{name} {elapsed:.0f} s")
        if error:
            failures.append(f"bench.{name} {error}")
            rows.append(Row(benchmark=name, case="-", reference="-", ours="-", check=error))

    print()
    print(f"Measured {dt.date.today().isoformat()} on {machine()}")
    print(f"Wall time: {', '.join(timings)}")
    # Other work on the machine moves every number here: say how busy it was.
    print(f"Load average (1 min) before: {load_before:.2f}, after: {os.getloadavg()[0]:.2f}")
    print()
    print(format_table(rows, markdown=args.markdown))
    for failure in failures:
        print(f"FAILED: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
