"""A real nginx in front of a real ``mosic serve``, configured with the shipped
deploy/nginx/mosic.conf (the tests of the offload and the benchmark both use it)."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx

from tests.support.server import free_port, running, wait_for

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "deploy/nginx/mosic.conf"
# The auth_request variant: nginx asks Mosic first, then sends the file from its own location.
SHIPPED_AUTH_REQUEST = REPO / "deploy/nginx/mosic-auth-request.conf"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
OFFLOAD_PREFIX = "/internal-media/"

WRAPPER = """
daemon off;
worker_processes 1;
user root;  # the test's files are readable by their owner only (ignored unless root)
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    keepalive_requests 1000000;
    client_body_temp_path {root}/body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
    include {site};
}}
"""


def site_config(mosic_port: int, port: int | str, media: Path, shipped: Path = SHIPPED) -> str:
    """A shipped site file with its three marked values filled in."""
    text = shipped.read_text()
    media_line = (
        ("alias /var/lib/mosic/media/", f"alias {media}/")
        if shipped == SHIPPED
        else ("root /var/lib/mosic/media;", f"root {media};")
    )
    for value, ours in (
        ("server 127.0.0.1:8000;", f"server 127.0.0.1:{mosic_port};"),
        ("listen 80;", f"listen 127.0.0.1:{port};"),
        media_line,
    ):
        assert value in text, f"{shipped.name} no longer has {value!r}"
        text = text.replace(value, ours)
    return text


@contextlib.contextmanager
def _nginx(root: Path, site_text: str, probe: str) -> Iterator[tuple[str, int]]:
    """nginx serving ``site_text`` (an http-context file with ``{port}`` to fill in) on a free
    port; yields (its base URL, its master's pid) once ``probe`` answers."""
    assert Path(NGINX).exists(), "install Debian's nginx-light package"
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    site = root / "site.conf"
    site.write_text(site_text.replace("{port}", str(port)))
    conf = root / "nginx.conf"
    conf.write_text(WRAPPER.format(root=root, site=site))
    with running([NGINX, "-p", str(root), "-c", str(conf)], log=root / "nginx.log") as proc:
        base = f"http://127.0.0.1:{port}"
        wait_for("nginx", lambda: httpx.get(base + probe, timeout=2).is_success, 20)
        yield base, proc.pid


@contextlib.contextmanager
def nginx_in_front(
    mosic_base: str, media: Path, root: Path, shipped: Path = SHIPPED
) -> Iterator[tuple[str, int]]:
    """nginx proxying to ``mosic_base`` with the ``shipped`` site file; yields (its base URL,
    its master's pid)."""
    site = site_config(int(mosic_base.rsplit(":", 1)[1]), "{port}", media, shipped)
    with _nginx(root, site, "/healthz") as started:
        yield started


RESPONDER = """
server {
    listen 127.0.0.1:{port};
    location / {
        add_header X-Accel-Redirect %s;
        return 200 "";
    }
}
"""


@contextlib.contextmanager
def instant_offloader(uri: str, root: Path) -> Iterator[tuple[str, int]]:
    """An upstream that answers every request at once with ``X-Accel-Redirect: uri`` (nginx
    itself): put behind ``nginx_in_front``, it shows what the offload costs nginx alone, with
    no authorising or counting. Yields (its base URL, its master's pid)."""
    with _nginx(root, RESPONDER % uri, "/") as started:
        yield started
