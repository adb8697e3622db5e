"""The README's commands, read from it so that tests run what a reader types."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def sh_blocks_after(heading: str) -> list[str]:
    text = README.read_text(encoding="utf-8")
    return re.findall(r"```sh\n(.*?)```", text[text.index(heading) :], re.S)


def docker_run_commands() -> tuple[list[str], list[str]]:
    """The README's `docker run …` and `docker logs …`, as argument lists (comments dropped)."""
    block = sh_blocks_after("### docker run")[0]
    commands = [shlex.split(line, comments=True) for line in block.splitlines()]
    [run] = [c for c in commands if c[:2] == ["docker", "run"]]
    [logs] = [c for c in commands if c[:2] == ["docker", "logs"]]
    return run, logs


def with_podman(command: list[str], *, name: str, port: int, volume: str, image: str) -> list[str]:
    """A README docker command for one test run: podman for docker, and this run's container
    name, published port (on 127.0.0.1), volume and image in place of the README's."""
    [docker, *args] = command
    assert docker == "docker", command
    swapped = {
        "--name": lambda _: name,
        "-p": lambda value: f"127.0.0.1:{port}:{value.rsplit(':', 1)[1]}",
        "-v": lambda value: f"{volume}:{value.split(':', 1)[1]}",
    }
    out = []
    for i, arg in enumerate(args):
        before = args[i - 1] if i else None
        out.append(swapped[before](arg) if before in swapped else arg)
    if out[0] == "run":
        out[-1] = image  # the image is the last argument
    elif out[0] == "logs":
        out[-1] = name
    return ["podman", *out]
