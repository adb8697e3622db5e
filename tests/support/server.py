"""Real processes for end-to-end tests and the benchmarks (bench/): ``mosic serve`` (and
anything else) run as a subprocess, waited on with bounded polls, and always stopped with its
children. No pytest here: a failure is an ``AssertionError``, which pytest reports as one and
a benchmark lets end it."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

START_TIMEOUT_S = 30
# The checkout these tests belong to: its ``mosic`` is the one a server process must import
# (an editable install may point at another checkout).
CHECKOUT = Path(__file__).resolve().parents[2]
STOP_TIMEOUT_S = 15
POLL_S = 0.2
DEFAULT_API_KEY = "e2e-test-key-0123456789abcdef"
REPO = Path(__file__).parents[2]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def clean_env(**settings: str) -> dict[str, str]:
    """The caller's environment without any Mosic setting of its own, plus ``settings``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("MOSIC_") and k != "PROMETHEUS_MULTIPROC_DIR"
    }
    env.update(settings)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, (str(CHECKOUT), env.get("PYTHONPATH"))))
    return env


def wait_for(what: str, check: Callable[[], object], timeout: float, log: Path | None = None):
    """Call ``check`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = check()
        except (httpx.HTTPError, OSError) as exc:
            last_error, result = exc, None
        if result:
            return result
        time.sleep(POLL_S)
    end = tail(log) if log else ""
    raise AssertionError(f"timed out after {timeout} s waiting for {what} ({last_error})\n{end}")


def tail(log: Path, chars: int = 3000) -> str:
    """The end of a process' log, for a failure message ("" if there is none)."""
    try:
        return log.read_text(errors="replace")[-chars:]
    except OSError:
        return ""


@contextlib.contextmanager
def running(command: list[str], *, log: Path, env=None, cwd=None) -> Iterator[subprocess.Popen]:
    """Run ``command`` in its own process group, output to ``log``; always stop it (and any
    children, such as gunicorn workers) on the way out."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=cwd,
            start_new_session=True,
        )
        try:
            yield proc
        finally:
            stop(proc)


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM (gunicorn's graceful stop), then SIGKILL the group if anything lingers."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=STOP_TIMEOUT_S)
    # The group holds this process' children only (it was started in a new session).
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=STOP_TIMEOUT_S)


def alive(proc: subprocess.Popen, log: Path) -> None:
    if proc.poll() is not None:
        raise AssertionError(f"{proc.args[0]} exited with {proc.returncode}:\n{tail(log)}")


@dataclass
class Mosic:
    base: str
    metrics_base: str
    proc: subprocess.Popen
    log: Path
    data_dir: Path
    api_key: str

    @property
    def pid(self) -> int:
        """The server's process (under gunicorn, the arbiter; it leads the process group)."""
        return self.proc.pid

    @property
    def headers(self) -> dict[str, str]:
        return {"X-API-Key": self.api_key}

    def get(self, path: str, *, key: bool = True, **kwargs) -> httpx.Response:
        # A new connection per request (no shared client), so several workers share the load.
        headers = self.headers if key else {}
        headers.update(kwargs.pop("headers", {}))
        return httpx.get(self.base + path, headers=headers, timeout=10, **kwargs)

    def delete(self, path: str) -> httpx.Response:
        return httpx.delete(self.base + path, headers=self.headers, timeout=10)

    def upload(self, path: Path, content_type: str) -> dict:
        """Upload a file as a client would, streamed from disk; the new clip."""
        with path.open("rb") as fh:
            resp = httpx.post(
                self.base + "/play/upload",
                headers=self.headers,
                files={"file": (path.name, fh, content_type)},
                timeout=300,
            )
        assert resp.status_code == 201, f"{resp.text}\n{self.log_tail()}"
        return resp.json()

    def metrics(self) -> str:
        response = httpx.get(self.metrics_base + "/metrics", timeout=10)
        assert response.status_code == 200, response.text
        return response.text

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def log_tail(self) -> str:
        return tail(self.log)


@contextlib.contextmanager
def mosic_serve(
    data_dir: Path,
    *extra: str,
    api_key: str | None = DEFAULT_API_KEY,
    metrics_port: bool = False,
    overrides: dict | None = None,
    pythonpath: Path | None = None,
    **settings: str,
) -> Iterator[Mosic]:
    """``mosic serve`` on 127.0.0.1, ready when this yields. ``settings`` are extra
    ``MOSIC_*`` variables; ``api_key=None`` lets Mosic generate one; ``overrides`` replace
    fields of the settings object itself (``tests.support.serve_settings``); ``pythonpath``
    is where the server imports ``mosic`` from instead of this checkout (another release's
    code, for upgrade tests)."""
    port = free_port()
    mport = free_port() if metrics_port else None
    data_dir.mkdir(parents=True, exist_ok=True)
    env = clean_env(MOSIC_DATA_DIR=str(data_dir), **settings)
    if pythonpath is not None:
        assert overrides is None, "the settings helper is this checkout's"
        env["PYTHONPATH"] = str(pythonpath)
    if api_key is not None:
        env["MOSIC_API_KEY"] = api_key
    if mport:
        env["MOSIC_METRICS_PORT"] = str(mport)
    # gunicorn's multiprocess metrics directory goes under TMPDIR: keep it in the test's tree.
    scratch = data_dir.parent / f"{data_dir.name}-tmp"
    scratch.mkdir(exist_ok=True)
    env["TMPDIR"] = str(scratch)
    log = data_dir.parent / f"{data_dir.name}.log"
    command = [sys.executable, "-m", "mosic", "serve", "--host", "127.0.0.1", "--port", str(port)]
    if overrides is not None:
        assert not extra, "with overrides, pass MOSIC_* settings (the helper takes no options)"
        # The helper lives in this repository's tests, not in the installed package.
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        env.update(MOSIC_HOST="127.0.0.1", MOSIC_PORT=str(port))
        command = [sys.executable, "-m", "tests.support.serve_settings", json.dumps(overrides)]
    command += extra
    # cwd: the data dir, so no stray ./.env is read.
    with running(command, log=log, env=env, cwd=data_dir) as proc:
        base = f"http://127.0.0.1:{port}"
        server = Mosic(
            base, f"http://127.0.0.1:{mport}" if mport else base, proc, log, data_dir, api_key or ""
        )

        def ready() -> bool:
            alive(proc, log)
            ok = httpx.get(server.base + "/readyz", timeout=2).status_code == 200
            return ok and httpx.get(server.metrics_base + "/readyz", timeout=2).status_code == 200

        wait_for("mosic serve to be ready", ready, START_TIMEOUT_S, log)
        if api_key is None:
            server.api_key = (data_dir / "api_key").read_text().strip()
        yield server
