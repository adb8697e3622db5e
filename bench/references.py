"""The references the suite measures Mosic beside, each started on 127.0.0.1 and a free port
and always stopped (whole process group) on the way out:

* nginx with sendfile serving one directory (the file Mosic stores, from the same disk);
* the raw ASGI ceiling (``bench/ceiling.py``) on the same uvicorn settings as ``mosic serve``;
* supysonic (its own virtualenv; SQLite; one gunicorn worker) on the same audio files.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench.common import REPO_ROOT
from tests.support.server import clean_env, free_port, running, wait_for

START_TIMEOUT_S = 30


@dataclass
class Reference:
    name: str
    base: str
    pid: int  # leads the process group


def _http_ok(url: str) -> bool:
    return httpx.get(url, timeout=2).status_code < 500


# -- nginx ----------------------------------------------------------------------------------
NGINX_CONF = """
daemon off;
master_process on;
worker_processes 1;
user root;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    types {{ audio/mpeg mp3; }}
    client_body_temp_path {root}/body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
    server {{
        listen 127.0.0.1:{port};
        location /files/ {{ alias {files}/; }}
    }}
}}
"""


@contextlib.contextmanager
def nginx(files: Path, root: Path) -> Iterator[Reference]:
    """nginx (one worker, sendfile) serving ``files`` under ``/files/``."""
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    conf = root / "nginx.conf"
    conf.write_text(NGINX_CONF.format(root=root, port=port, files=files))
    log = root / "nginx.log"
    command = [binary, "-p", str(root), "-c", str(conf)]
    with running(command, log=log) as proc:
        base = f"http://127.0.0.1:{port}"
        wait_for("nginx", lambda: _http_ok(base + "/"), START_TIMEOUT_S, log)
        yield Reference("nginx", base, proc.pid)


# -- the raw ASGI ceiling -------------------------------------------------------------------
@contextlib.contextmanager
def ceiling(root: Path) -> Iterator[Reference]:
    """``bench/ceiling.py`` under uvicorn with ``mosic serve``'s settings."""
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "bench.ceiling:app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--http",
        "httptools",
        "--loop",
        "uvloop",
        "--lifespan",
        "on",
        "--no-access-log",
        "--no-proxy-headers",
        "--no-server-header",
        "--log-level",
        "warning",
    ]
    log = root / "ceiling.log"
    with running(command, log=log, env=clean_env(), cwd=REPO_ROOT) as proc:
        base = f"http://127.0.0.1:{port}"
        wait_for("the ASGI ceiling", lambda: _http_ok(base + "/"), START_TIMEOUT_S, log)
        yield Reference("ceiling", base, proc.pid)


# -- supysonic ------------------------------------------------------------------------------
SUPYSONIC_VENV = Path(os.environ.get("BENCH_SUPYSONIC_VENV", "/work/venv-supysonic"))
SUPYSONIC_USER, SUPYSONIC_PASSWORD = "bench", "bench-password"


@dataclass
class Supysonic(Reference):
    @property
    def auth(self) -> str:
        return f"u={SUPYSONIC_USER}&p={SUPYSONIC_PASSWORD}&v=1.16.1&c=bench&f=json"

    def get(self, method: str, query: str = "") -> dict:
        url = f"{self.base}/rest/{method}?{self.auth}" + (f"&{query}" if query else "")
        response = httpx.get(url, timeout=30)
        response.raise_for_status()
        body = response.json()["subsonic-response"]
        if body.get("status") != "ok":
            raise RuntimeError(f"supysonic {method}: {body}")
        return body


def supysonic_available() -> bool:
    return (SUPYSONIC_VENV / "bin" / "gunicorn").exists() and (
        SUPYSONIC_VENV / "bin" / "supysonic-cli"
    ).exists()


def _supysonic_cli(root: Path, *args: str, timeout: float = 600) -> str:
    proc = subprocess.run(
        [str(SUPYSONIC_VENV / "bin" / "supysonic-cli"), *args],
        cwd=root,
        env=clean_env(HOME=str(root)),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"supysonic-cli {' '.join(args)}: {proc.stdout}{proc.stderr}")
    return proc.stdout


@contextlib.contextmanager
def supysonic(library: Path, root: Path) -> Iterator[Supysonic]:
    """supysonic with ``library`` scanned into a fresh SQLite database, served by gunicorn
    with one (sync) worker, its default."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "supysonic.conf").write_text(
        "[base]\n"
        f"database_uri = sqlite:///{root / 'supysonic.db'}\n"
        "[webapp]\n"
        f"cache_dir = {root / 'cache'}\n"
        "log_level = WARNING\n"
        "mount_webui = off\n"
        "[daemon]\n"
        f"socket = {root / 'daemon.sock'}\n"
        "run_watcher = off\n"
    )
    _supysonic_cli(root, "user", "add", SUPYSONIC_USER, "-p", SUPYSONIC_PASSWORD)
    _supysonic_cli(root, "folder", "add", "library", str(library))
    _supysonic_cli(root, "folder", "scan", "--foreground", "library")
    port = free_port()
    command = [
        str(SUPYSONIC_VENV / "bin" / "gunicorn"),
        "--workers",
        "1",
        "--bind",
        f"127.0.0.1:{port}",
        "--log-level",
        "warning",
        "supysonic.web:create_application()",
    ]
    log = root / "supysonic.log"
    with running(command, log=log, env=clean_env(HOME=str(root)), cwd=root) as proc:
        server = Supysonic("supysonic", f"http://127.0.0.1:{port}", proc.pid)
        wait_for("supysonic", lambda: server.get("ping"), START_TIMEOUT_S, log)
        yield server
