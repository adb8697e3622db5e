"""The README is a promise: its examples run verbatim, and CI runs its test command."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

from tests.support.audio import make_clip
from tests.support.readme import docker_run_commands, with_podman
from tests.support.server import clean_env, mosic_serve

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text(encoding="utf-8")
MARKER = "<!-- The block below is run verbatim by tests/test_readme.py"


def sh_blocks_after(heading: str) -> list[str]:
    section = README[README.index(heading) :]
    return re.findall(r"```sh\n(.*?)```", section, re.S)


def run_after_setup(block: str, base: str, cwd: Path) -> subprocess.CompletedProcess:
    """``block`` run as a reader would: after the By example setup block, in the directory
    whose ./data the server keeps (so the setup finds its key)."""
    setup = sh_blocks_after("### By example")[0]
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", f"{setup}\nexport MOSIC={base}\n{block}"],
        cwd=cwd,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_ci_runs_the_readme_test_command():
    [command] = re.findall(r"## Test it\n\n```sh\n(.*?)\n```", README)
    assert command in (REPO / ".ci" / "run").read_text()
    assert "ruff check ." in (REPO / ".ci" / "run").read_text()


def test_the_api_examples_work_verbatim(tmp_path):
    setup, examples = sh_blocks_after("### By example")[:2]
    assert README.index(MARKER) < README.index(examples)
    make_clip(tmp_path / "song.mp3", "mp3", seconds=2.0, title="Tagged", artist="Birds Inc.")
    # The server keeps its data in ./data of the examples' working directory, as
    # `mosic serve` does when run from there, and generates its own key.
    with mosic_serve(tmp_path / "data", api_key=None) as server:
        script = f"{setup}\nexport MOSIC={server.base}\n{examples}"
        result = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            cwd=tmp_path,
            env=clean_env(),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert '"title": "Morning Birds"' in result.stdout  # form field over the tag
        assert '"artist": "Birds Inc."' in result.stdout
        assert '"song_id"' in result.stdout
        assert '"samples_per_pixel"' in result.stdout  # the waveform
        assert "}404\n" in result.stdout  # the cover of a file without a picture
        assert (tmp_path / "whole.mp3").read_bytes() == (tmp_path / "song.mp3").read_bytes()
        assert (tmp_path / "part.bin").read_bytes() == (tmp_path / "song.mp3").read_bytes()[
            1000:2000
        ]
        opus = (tmp_path / "small.opus").read_bytes()
        assert opus.startswith(b"OggS") and b"OpusHead" in opus[:100]
        assert (tmp_path / "small-start.opus").read_bytes() == opus[:1000]  # from the cache
        assert (tmp_path / "small.mp3").read_bytes().startswith(b"ID3")  # then MPEG audio
        # The last example deleted the upload; the metadata-only clip is left.
        listing = server.get("/play").json()
        assert [clip["title"] for clip in listing] == ["Evening"]


def test_the_subsonic_check_and_the_scan_question_work_verbatim(tmp_path):
    # One variable for the key in every example: the setup block's $KEY.
    assert "$MOSIC_API_KEY" not in README
    [ping] = sh_blocks_after("## Subsonic apps")[:1]
    [scan] = sh_blocks_after("### Under Compose and Helm")[:1]
    music = tmp_path / "Music"
    make_clip(music / "album" / "01.mp3", "mp3", seconds=1.0, title="Indexed")
    with mosic_serve(tmp_path / "data", api_key=None, MOSIC_LIBRARY_DIRS=str(music)) as server:
        pinged = run_after_setup(ping, server.base, tmp_path)
        assert pinged.returncode == 0, pinged.stdout + pinged.stderr
        answer = json.loads(pinged.stdout)["subsonic-response"]
        assert answer["status"] == "ok", answer
        asked = run_after_setup(scan, server.base, tmp_path)
        assert asked.returncode == 0, asked.stdout + asked.stderr
        status = json.loads(asked.stdout)
        assert {"scanning", "seen", "added"} <= status.keys()


def test_the_users_examples_work_verbatim(tmp_path):
    commands, requests, history = sh_blocks_after("## Users")[:3]
    with mosic_serve(tmp_path / "data", api_key=None) as server:
        # The commands find the server's ./data, as they would beside a plain `mosic serve`.
        bash = ["bash", "-euo", "pipefail", "-c", commands]
        ran = subprocess.run(bash, cwd=tmp_path, env=clean_env(), capture_output=True, text=True,
                             timeout=300)  # fmt: skip
        assert ran.returncode == 0, ran.stdout + ran.stderr
        first, read, *listed = ran.stdout.splitlines()
        assert listed == ["mosic\tadmin\tevery folder", "Sam\tlistener\tevery folder"]
        assert len(first) >= 40 and len(read) >= 40
        assert {server.get("/me", headers={"X-API-Key": k}).status_code for k in (first, read)} == {
            401
        }  # removed by the last command
        asked = run_after_setup(requests, server.base, tmp_path)
        assert asked.returncode == 0, asked.stdout + asked.stderr
        decoder, text = json.JSONDecoder(), asked.stdout  # curl prints the two bodies as one line
        made, end = decoder.raw_decode(text)
        me = decoder.raw_decode(text[end:].lstrip())[0]
        assert (made["name"], made["role"], made["key"]["scope"]) == ("Alex", "listener", "full")
        assert server.get("/me", key=False, headers={"X-API-Key": made["key"]["key"]}).json() == {
            "name": "Alex", "role": "listener", "music_folders": None,
        }  # fmt: skip
        assert me["role"] == "admin"
        played = run_after_setup(history, server.base, tmp_path)
        assert played.returncode == 0, played.stdout + played.stderr
        assert json.loads(played.stdout) == []  # the admin has played nothing yet


def test_docker_run_starts_in_the_background_and_its_logs_are_read_by_name():
    # tests/test_appliance.py runs these commands with podman (.ci/appliance).
    run, logs = docker_run_commands()
    assert run[:5] == ["docker", "run", "-d", "--name", "mosic"]
    assert logs == ["docker", "logs", "mosic"]
    assert with_podman(run, name="c1", port=1234, volume="v1", image="img") == [
        "podman", "run", "-d", "--name", "c1", "-p", "127.0.0.1:1234:8000", "-v", "v1:/data", "img"
    ]  # fmt: skip
    assert with_podman(logs, name="c1", port=1234, volume="v1", image="img") == [
        "podman", "logs", "c1"
    ]  # fmt: skip
