"""``mosic import``: a library on disk added with the upload rules, with and without a terminal.

The tree has nested folders, the same bytes twice, files that only look like audio, an empty
file, and files that are not audio by name (ignored). Every case runs on both databases.
"""

from __future__ import annotations

import asyncio
import logging
import os
import pty
import re
import select
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mosic.cli.library import log_tasks_on_sigusr1
from tests.support.audio import make_clip
from tests.support.database import mosic_env
from tests.support.server import clean_env
from tests.support.tagging import image, tag_fully

# What the tree below holds, by what an import must do with each file.
ADDED = ("top.mp3", "albums/one/01.flac", "albums/one/02.ogg", "albums/two/deep/03.m4a",
         "albums/two/04.opus", "field.wav")  # fmt: skip
SKIPPED = ("copies/top-again.MP3",)  # the same bytes as top.mp3, an upper-case extension
FAILED = ("broken.mp3", "albums/empty.flac", "albums/two/fake.m4a")
IGNORED = ("albums/one/cover.jpg", "notes.txt", "albums/two/.hidden-without-extension")


@pytest.fixture
def tree(tmp_path) -> Path:
    root = tmp_path / "music"
    for i, name in enumerate(ADDED):
        path = root / name
        make_clip(path, Path(name).suffix[1:], seconds=1.0, freq=300 + 40 * i,
                  title=f"Song {i}", artist="Importer")  # fmt: skip
    tag_fully(root / "top.mp3", "mp3", genre="Rock", picture=image(tmp_path / "c"))
    (root / SKIPPED[0]).parent.mkdir(parents=True)
    shutil.copy(root / "top.mp3", root / SKIPPED[0])
    (root / "broken.mp3").write_bytes(b"ID3 but not really" * 100)
    (root / "albums/empty.flac").write_bytes(b"")
    (root / "albums/two/fake.m4a").write_text("a text file with an audio name")
    for name in IGNORED:
        (root / name).write_bytes(b"\xff\xd8\xff not for the catalogue")
    return root


def run_import(settings, *args, terminal=False, jobs="3"):
    command = [sys.executable, "-m", "mosic", "import", *map(str, args), "--jobs", jobs]
    env = clean_env(**mosic_env(settings), MOSIC_LOG_LEVEL="WARNING")
    if not terminal:
        proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
        return proc.returncode, proc.stdout + proc.stderr
    return run_in_pty(command, env)


PTY_TIMEOUT_S = 120


def run_in_pty(command, env) -> tuple[int, str]:
    """Run ``command`` with a pseudo-terminal as its stdin, stdout and stderr; an import that
    has not finished in ``PTY_TIMEOUT_S`` fails the test with what it wrote, and where its
    tasks waited (never a hang)."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen(command, env=env, stdin=follower, stdout=follower, stderr=follower)
    os.close(follower)
    chunks: list[bytes] = []
    try:
        if not _read_to_end(leader, PTY_TIMEOUT_S, chunks):
            proc.send_signal(signal.SIGUSR1)  # it logs where each of its tasks waits
            _read_to_end(leader, 3, chunks)
            proc.kill()
            proc.wait()
            output = b"".join(chunks).decode("utf-8", "replace")
            raise AssertionError(f"mosic import did not finish in {PTY_TIMEOUT_S} s:\n{output}")
    finally:
        os.close(leader)
    return proc.wait(timeout=60), b"".join(chunks).decode("utf-8", "replace")


def _read_to_end(leader: int, seconds: float, chunks: list[bytes]) -> bool:
    """Read the terminal into ``chunks`` until the child closes it (True) or time is up."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        if not select.select([leader], [], [], left)[0]:
            continue
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the child closed the terminal
            return True
        if not chunk:
            return True
        chunks.append(chunk)
    return False


def lines_for(output: str, status: str) -> set[str]:
    return set(re.findall(rf"\] {status} \S*?/music/(\S+):", output))


async def listed(api) -> list[dict]:
    resp = await api.get("/play", params={"limit": "500"})
    assert resp.status_code == 200
    return resp.json


async def test_import_without_a_terminal_reports_each_file_in_plain_lines(api, tree):
    code, output = run_import(api.settings, tree)
    assert code == 0, output
    assert lines_for(output, "added") | lines_for(output, "skipped") == {*ADDED, *SKIPPED}
    assert len(lines_for(output, "added")) == len(ADDED)  # which of the twins wins is a race
    assert lines_for(output, "failed") == set(FAILED)
    assert "\r" not in output and "\x1b" not in output  # no bar when nobody watches
    assert output.strip().splitlines()[-1] == f"{len(ADDED)} added, 1 skipped, 3 failed"
    assert re.search(r"failed \S+/broken\.mp3: the file could not be read as audio", output)

    clips = await listed(api)
    assert len(clips) == len(ADDED)
    assert {c["artist"] for c in clips} == {"Importer"}
    assert all(c["waveform_url"] for c in clips)  # peaks, as for an upload
    [top] = [c for c in clips if c["genre"] == "Rock"]
    assert top["cover_url"] is not None  # and covers
    assert len(api.stored_files()) == len(ADDED)
    assert not [p for p in api.media_files() if ".incoming" in p.parts]  # nothing left behind


async def test_a_second_import_skips_what_is_stored(api, tree):
    assert run_import(api.settings, tree, jobs="1")[0] == 0
    code, output = run_import(api.settings, tree / "albums", tree / "top.mp3", jobs="1")
    assert code == 0, output
    assert output.strip().splitlines()[-1] == "0 added, 5 skipped, 2 failed"
    assert len(await listed(api)) == len(ADDED)


async def test_import_on_a_terminal_draws_a_progress_bar(api, tree):
    code, output = run_import(api.settings, tree, terminal=True)
    assert code == 0, output
    bars = [line for line in re.split(r"[\r\n]", output) if line.startswith("importing:")]
    assert bars, output
    final = bars[-1]
    # Files, bytes, rate and ETA, as tqdm draws them.
    assert "100%" in final and f"{len(ADDED) + 4}/{len(ADDED) + 4} files" in final, final
    assert re.search(r"\d+(\.\d+)?[kM]?/\d+(\.\d+)?[kM]? \[\d\d:\d\d<\d\d:\d\d, ", final), final
    assert re.search(r"\d(\.\d+)?\s?[kM]?B/s", final), final
    assert lines_for(output, "failed") == set(FAILED)
    assert f"{len(ADDED)} added, 1 skipped, 3 failed" in output
    assert len(await listed(api)) == len(ADDED)


@pytest.mark.parametrize(
    ("paths", "code", "summary"),
    [
        (("broken.mp3", "albums/empty.flac"), 1, "0 added, 0 skipped, 2 failed"),
        (("no-such-folder",), 1, "0 added, 0 skipped, 1 failed"),
        (("notes.txt",), 0, "0 added, 0 skipped, 0 failed"),  # nothing to do is no failure
        (("broken.mp3", "field.wav"), 0, "1 added, 0 skipped, 1 failed"),
    ],
)
async def test_exit_status_is_1_only_when_everything_failed(api, tree, paths, code, summary):
    got, output = run_import(api.settings, *(tree / p for p in paths))
    assert got == code, output
    assert output.strip().splitlines()[-1] == summary
    if "no-such-folder" in paths[0]:
        assert "no such file or folder" in output


def test_bad_jobs_is_a_clear_error(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "mosic", "import", str(tmp_path), "--jobs", "0"],
        env=clean_env(MOSIC_DATA_DIR=str(tmp_path)), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "--jobs must be at least 1" in proc.stderr


async def test_sigusr1_logs_where_each_task_waits(caplog):
    gate = asyncio.Event()

    async def stuck_on_the_gate() -> None:
        await gate.wait()

    waiter = asyncio.create_task(stuck_on_the_gate(), name="the-waiter")
    before = signal.getsignal(signal.SIGUSR1)  # the test session's own (conftest)
    log_tasks_on_sigusr1()
    try:
        await asyncio.sleep(0)
        with caplog.at_level(logging.WARNING, logger="mosic"):
            os.kill(os.getpid(), signal.SIGUSR1)
            await asyncio.sleep(0.1)
    finally:
        asyncio.get_running_loop().remove_signal_handler(signal.SIGUSR1)
        signal.signal(signal.SIGUSR1, before)
        gate.set()
        await waiter
    dumped = [r.getMessage() for r in caplog.records if "the-waiter" in r.getMessage()]
    assert len(dumped) == 1 and "stuck_on_the_gate" in dumped[0], caplog.text
