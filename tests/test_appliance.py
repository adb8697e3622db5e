"""The image and the Compose stack, built and run for real with podman (`.ci/appliance`).

These tests drive the image exactly as the README tells a user to run it (`-p …:8000 -v …:/data`)
and then the Compose stack with podman-compose. They need podman and a built image, so the
default `python -m pytest` run deselects them (marker `appliance`); `.ci/appliance` builds
everything and runs `python -m pytest -m appliance tests/test_appliance.py`.

Environment (set by `.ci/appliance`):
  MOSIC_APPLIANCE_IMAGE     the Mosic image to test (required)
  MOSIC_APPLIANCE_COMPOSE   the podman-compose command (required by the Compose test)
  MOSIC_APPLIANCE_REPORT    a file the measurements are appended to (optional)
"""

from __future__ import annotations

import importlib
import json
import os
import re
import shlex
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import httpx
import pytest

from tests.support.audio import make_clip, make_wav_of_size
from tests.support.readme import docker_run_commands, with_podman
from tests.support.server import free_port

pytestmark = pytest.mark.appliance

REPO = Path(__file__).resolve().parents[1]
# The image's user (Dockerfile: USER 10001:10001) and gunicorn's graceful timeout.
IMAGE_UID = 10001
GRACE_PERIOD_S = 30
START_TIMEOUT_S = 60
PODMAN_TIMEOUT_S = 120
COMPOSE_TIMEOUT_S = 300
COMPOSE_START_TIMEOUT_S = 120
SCRAPE_TIMEOUT_S = 90
# The images compose.yaml names; .ci/appliance provides them (stand-ins where no registry).
POSTGRES_IMAGE = "docker.io/library/postgres:16"
# A stream SIGTERM finds in flight: 8 MB, read by a client that keeps up. (A client slower than
# the container's shutdown loses what is still in the kernel's send buffer when the container's
# network namespace goes: measured here, 136 KB of 8 MB. A proxy in front reads it in time.)
STREAM_IN_FLIGHT_BYTES = 8_000_000
SLOW_READ_CHUNK = 256 * 1024
SLOW_READ_PAUSE_S = 0.01
RUN_ID = uuid.uuid4().hex[:8]


# ------------------------------------------------------------------------------ helpers


def image() -> str:
    name = os.environ.get("MOSIC_APPLIANCE_IMAGE")
    if not name:
        pytest.fail("MOSIC_APPLIANCE_IMAGE is not set: run .ci/appliance, which builds the image")
    return name


def podman(*args: str, check: bool = True, timeout: float = PODMAN_TIMEOUT_S, **kw):
    result = subprocess.run(
        ["podman", *args], capture_output=True, text=True, timeout=timeout, **kw
    )
    if check and result.returncode != 0:
        pytest.fail(f"podman {shlex.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


def report(line: str) -> None:
    """A measured number, for the CI log (and the README's claims)."""
    path = os.environ.get("MOSIC_APPLIANCE_REPORT")
    if path:
        with open(path, "a", encoding="utf-8") as out:
            out.write(line + "\n")


def wait_until(what: str, check, timeout: float, logs_of: str | None = None):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except (httpx.HTTPError, OSError) as exc:
            last = exc
        time.sleep(0.2)
    logs = podman("logs", logs_of, check=False).stderr[-3000:] if logs_of else ""
    pytest.fail(f"timed out after {timeout} s waiting for {what} (last error: {last})\n{logs}")


def status(url: str, **kw) -> int:
    return httpx.get(url, timeout=5, **kw).status_code


class Running:
    """One container of the image, published on a free port of 127.0.0.1."""

    def __init__(self, name: str, port: int) -> None:
        self.name = name
        self.base = f"http://127.0.0.1:{port}"

    def exec(self, *command: str, check: bool = True):
        return podman("exec", self.name, *command, check=check)

    def key(self) -> str:
        return self.exec("cat", "/data/api_key").stdout.strip()

    def wait_healthy(self, path: str = "/healthz") -> float:
        started = time.monotonic()
        wait_until(
            f"{path} of {self.name}",
            lambda: status(self.base + path) == 200,
            START_TIMEOUT_S,
            self.name,
        )
        return time.monotonic() - started


@contextmanager
def container(*run_args: str, volume: str, cleanup_volume: bool = True) -> Iterator[Running]:
    """The README's `docker run -d --name mosic -p 8000:8000 -v mosic:/data mosic`, with podman,
    this run's name, port, volume and image (plus ``run_args`` before the image), then
    removed."""
    name = f"mosic-ci-{RUN_ID}-{uuid.uuid4().hex[:6]}"
    port = free_port()
    run, _ = docker_run_commands()
    command = with_podman(run, name=name, port=port, volume=volume, image=image())
    try:
        podman(*command[1:-1], *run_args, command[-1])
        yield Running(name, port)
    finally:
        podman("rm", "--force", "--volumes", "--time", "0", name, check=False)
        if cleanup_volume:
            podman("volume", "rm", "--force", volume, check=False)


def upload(base: str, key: str, path: Path) -> dict:
    with path.open("rb") as body:
        response = httpx.post(
            base + "/play/upload",
            headers={"X-API-Key": key},
            files={"file": (path.name, body, "audio/mpeg")},
            timeout=30,
        )
    assert response.status_code == 201, response.text
    return response.json()


def clip_ids(base: str, key: str) -> list[str]:
    response = httpx.get(base + "/play", headers={"X-API-Key": key}, timeout=10)
    assert response.status_code == 200, response.text
    return [clip["id"] for clip in response.json()]


def memory_mb(name: str) -> float:
    usage = podman("stats", "--no-stream", "--format", "{{.MemUsage}}", name).stdout
    amount = usage.split("/")[0].strip()
    number = float("".join(c for c in amount if c.isdigit() or c == "."))
    unit = amount.lstrip("0123456789.").strip().lower()
    factor = {"b": 1e-6, "kb": 1e-3, "kib": 1e-3, "mb": 1, "mib": 1, "gb": 1e3, "gib": 1e3}
    return number * factor[unit]


def migrations_package():
    """The migrations package, wherever the package layout keeps it."""
    for name in ("mosic.persistence.migrations", "mosic.migrations"):
        with suppress(ModuleNotFoundError):
            return importlib.import_module(name)
    pytest.fail("no migrations package: tried mosic.persistence.migrations, mosic.migrations")


# ------------------------------------------------------------------------------ the image


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    # A real MP3, encoded by ffmpeg on the host.
    return make_clip(tmp_path_factory.mktemp("audio") / "tone.mp3", "mp3", seconds=2.0)


@pytest.fixture(scope="module")
def mosic() -> Iterator[Running]:
    """The README's `docker run -p 8000:8000 -v mosic:/data mosic`, on a free port."""
    with container(volume=f"mosic-ci-{RUN_ID}-data") as running:
        took = running.wait_healthy()
        report(f"image: start to /healthz {took:.1f} s")
        yield running


def test_the_image_answers_its_probes(mosic):
    assert status(mosic.base + "/healthz") == 200
    assert status(mosic.base + "/readyz") == 200


def test_every_process_in_the_container_runs_as_the_unprivileged_user(mosic):
    table = podman("top", mosic.name, "hpid", "user", "args").stdout.strip().splitlines()
    rows = [line.split(None, 2) for line in table[1:]]
    assert len(rows) >= 3, table  # gunicorn's arbiter and two workers
    assert {user for _, user, _ in rows} == {"mosic"}, table
    assert any("mosic" in args for _, _, args in rows), table
    for pid, _, args in rows:
        # The host's view of each process: real, effective, saved and file-system uid.
        status = Path(f"/proc/{pid}/status").read_text()
        uids = next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1:]
        assert uids == [str(IMAGE_UID)] * 4, f"{args}: {uids}"


def test_a_real_upload_stream_and_scrape_through_the_published_port(mosic, clip):
    key = mosic.key()
    created = upload(mosic.base, key, clip)
    assert created["duration"] == pytest.approx(2.0, abs=0.1)
    whole = httpx.get(mosic.base + created["audio_url"], headers={"X-API-Key": key}, timeout=30)
    assert whole.status_code == 200
    assert whole.content == clip.read_bytes()
    part = httpx.get(
        mosic.base + created["audio_url"],
        headers={"X-API-Key": key, "Range": "bytes=100-199"},
        timeout=30,
    )
    assert part.status_code == 206 and part.content == clip.read_bytes()[100:200]
    signed = httpx.get(mosic.base + created["stream_url"], timeout=30)
    assert signed.status_code == 200 and signed.content == clip.read_bytes()

    metrics = httpx.get(mosic.base + "/metrics", timeout=10).text
    assert 'mosic_uploads_total{outcome="created"} 1.0' in metrics
    # Two whole streams (key, signed link) are plays; the 100-byte range is not.
    assert "mosic_plays_total 2.0" in metrics, metrics
    used = memory_mb(mosic.name)
    report(f"image: memory with two workers after an upload and three streams {used:.0f} MB")


def test_the_database_and_the_generated_key_are_in_the_volume(mosic):
    listing = mosic.exec("ls", "-ln", "/data").stdout
    for name in ("mosic.sqlite3", "api_key", "signing_secret", "media"):
        assert name in listing, listing
    mode = mosic.exec("stat", "-c", "%a %u", "/data/api_key").stdout.split()
    assert mode == ["600", str(IMAGE_UID)]
    # The README's `docker logs mosic`, by the container's name.
    _, logs_command = docker_run_commands()
    command = with_podman(logs_command, name=mosic.name, port=0, volume="", image="")
    logs = podman(*command[1:])
    assert mosic.key() in logs.stdout + logs.stderr, "the generated key is printed once to the log"


def test_the_healthcheck_command_passes_inside_the_container(mosic):
    config = json.loads(podman("inspect", "--type", "container", mosic.name).stdout)[0]
    test = config["Config"]["Healthcheck"]["Test"]
    assert "/healthz" in " ".join(test), "the image kept its HEALTHCHECK (docker format)"
    result = podman("healthcheck", "run", mosic.name, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_data_and_key_survive_a_container_restart(mosic, clip):
    key, ids = mosic.key(), clip_ids(mosic.base, mosic.key())
    assert ids, "the upload test left a clip"
    started = time.monotonic()
    podman("restart", "--time", str(GRACE_PERIOD_S), mosic.name)
    mosic.wait_healthy("/readyz")
    report(f"image: restart to /readyz {time.monotonic() - started:.1f} s")
    assert mosic.key() == key
    assert clip_ids(mosic.base, key) == ids
    stream = httpx.get(f"{mosic.base}/play/{ids[0]}/stream", headers={"X-API-Key": key}, timeout=30)
    assert stream.content == clip.read_bytes()


def test_sigterm_stops_it_gracefully_within_the_grace_period(mosic, tmp_path):
    # A stream in flight when SIGTERM arrives is finished, not cut: a large file read slowly.
    big = make_wav_of_size(tmp_path / "long.wav", STREAM_IN_FLIGHT_BYTES)
    key = mosic.key()
    with big.open("rb") as body:
        created = httpx.post(
            mosic.base + "/play/upload",
            headers={"X-API-Key": key},
            files={"file": (big.name, body, "audio/wav")},
            timeout=60,
        )
    assert created.status_code == 201, created.text
    received = bytearray()
    started = None
    with httpx.stream(
        "GET", mosic.base + created.json()["audio_url"], headers={"X-API-Key": key}, timeout=30
    ) as stream:
        for chunk in stream.iter_bytes(SLOW_READ_CHUNK):
            received += chunk
            if started is None and len(received) >= SLOW_READ_CHUNK:
                started = time.monotonic()
                podman("kill", "--signal", "TERM", mosic.name)
            time.sleep(SLOW_READ_PAUSE_S)
    assert started is not None
    assert bytes(received) == big.read_bytes(), "the stream in flight was cut by SIGTERM"
    exit_code = podman("wait", mosic.name, timeout=GRACE_PERIOD_S + 30).stdout.strip()
    took = time.monotonic() - started
    report(
        f"image: SIGTERM to exit {took:.1f} s, finishing a {len(received) // 1_000_000} MB "
        f"stream in flight (grace period {GRACE_PERIOD_S} s)"
    )
    assert exit_code == "0", "not killed: gunicorn exits 0 after a graceful shutdown"
    assert took < GRACE_PERIOD_S
    logs = podman("logs", mosic.name)
    assert "Shutting down: Master" in logs.stdout + logs.stderr
    # Mosic itself sent the whole response after the signal, rather than being killed mid-way.
    assert "GET /play/{clip_id}/stream 200" in logs.stderr
    assert re.search(
        rf"GET /play/\{{clip_id\}}/stream 200 \S+ {STREAM_IN_FLIGHT_BYTES}\b", logs.stderr
    )


def test_it_runs_on_a_read_only_root_file_system(clip):
    # As the README says for `docker run --read-only`: only /data and a /tmp tmpfs are writable
    # (podman would add its own tmpfs mounts without --read-only-tmpfs=false; Docker does not).
    with container(
        "--read-only", "--read-only-tmpfs=false", "--tmpfs", "/tmp",
        volume=f"mosic-ci-{RUN_ID}-ro",
    ) as running:  # fmt: skip
        running.wait_healthy("/readyz")
        created = upload(running.base, running.key(), clip)
        assert created["id"] in clip_ids(running.base, running.key())
        denied = running.exec("touch", "/app/probe", check=False)
        assert denied.returncode != 0 and "Read-only file system" in denied.stderr


@pytest.fixture
def network() -> Iterator[str]:
    name = f"mosic-ci-{RUN_ID}-net"
    podman("network", "create", name)
    yield name
    podman("network", "rm", "--force", name, check=False)


def test_the_image_on_a_real_postgresql_applies_its_migrations(network, clip):
    pg = f"mosic-ci-{RUN_ID}-pg"
    password = uuid.uuid4().hex
    try:
        podman(
            "run", "--detach", "--name", pg, "--network", network,
            "-e", "POSTGRES_USER=mosic", "-e", f"POSTGRES_PASSWORD={password}",
            "-e", "POSTGRES_DB=mosic", POSTGRES_IMAGE,
        )  # fmt: skip
        wait_until(
            "PostgreSQL over TCP",
            lambda: podman(
                "exec", pg, "pg_isready", "-h", "127.0.0.1", "-U", "mosic", "-d", "mosic",
                check=False,
            ).returncode == 0,
            START_TIMEOUT_S,
            pg,
        )  # fmt: skip
        with container(
            "--network", network,
            "-e", f"MOSIC_DB_HOST={pg}", "-e", "MOSIC_DB_USER=mosic",
            "-e", f"MOSIC_DB_PASSWORD={password}", "-e", "MOSIC_DB_NAME=mosic",
            volume=f"mosic-ci-{RUN_ID}-pgdata",
        ) as running:  # fmt: skip
            took = running.wait_healthy("/readyz")
            report(f"image on PostgreSQL: start to /readyz {took:.1f} s")
            assert running.exec("ls", "/data").stdout.split().count("mosic.sqlite3") == 0
            created = upload(running.base, running.key(), clip)
            applied = podman(
                "exec", pg, "psql", "-U", "mosic", "-d", "mosic", "-Atc",
                "SELECT name FROM mosic_migrations ORDER BY name",
            ).stdout.split()  # fmt: skip
            assert applied == migrations_package().available()
            rows = podman(
                "exec", pg, "psql", "-U", "mosic", "-d", "mosic", "-Atc",
                "SELECT count(*) FROM clip",
            ).stdout.strip()  # fmt: skip
            assert rows == "1", created
    finally:
        podman("rm", "--force", "--volumes", "--time", "0", pg, check=False)


# ------------------------------------------------------------------------------ the Compose stack


def compose_command() -> list[str]:
    command = os.environ.get("MOSIC_APPLIANCE_COMPOSE")
    if not command:
        pytest.fail("MOSIC_APPLIANCE_COMPOSE is not set: run .ci/appliance")
    return shlex.split(command)


def readme_override() -> str:
    section = (REPO / "README.md").read_text(encoding="utf-8").split("### docker compose", 1)[1]
    return re.search(r"```yaml\n(.*?)```", section, re.S).group(1)


class Stack:
    # Grafana has no Debian or PyPI package to stand in for its image: its provisioning is
    # checked in tests/test_deploy.py, and the stack here runs without it.
    SERVICES = ("postgres", "mosic", "prometheus")

    def __init__(self, tmp: Path) -> None:
        self.project = f"mosic-ci-{RUN_ID}"
        # The README's compose.override.yaml: the API key from a Compose secret file.
        self.api_key = uuid.uuid4().hex
        (tmp / "mosic_api_key.txt").write_text(self.api_key + "\n")
        self.override = tmp / "compose.override.yaml"
        self.override.write_text(
            readme_override().replace("./mosic_api_key.txt", str(tmp / "mosic_api_key.txt"))
        )
        self.http_port, self.prometheus_port = free_port(), free_port()
        self.env_file = tmp / "compose.env"
        self.env_file.write_text(
            f"MOSIC_DB_PASSWORD={uuid.uuid4().hex}\n"
            f"GRAFANA_ADMIN_PASSWORD={uuid.uuid4().hex}\n"
            f"HTTP_PORT={self.http_port}\nPROMETHEUS_PORT={self.prometheus_port}\n"
            f"GRAFANA_PORT={free_port()}\n"
        )
        self.base = f"http://127.0.0.1:{self.http_port}"
        self.prometheus = f"http://127.0.0.1:{self.prometheus_port}"

    def __call__(self, *args: str, check: bool = True):
        command = [
            *compose_command(),
            "--project-name", self.project,
            "--env-file", str(self.env_file),
            "--file", str(REPO / "compose.yaml"),
            "--file", str(self.override),
            *args,
        ]  # fmt: skip
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=COMPOSE_TIMEOUT_S, cwd=REPO
        )
        if check and result.returncode != 0:
            pytest.fail(f"{shlex.join(command)} failed:\n{result.stdout}\n{result.stderr}")
        return result

    def container(self, service: str) -> str:
        names = podman(
            "ps", "--all", "--format", "{{.Names}}",
            "--filter", f"label=io.podman.compose.project={self.project}",
            "--filter", f"label=com.docker.compose.service={service}",
        ).stdout.split()  # fmt: skip
        assert len(names) == 1, names
        return names[0]

    def up(self) -> float:
        started = time.monotonic()
        self("up", "--detach", *self.SERVICES)
        wait_until(
            "Mosic's /readyz through Compose",
            lambda: status(self.base + "/readyz") == 200,
            COMPOSE_START_TIMEOUT_S,
            self.container("mosic"),
        )
        return time.monotonic() - started

    def mosic_target_health(self) -> str | None:
        targets = httpx.get(self.prometheus + "/api/v1/targets", timeout=5).json()
        for target in targets["data"]["activeTargets"]:
            if target["labels"].get("job") == "mosic":
                return target["health"]
        return None


@pytest.fixture
def stack(tmp_path) -> Iterator[Stack]:
    # compose.yaml builds `mosic:local`; the image under test is that build.
    podman("tag", image(), "localhost/mosic:local")
    running = Stack(tmp_path)
    try:
        yield running
    finally:
        running("down", "--volumes", "--timeout", "5", check=False)


def test_the_compose_stack_runs_mosic_on_postgresql_scraped_by_prometheus(stack, clip):
    report(f"compose: up to Mosic's /readyz {stack.up():.1f} s")
    mosic = stack.container("mosic")
    key = stack.api_key
    listing = podman("exec", mosic, "ls", "/data").stdout.split()
    assert "api_key" not in listing, "the key came from the secret file, none was generated"
    assert httpx.get(stack.base + "/play", headers={"X-API-Key": "wrong"}).status_code == 401
    inspect = json.loads(podman("inspect", mosic).stdout)[0]
    env = dict(item.split("=", 1) for item in inspect["Config"]["Env"])
    assert env["MOSIC_DB_HOST"] == "postgres"
    # compose.yaml's hardening, as the running container has it.
    host = inspect["HostConfig"]
    assert host["ReadonlyRootfs"] is True
    assert host["Memory"] == 512 * 1024 * 1024
    # Log rotation (podman keeps max-size; max-file is Docker's).
    assert (host["LogConfig"]["Type"], host["LogConfig"]["Size"]) == ("json-file", "10MB")
    status_lines = podman("exec", mosic, "cat", "/proc/1/status").stdout
    proc = dict(line.split(":\t", 1) for line in status_lines.splitlines() if ":\t" in line)
    assert proc["CapEff"].strip() == "0" * 16, "cap_drop: ALL"
    assert proc["NoNewPrivs"].strip() == "1", "no-new-privileges"
    created = upload(stack.base, key, clip)
    rows = podman(
        "exec", stack.container("postgres"), "psql", "-U", "mosic", "-d", "mosic", "-Atc",
        "SELECT count(*) FROM clip",
    ).stdout.strip()  # fmt: skip
    assert rows == "1", "the clip is in PostgreSQL, not in a SQLite file"

    started = time.monotonic()
    wait_until(
        "Prometheus's target for Mosic to be up",
        lambda: stack.mosic_target_health() == "up",
        SCRAPE_TIMEOUT_S,
        stack.container("prometheus"),
    )
    report(f"compose: Prometheus target up after {time.monotonic() - started:.1f} s more")
    up = httpx.get(stack.prometheus + "/api/v1/query", params={"query": 'up{job="mosic"}'})
    assert [r["value"][1] for r in up.json()["data"]["result"]] == ["1"]

    signing_before = podman("exec", mosic, "cat", "/data/signing_secret").stdout
    stack("down", "--timeout", str(GRACE_PERIOD_S))
    report(f"compose: down/up, up again in {stack.up():.1f} s")
    signing = podman("exec", stack.container("mosic"), "cat", "/data/signing_secret").stdout
    assert signing == signing_before, "the generated signing secret is kept in the volume"
    assert clip_ids(stack.base, key) == [created["id"]]
    stream = httpx.get(stack.base + created["audio_url"], headers={"X-API-Key": key}, timeout=30)
    assert stream.content == clip.read_bytes()
