"""Operating Mosic: its metrics, the shipped Prometheus configuration and the Grafana dashboard,
proven with the real tools (Debian's ``prometheus`` package: ``prometheus`` and ``promtool``).

A real ``mosic serve`` runs as a subprocess with a separate metrics port, a real Prometheus
scrapes that port every second, real traffic goes through the API (list, upload of an
ffmpeg-encoded mp3, streams, errors), and every PromQL expression of every dashboard panel must
come back from Prometheus' HTTP API with data. A second ``mosic serve --workers 2`` shows that
``/metrics`` adds up every worker.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.audio import make_clip
from tests.support.server import (
    START_TIMEOUT_S,
    Mosic,
    alive,
    free_port,
    mosic_serve,
    running,
    wait_for,
)

REPO = Path(__file__).resolve().parents[1]
PROMETHEUS_CONFIG = REPO / "deploy" / "prometheus" / "prometheus.yml"
DASHBOARD = REPO / "deploy" / "grafana" / "dashboards" / "mosic.json"
PROVISIONING = REPO / "deploy" / "grafana" / "provisioning"

JOB = "mosic"
API_KEY = "observability-test-key-0123456789abcdef"
SERVE = {"api_key": API_KEY, "metrics_port": True, "MOSIC_LOG_FORMAT": "json"}
DATASOURCE_REF = {"type": "prometheus", "uid": "${datasource}"}
# What Grafana puts in place of its built-in variables when it sends a query.
# The dashboard's own variables (namespace, job, instance) as Grafana sends "All": ".*".
GRAFANA_VARIABLES = {
    "__rate_interval": "30s",
    "__interval": "15s",
    "__range": "5m",
    "namespace": ".*",
    "job": ".*",
    "instance": ".*",
}
GRAFANA_VARIABLE = re.compile(
    r"\$\{?(__rate_interval|__interval|__range|namespace|job|instance)\}?(?![A-Za-z0-9_])"
)

SCRAPE_TIMEOUT_S = 60
# Samples Prometheus must take after a burst of traffic before rate() sees it.
SCRAPES_AFTER_TRAFFIC = 3

PROMETHEUS = shutil.which("prometheus")
PROMTOOL = shutil.which("promtool")
# Required, never skipped: .ci/run installs Debian's prometheus package.
assert PROMETHEUS and PROMTOOL, "install Debian's prometheus package (prometheus, promtool)"


def panels(dashboard: dict) -> Iterator[dict]:
    """Every panel, including those inside collapsed rows."""
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


def panel_queries(dashboard: dict) -> list[tuple[str, str, str]]:
    """(panel title, refId, expression) of every query, Grafana's variables put in."""
    queries = []
    for panel in panels(dashboard):
        for target in panel.get("targets", []):
            expr = GRAFANA_VARIABLE.sub(lambda m: GRAFANA_VARIABLES[m.group(1)], target["expr"])
            queries.append((panel["title"], target["refId"], expr))
    return queries


def load_dashboard() -> dict:
    return json.loads(DASHBOARD.read_text(encoding="utf-8"))


def sample(text: str, name: str, **labels: str) -> float | None:
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and s.labels == labels:
                return s.value
    return None


# -- the shipped files -----------------------------------------------------------------------
def test_shipped_prometheus_config_passes_promtool():
    result = subprocess.run(
        [PROMTOOL, "check", "config", str(PROMETHEUS_CONFIG)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout + result.stderr
    text = PROMETHEUS_CONFIG.read_text()
    assert re.search(rf"^\s*-\s*job_name:\s*{JOB}\s*$", text, re.M)
    assert re.search(r"^\s*metrics_path:\s*/metrics\s*$", text, re.M)
    assert re.search(r"^\s*-\s*mosic:8000\s*$", text, re.M), "targets the Compose service"


def test_dashboard_imports_into_any_grafana():
    dashboard = load_dashboard()
    assert dashboard["uid"] == "mosic"
    assert dashboard["id"] is None
    assert 36 <= dashboard["schemaVersion"] <= 41
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"

    ids = [panel["id"] for panel in panels(dashboard)]
    assert len(ids) == len(set(ids)), "panel ids are unique"
    queried = [panel for panel in panels(dashboard) if panel["type"] != "row"]
    assert queried
    for panel in queried:
        title = panel["title"]
        assert panel["type"] in ("timeseries", "stat", "gauge", "bargauge"), title
        assert panel["datasource"] == DATASOURCE_REF, title
        assert panel["targets"], f"{title} has no query"
        assert panel["fieldConfig"]["defaults"].get("unit"), f"{title} has no unit"
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE_REF, title
            assert target["expr"].strip(), title
            if "rate(" in target["expr"] or "increase(" in target["expr"]:
                assert "$__rate_interval" in target["expr"] or "$__range" in target["expr"], (
                    f"{title}: rate windows follow Grafana's $__rate_interval"
                )

    # What an operator asked for is on the wall.
    exprs = "\n".join(expr for _, _, expr in panel_queries(dashboard))
    for metric in (
        "mosic_total_api_requests_total",
        "mosic_request_latency_seconds_bucket",
        "mosic_plays_total",
        "mosic_stream_bytes_total",
        "mosic_active_streams",
        "mosic_uploads_total",
        "mosic_catalogue_clips",
        "mosic_database_pool_connections",
        "mosic_database_errors_total",
        "mosic_users",
        "mosic_active_listeners",
    ):
        assert metric in exprs, f"no panel shows {metric}"
    for q in ("0.5", "0.95", "0.99"):
        assert f"histogram_quantile({q}," in exprs


def test_grafana_provisioning_points_at_the_mounted_paths():
    datasource = (PROVISIONING / "datasources" / "prometheus.yaml").read_text()
    assert re.search(r"^\s*uid:\s*prometheus\s*$", datasource, re.M)
    assert re.search(r"^\s*type:\s*prometheus\s*$", datasource, re.M)
    assert re.search(r"^\s*url:\s*http://prometheus:9090\s*$", datasource, re.M)
    assert re.search(r"^\s*isDefault:\s*true\s*$", datasource, re.M)
    provider = (PROVISIONING / "dashboards" / "mosic.yaml").read_text()
    assert re.search(r"^\s*type:\s*file\s*$", provider, re.M)
    assert re.search(r"^\s*path:\s*/var/lib/grafana/dashboards\s*$", provider, re.M)


# -- a running Mosic scraped by a real Prometheus --------------------------------------------
@dataclass
class PrometheusServer:
    base: str
    log: Path

    def query(self, expr: str) -> dict:
        response = httpx.post(self.base + "/api/v1/query", data={"query": expr}, timeout=10)
        body = response.json()
        assert response.status_code == 200 and body["status"] == "success", (expr, body)
        return body["data"]

    def value(self, expr: str) -> float | None:
        result = self.query(expr)["result"]
        return float(result[0]["value"][1]) if result else None

    def wait_for_scrapes(self, since: float, count: int) -> None:
        """Wait until Prometheus has scraped the mosic job ``count`` times after ``since``."""

        def scraped() -> bool:
            window_ms = int((time.time() - since) * 1000)
            if window_ms < 1:
                return False
            n = self.value(f'count_over_time(up{{job="{JOB}"}}[{window_ms}ms])')
            return n is not None and n >= count

        wait_for(f"{count} scrapes by Prometheus", scraped, SCRAPE_TIMEOUT_S, self.log)


@dataclass
class Traffic:
    clip_ids: list[str]
    signatures: list[str]
    uploaded_bytes: int
    plays: int


@pytest.fixture(scope="module")
def mosic(tmp_path_factory) -> Iterator[Mosic]:
    with mosic_serve(tmp_path_factory.mktemp("mosic") / "data", **SERVE) as server:
        yield server


def scrape_config_for(target: str) -> str:
    """The shipped configuration, scraping ``target`` every second."""
    text = PROMETHEUS_CONFIG.read_text()
    text, targets = re.subn(r"^(\s*-\s*)mosic:8000(\s*)$", rf"\g<1>{target}\g<2>", text, flags=re.M)
    assert targets == 1, "the shipped file lists one target, mosic:8000"
    text, intervals = re.subn(
        r"^(\s*scrape_interval:\s*)\S+(\s*)$", r"\g<1>1s\g<2>", text, flags=re.M
    )
    assert intervals >= 1
    return text


@pytest.fixture(scope="module")
def prometheus(mosic, tmp_path_factory) -> Iterator[PrometheusServer]:
    if PROMETHEUS is None or PROMTOOL is None:
        pytest.skip("prometheus is not installed (Debian: apt-get install prometheus)")
    home = tmp_path_factory.mktemp("prometheus")
    config = home / "prometheus.yml"
    config.write_text(scrape_config_for(mosic.metrics_base.removeprefix("http://")))
    check = subprocess.run(
        [PROMTOOL, "check", "config", str(config)], capture_output=True, text=True, timeout=60
    )
    assert check.returncode == 0, check.stdout + check.stderr
    port = free_port()
    log = home / "prometheus.log"
    command = [
        PROMETHEUS,
        f"--config.file={config}",
        f"--storage.tsdb.path={home / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{port}",
    ]
    with running(command, log=log, cwd=home) as proc:
        server = PrometheusServer(f"http://127.0.0.1:{port}", log)

        def ready() -> bool:
            alive(proc, log)
            return httpx.get(server.base + "/-/ready", timeout=2).status_code == 200

        wait_for("Prometheus to be ready", ready, START_TIMEOUT_S, log)
        # Counters are sampled before the traffic, so rate() sees it arrive.
        server.wait_for_scrapes(time.time(), 1)
        yield server


def drive_traffic(mosic: Mosic, clip_path: Path) -> tuple[dict, int]:
    """One round of what listeners and operators do; returns the uploaded clip and its size."""
    assert mosic.get("/play").status_code == 200
    body = clip_path.read_bytes()
    upload = httpx.post(
        mosic.base + "/play/upload",
        headers={"X-API-Key": API_KEY},
        files={"file": (clip_path.name, body, "audio/mpeg")},
        data={"title": clip_path.stem},
        timeout=30,
    )
    assert upload.status_code == 201, upload.text
    clip = upload.json()
    stream = mosic.get(f"/play/{clip['id']}/stream")
    assert stream.status_code == 200 and stream.content == body
    # A listener's browser, through the signed link.
    assert mosic.get(clip["stream_url"], key=False).status_code == 200
    seek = mosic.get(f"/play/{clip['id']}/stream", headers={"Range": "bytes=100-"})
    assert seek.status_code == 206
    assert mosic.get("/play?limit=5").status_code == 200
    # Errors: no key, unknown clip, unknown path, the same bytes again.
    assert mosic.get("/play", key=False).status_code == 401
    assert mosic.get("/play/00000000-0000-4000-8000-000000000000").status_code == 404
    assert mosic.get("/no/such/path").status_code == 404
    duplicate = httpx.post(
        mosic.base + "/play/upload",
        headers={"X-API-Key": API_KEY},
        files={"file": (clip_path.name, body, "audio/mpeg")},
        timeout=30,
    )
    assert duplicate.status_code == 409, duplicate.text
    return clip, len(body)


@pytest.fixture(scope="module")
def traffic(mosic, prometheus, tmp_path_factory) -> Traffic:
    clips = tmp_path_factory.mktemp("clips")
    ids, signatures, uploaded = [], [], 0
    # Two rounds with scrapes in between: series born in the first round have a sample before
    # the second, so every rate() over them is a real number rather than 0 or NaN.
    for round_, freq in enumerate((440, 660)):
        clip = make_clip(clips / f"tone-{freq}.mp3", "mp3", seconds=1.0, freq=freq)
        uploaded_clip, size = drive_traffic(mosic, clip)
        ids.append(uploaded_clip["id"])
        signatures.append(parse_qs(urlsplit(uploaded_clip["stream_url"]).query)["sig"][0])
        uploaded += size
        prometheus.wait_for_scrapes(time.time(), SCRAPES_AFTER_TRAFFIC if round_ else 2)
    return Traffic(ids, signatures, uploaded_bytes=uploaded, plays=2 * len(ids))


def test_metrics_pass_promtool_lint(mosic, traffic):
    text = mosic.metrics()
    assert "mosic_total_api_requests_total" in text
    result = subprocess.run(
        [PROMTOOL, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == "" and result.stderr == "", result.stdout + result.stderr


def test_metrics_label_routes_by_template_and_the_metrics_port_serves_no_api(mosic, traffic):
    text = mosic.metrics()
    for clip_id in traffic.clip_ids:
        assert clip_id not in text, "a route label carries a raw path"
    assert re.search(r'route="/play/\{\w+[^"]*\}/stream"', text), "the stream route's template"
    api = httpx.get(mosic.metrics_base + "/play", headers={"X-API-Key": API_KEY})
    assert api.status_code == 404
    assert httpx.get(mosic.metrics_base + "/healthz").status_code == 200


def test_the_log_is_json_and_holds_no_key_or_signature(mosic, traffic):
    lines = mosic.log.read_text(encoding="utf-8").splitlines()
    assert any('"mosic.access"' in line for line in lines), "one access-log line per request"
    for line in lines:
        assert API_KEY not in line
        for signature in traffic.signatures:
            assert signature not in line
        assert isinstance(json.loads(line), dict), line


def test_every_dashboard_panel_returns_data_from_a_real_prometheus(prometheus, traffic):
    queries = panel_queries(load_dashboard())
    assert len(queries) >= 10
    failures = []
    for title, ref, expr in queries:
        assert "$" not in expr, f"{title}/{ref}: a Grafana variable is left in {expr!r}"
        data = prometheus.query(expr)  # asserts status "success": the expression parses
        values = [float(item["value"][1]) for item in data["result"]]
        if not values:
            failures.append(f"{title}/{ref}: no data for {expr}")
        elif not any(math.isfinite(v) for v in values):
            failures.append(f"{title}/{ref}: only NaN/Inf ({values}) for {expr}")
    assert not failures, "\n".join(failures)


def test_prometheus_sees_the_traffic(prometheus, traffic):
    assert prometheus.value("sum(mosic_plays_total)") == traffic.plays
    # Each clip was streamed whole twice (key, signed link) and from byte 100 once.
    streamed = prometheus.value("sum(mosic_stream_bytes_total)")
    assert streamed is not None and streamed >= 2 * traffic.uploaded_bytes
    assert prometheus.value("max(mosic_catalogue_clips)") == len(traffic.clip_ids)
    assert prometheus.value("sum(increase(mosic_plays_total[1m]))") > 0
    created = prometheus.value(
        'sum(mosic_total_api_requests_total{route="/play/upload", status="201"})'
    )
    assert created == len(traffic.clip_ids)
    assert prometheus.value('sum(mosic_total_api_requests_total{status="401"})') >= 2
    capacity = prometheus.value('sum(mosic_database_pool_connections{state="capacity"})')
    assert capacity is not None and capacity >= 1


def test_prometheus_sees_uploads_by_outcome(prometheus, traffic):
    created = prometheus.value('sum(mosic_uploads_total{outcome="created"})')
    assert created == len(traffic.clip_ids)
    assert prometheus.value('sum(mosic_uploads_total{outcome="duplicate"})') == len(
        traffic.clip_ids
    )
    assert prometheus.value('sum(mosic_upload_bytes_total{outcome="created"})') == (
        traffic.uploaded_bytes
    )


# -- several workers -------------------------------------------------------------------------
REQUESTS_OVER_WORKERS = 40


def test_request_counter_adds_up_over_gunicorn_workers(tmp_path):
    with mosic_serve(tmp_path / "data", "--workers", "2", **SERVE) as server:
        for _ in range(REQUESTS_OVER_WORKERS):
            response = server.get("/play")
            assert response.status_code == 200, response.text
        # Either port, either worker: the same sum.
        for text in (server.metrics(), httpx.get(server.base + "/metrics", timeout=10).text):
            labels = {"method": "GET", "route": "/play", "status": "200"}
            assert sample(text, "mosic_total_api_requests_total", **labels) == (
                REQUESTS_OVER_WORKERS
            )
            assert sample(text, "mosic_request_latency_seconds_count", **labels) == (
                REQUESTS_OVER_WORKERS
            )


def worker_pids(master: int) -> set[int]:
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return {int(pid) for pid in children}


def test_a_dead_workers_counts_survive_and_its_gauges_go(tmp_path):
    with mosic_serve(tmp_path / "data", "--workers", "2", **SERVE) as server:
        for _ in range(REQUESTS_OVER_WORKERS):
            assert server.get("/play").status_code == 200
        labels = {"method": "GET", "route": "/play", "status": "200"}
        before = worker_pids(server.proc.pid)
        assert len(before) == 2
        victim = min(before)
        os.kill(victim, signal.SIGKILL)
        wait_for(
            "gunicorn to replace the killed worker",
            lambda: (
                len(worker_pids(server.proc.pid) - before) == 1
                and len(worker_pids(server.proc.pid)) == 2
            ),
            START_TIMEOUT_S,
            server.log,
        )
        wait_for(
            "the new worker to serve",
            lambda: server.get("/readyz").status_code == 200,
            START_TIMEOUT_S,
            server.log,
        )
        # Live gauges count live workers only: two pools, not three. /readyz may have been
        # answered by the surviving worker, so wait for the new one's pool to report.
        wait_for(
            "two live pools in the gauges",
            lambda: (
                sample(server.metrics(), "mosic_database_pool_connections", state="capacity") == 2
            ),
            START_TIMEOUT_S,
            server.log,
        )
        text = server.metrics()
        # Counters of the dead worker still count: requests it served were served.
        assert sample(text, "mosic_total_api_requests_total", **labels) >= REQUESTS_OVER_WORKERS

        # Live gauges count live workers only: two pools, not three. The readiness check
        # above may have been answered by the surviving worker, so on a loaded machine the
        # new one may not have reported its pool yet: wait for two (a dead worker's pool
        # still counted would stay at three and time out).
        def two_pools() -> bool:
            text = server.metrics()
            return sample(text, "mosic_database_pool_connections", state="capacity") == 2

        wait_for("the live workers' pools alone", two_pools, START_TIMEOUT_S, server.log)
