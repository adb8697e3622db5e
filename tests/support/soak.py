"""A bounded soak against a running ``mosic serve``: listing, streaming with seeks and
probes, uploads and deletes, stats, from several client threads at once, for a given time.

It returns what an operator would check: every status seen (a 5xx is a failure), plays
counted by the server against the play-counting requests sent (none may be lost), and the
server's memory over the run. Used by tests/test_soak.py (30 s) and bench/soak.py (10 min).
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import httpx

from tests.support.audio import wav_bytes
from tests.support.measure import RssSampler
from tests.support.server import Mosic

CLIPS = 4
CLIP_FRAMES = 200_000  # 400 KB each: long enough for seeks past the probe threshold
UPLOAD_FRAMES = 8_000
THREADS = 6
# A ceiling on requests per thread, whatever the duration: every loop is bounded twice.
MAX_REQUESTS_PER_THREAD = 200_000
# (action, weight): mostly listening, as a music server's traffic is.
MIX = (
    ("list", 3),
    ("search", 1),
    ("play", 4),
    ("seek", 3),
    ("probe", 1),
    ("head", 1),
    ("stats", 2),
    ("upload", 1),
)


@dataclass
class SoakResult:
    seconds: float
    requests: int = 0
    statuses: Counter = field(default_factory=Counter)
    by_action: Counter = field(default_factory=Counter)
    plays_sent: Counter = field(default_factory=Counter)  # clip id -> play-counting requests
    plays_counted: dict = field(default_factory=dict)  # clip id -> play_count afterwards
    plays_metric: float = 0.0
    errors: list = field(default_factory=list)  # unexpected statuses and exceptions
    rss_start_mib: float = 0.0
    rss_end_mib: float = 0.0
    rss_peak_mib: float = 0.0

    @property
    def server_errors(self) -> int:
        return sum(n for status, n in self.statuses.items() if status >= 500)

    @property
    def lost_plays(self) -> int:
        return sum(self.plays_sent.values()) - sum(self.plays_counted.values())

    def summary(self) -> str:
        sent, counted = sum(self.plays_sent.values()), sum(self.plays_counted.values())
        statuses = dict(sorted(self.statuses.items()))
        return (
            f"{self.requests} requests in {self.seconds:.0f} s "
            f"({self.requests / self.seconds:.0f}/s); statuses {statuses}; "
            f"plays sent {sent}, counted {counted} (metric {self.plays_metric:.0f}); "
            f"RSS {self.rss_start_mib:.1f} -> {self.rss_end_mib:.1f} MiB "
            f"(peak {self.rss_peak_mib:.1f}); unexpected {len(self.errors)}"
        )


class Soak:
    def __init__(self, server: Mosic, seconds: float, seed: int = 1) -> None:
        self.server = server
        self.seconds = seconds
        self.seed = seed
        self.result = SoakResult(seconds=seconds)
        self.clips: list[dict] = []
        self._lock = threading.Lock()
        self._upload_seed = 10_000

    def _client(self) -> httpx.Client:
        return httpx.Client(base_url=self.server.base, headers=self.server.headers, timeout=30)

    def prepare(self) -> None:
        with self._client() as client:
            for i in range(CLIPS):
                data = wav_bytes(i + 1, frames=CLIP_FRAMES)
                files = {"file": (f"soak{i}.wav", data, "audio/wav")}
                response = client.post("/play/upload", files=files, data={"title": f"Soak {i}"})
                assert response.status_code == 201, response.text
                self.clips.append(response.json())

    def _record(self, action: str, response: httpx.Response, expected: tuple[int, ...]) -> None:
        with self._lock:
            self.result.requests += 1
            self.result.statuses[response.status_code] += 1
            self.result.by_action[action] += 1
            if response.status_code not in expected:
                self.result.errors.append((action, response.status_code, response.text[:200]))

    def _act(self, client: httpx.Client, action: str, rng: random.Random) -> None:
        clip = rng.choice(self.clips)
        stream = clip["audio_url"]
        if action == "list":
            sort = rng.choice(["-created_at", "title", "-play_count", "duration"])
            self._record(action, client.get("/play", params={"limit": 20, "sort": sort}), (200,))
        elif action == "search":
            self._record(action, client.get("/play", params={"q": "soak"}), (200,))
        elif action == "play":
            response = client.get(stream)
            self._record(action, response, (200,))
            if response.status_code == 200 and len(response.content) == clip["size"]:
                with self._lock:
                    self.result.plays_sent[clip["id"]] += 1
        elif action == "seek":
            start = rng.randrange(70_000, clip["size"] - 1)
            response = client.get(stream, headers={"Range": f"bytes={start}-"})
            self._record(action, response, (206,))
        elif action == "probe":
            self._record(action, client.get(stream, headers={"Range": "bytes=0-1"}), (206,))
        elif action == "head":
            self._record(action, client.head(stream), (200,))
        elif action == "stats":
            self._record(action, client.get(f"/play/{clip['id']}/stats"), (200,))
        elif action == "upload":
            self._upload_and_delete(client)

    def _upload_and_delete(self, client: httpx.Client) -> None:
        with self._lock:
            self._upload_seed += 1
            seed = self._upload_seed
        files = {"file": ("up.wav", wav_bytes(seed, frames=UPLOAD_FRAMES), "audio/wav")}
        response = client.post("/play/upload", files=files)
        self._record("upload", response, (201,))
        if response.status_code == 201:
            self._record("delete", client.delete(f"/play/{response.json()['id']}"), (204,))

    def _worker(self, index: int, deadline: float) -> None:
        rng = random.Random(self.seed * 1000 + index)
        actions = [name for name, _ in MIX]
        weights = [weight for _, weight in MIX]
        with self._client() as client:
            for _ in range(MAX_REQUESTS_PER_THREAD):
                if time.monotonic() >= deadline:
                    return
                action = rng.choices(actions, weights)[0]
                try:
                    self._act(client, action, rng)
                except httpx.HTTPError as exc:
                    with self._lock:
                        self.result.errors.append((action, "exception", repr(exc)))

    def run(self) -> SoakResult:
        self.prepare()
        with RssSampler(self.server.pid, interval=0.5, max_seconds=self.seconds + 120) as rss:
            self.result.rss_start_mib = rss.baseline_mib(1.0)
            began = time.monotonic()
            deadline = began + self.seconds
            threads = [
                threading.Thread(target=self._worker, args=(i, deadline), daemon=True)
                for i in range(THREADS)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=self.seconds + 60)
            self.result.seconds = time.monotonic() - began
            self.result.rss_end_mib = rss.baseline_mib(1.0)
            self.result.rss_peak_mib = rss.peak_mib()[0]
        self._count_plays()
        return self.result

    def _count_plays(self) -> None:
        with self._client() as client:
            for clip in self.clips:
                stats = client.get(f"/play/{clip['id']}/stats").json()
                self.result.plays_counted[clip["id"]] = stats["play_count"]
        for line in self.server.metrics().splitlines():
            if line.startswith("mosic_plays_total "):
                self.result.plays_metric = float(line.split()[1])
