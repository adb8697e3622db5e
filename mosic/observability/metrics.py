"""Prometheus metrics: one object per app that owns every metric Mosic exports.

Business code calls intent-named methods (``play()``, ``upload(outcome, size)``); only this
module knows metric names. Under gunicorn, prometheus-client's multiprocess mode is on
(``PROMETHEUS_MULTIPROC_DIR`` set before the workers start) and ``/metrics`` adds up every
worker's files.
"""

from __future__ import annotations

import functools
import os
from enum import StrEnum

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

from mosic.observability import MULTIPROC_ENV

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
# Database error kinds (exception class names) pre-created, so dashboards see zeroes.
DATABASE_ERROR_KINDS = ("OperationalError", "InterfaceError")


class UploadOutcome(StrEnum):
    CREATED = "created"
    DUPLICATE = "duplicate"
    NOT_AUDIO = "not_audio"
    TOO_LARGE = "too_large"
    INVALID = "invalid"
    FAILED = "failed"


class TranscodeOutcome(StrEnum):
    COMPLETED = "completed"  # encoded to the end (and cached)
    ABANDONED = "abandoned"  # the listener left; the encoder stopped
    FAILED = "failed"  # the source could not be decoded
    BUSY = "busy"  # refused: MOSIC_TRANSCODE_MAX were running


# What a library scan did with each file it saw (``mosic_library_scan_files_total``).
SCAN_OUTCOMES = ("added", "updated", "moved", "missing", "unchanged", "failed")
# A scan of a few changed files takes well under a second; a first scan of a big library,
# an hour or more.
SCAN_BUCKETS = (0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600, 14400)


class AuthFailure(StrEnum):
    """Why a request was refused (the label of ``mosic_auth_failures_total``)."""

    MISSING = "missing"
    WRONG = "wrong"
    BAD_SIGNATURE = "bad_signature"
    EXPIRED = "expired"
    READ_ONLY = "read_only"
    NOT_ADMIN = "not_admin"


def multiprocess_enabled() -> bool:
    return bool(os.environ.get(MULTIPROC_ENV))


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.request_latency = Histogram(
            "mosic_request_latency_seconds",
            "Time from request to response start.",
            ["method", "route", "status"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.requests = Counter(
            "mosic_total_api_requests",
            "HTTP requests served.",
            ["method", "route", "status"],
            registry=r,
        )
        self.plays = Counter(
            "mosic_plays", "Plays counted (see the play-counting rule).", registry=r
        )
        self.stream_bytes = Counter(
            "mosic_stream_bytes", "Audio bytes sent to listeners.", registry=r
        )
        self.active_streams = Gauge(
            "mosic_active_streams",
            "Audio streams being sent now.",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.uploads = Counter("mosic_uploads", "Uploads by outcome.", ["outcome"], registry=r)
        self.upload_bytes = Counter(
            "mosic_upload_bytes", "Bytes received in uploads by outcome.", ["outcome"], registry=r
        )
        self.clips = Gauge(
            "mosic_catalogue_clips",
            "Clips in the catalogue.",
            registry=r,
            multiprocess_mode="mostrecent",
        )
        self.db_errors = Counter(
            "mosic_database_errors", "Database operations that failed.", ["kind"], registry=r
        )
        self.storage_errors = Counter(
            "mosic_storage_errors",
            "Media store operations that failed because the store was unavailable.",
            registry=r,
        )
        self.db_pool = Gauge(
            "mosic_database_pool_connections",
            "Database pool connections by state, over all workers.",
            ["state"],
            registry=r,
            multiprocess_mode="livesum",
        )
        self._add_transcode_metrics(r)
        self.auth_failures = Counter(
            "mosic_auth_failures", "Requests refused, by reason.", ["reason"], registry=r
        )
        self._add_library_metrics(r)
        self._add_user_metrics(r)
        self._precreate()

    def _add_user_metrics(self, r: CollectorRegistry) -> None:
        # Counts only: a user's name is never a label (unbounded, and personal).
        self.users = Gauge("mosic_users", "Users.", registry=r, multiprocess_mode="mostrecent")
        self.active_listeners = Gauge(
            "mosic_active_listeners",
            "Users who started a song in the last 15 minutes.",
            registry=r,
            multiprocess_mode="mostrecent",
        )
        # Visits of shares' public pages, all shares together (a share's id is its secret).
        self.share_visits = Counter(
            "mosic_share_visits", "Visits of shares' public pages.", registry=r
        )

    def _add_library_metrics(self, r: CollectorRegistry) -> None:
        self.library_files = Gauge(
            "mosic_library_files",
            "Listed clips by music folder, as of the last scan.",
            ["music_folder"],
            registry=r,
            multiprocess_mode="mostrecent",
        )
        self.library_scan_seconds = Histogram(
            "mosic_library_scan_seconds",
            "How long library scans took.",
            buckets=SCAN_BUCKETS,
            registry=r,
        )
        self.library_scan_files = Counter(
            "mosic_library_scan_files",
            "Files library scans saw, by what became of them.",
            ["outcome"],
            registry=r,
        )
        for outcome in SCAN_OUTCOMES:
            self.library_scan_files.labels(outcome)

    def _precreate(self) -> None:
        # Every known label value, so dashboards see zeroes rather than "no data".
        for reason in AuthFailure:
            self.auth_failures.labels(reason)
        for kind in DATABASE_ERROR_KINDS:
            self.db_errors.labels(kind)
        for outcome in UploadOutcome:
            self.uploads.labels(outcome)
            self.upload_bytes.labels(outcome)

    def _add_transcode_metrics(self, r: CollectorRegistry) -> None:
        self.transcodes = Counter(
            "mosic_transcodes", "Transcodes by outcome.", ["outcome"], registry=r
        )
        self.active_transcodes = Gauge(
            "mosic_active_transcodes",
            "Transcodes encoding now.",
            registry=r,
            multiprocess_mode="livesum",
        )
        for outcome in TranscodeOutcome:
            self.transcodes.labels(outcome)

    # Label children kept: labels() takes a lock and builds a key on every call.
    @functools.cached_property
    def _request_children(self) -> dict[tuple[str, str, str], tuple]:
        # By (method, route, status); bounded: methods are folded, routes are templates.
        return {}

    @functools.cached_property
    def _pool_gauges(self) -> tuple:
        return self.db_pool.labels("in_use"), self.db_pool.labels("capacity")

    # -- recording ---------------------------------------------------------------------------
    def request(self, method: str, route: str, status: str, seconds: float) -> None:
        key = (method, route, status)
        children = self._request_children.get(key)
        if children is None:
            children = (self.request_latency.labels(*key), self.requests.labels(*key))
            self._request_children[key] = children
        children[0].observe(seconds)
        children[1].inc()

    def play(self) -> None:
        self.plays.inc()

    def share_visit(self) -> None:
        self.share_visits.inc()

    def stream_started(self) -> None:
        self.active_streams.inc()

    def stream_finished(self, sent_bytes: int) -> None:
        self.active_streams.dec()
        self.stream_bytes.inc(sent_bytes)

    def upload(self, outcome: UploadOutcome, size: int) -> None:
        self.uploads.labels(outcome).inc()
        self.upload_bytes.labels(outcome).inc(size)

    def transcode_started(self) -> None:
        self.active_transcodes.inc()

    def transcode_finished(self, outcome: TranscodeOutcome) -> None:
        """Called from the encoder thread (prometheus-client is thread-safe)."""
        self.active_transcodes.dec()
        self.transcodes.labels(outcome).inc()

    def transcode_refused(self) -> None:
        self.transcodes.labels(TranscodeOutcome.BUSY).inc()

    def auth_failure(self, reason: AuthFailure) -> None:
        self.auth_failures.labels(reason).inc()

    def database_error(self, kind: str) -> None:
        self.db_errors.labels(kind).inc()

    def storage_error(self) -> None:
        self.storage_errors.inc()

    def library_scan(self, counts, seconds: float) -> None:
        """A scan ended: its time, and its ``counts`` (a ``Counts``) by outcome."""
        self.library_scan_seconds.observe(seconds)
        for outcome in SCAN_OUTCOMES:
            value = getattr(counts, outcome)
            if value > 0:
                self.library_scan_files.labels(outcome).inc(value)

    def set_library_files(self, music_folder: str, clips: int) -> None:
        self.library_files.labels(music_folder).set(clips)

    def set_catalogue_size(self, clips: int) -> None:
        self.clips.set(clips)

    def set_users(self, users: int, active: int) -> None:
        self.users.set(users)
        self.active_listeners.set(active)

    def set_pool(self, in_use: int, capacity: int) -> None:
        in_use_gauge, capacity_gauge = self._pool_gauges
        in_use_gauge.set(in_use)
        capacity_gauge.set(capacity)

    # -- exposition --------------------------------------------------------------------------
    def exposition(self) -> tuple[bytes, str]:
        if multiprocess_enabled():
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
