"""Measuring a running server from outside, for the end-to-end tests and the benchmarks
(bench/): its resident memory, sampled from ``/proc`` in a thread, and a value from its
Prometheus exposition. Linux only (``/proc``)."""

from __future__ import annotations

import statistics
import threading
import time


def rss_kib(pid: int) -> int | None:
    """The process' resident memory (VmRSS) in KiB; None once it is gone."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


class RssSampler:
    """Samples a process's VmRSS every ``interval`` seconds in a thread, for at most
    ``max_seconds``; ask for the baseline or peak of any time window afterwards."""

    def __init__(self, pid: int, interval: float = 0.02, max_seconds: float = 600) -> None:
        self.pid = pid
        self.interval = interval
        self.max_seconds = max_seconds
        self.samples: list[tuple[float, int]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        deadline = time.monotonic() + self.max_seconds
        while time.monotonic() < deadline:
            kib = rss_kib(self.pid)
            if kib is not None:
                with self._lock:
                    self.samples.append((time.monotonic(), kib))
            if self._stop.wait(self.interval):
                return

    def window(self, start: float, end: float | None = None) -> list[int]:
        end = time.monotonic() if end is None else end
        with self._lock:
            return [kib for t, kib in self.samples if start <= t <= end]

    def baseline_mib(self, seconds: float = 0.5) -> float:
        """Median RSS over the next ``seconds`` (call while the server is idle)."""
        start = time.monotonic()
        time.sleep(seconds)
        values = self.window(start)
        if not values:
            raise AssertionError(f"no RSS samples for pid {self.pid}")
        return statistics.median(values) / 1024

    def peak_mib(self, start: float = 0.0, end: float | None = None) -> tuple[float, int]:
        """(peak RSS in MiB, number of samples) between two ``time.monotonic()`` moments;
        by default over every sample so far."""
        values = self.window(start, end)
        return (max(values) / 1024 if values else float("nan")), len(values)


def metric(text: str, name: str) -> float:
    """The value of an unlabelled sample in Prometheus text exposition; an
    ``AssertionError`` if there is none."""
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{}"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no {name} sample in the metrics")
