"""The README is a promise: its examples run verbatim, and CI runs its test command."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from tests.support.audio import make_clip
from tests.support.server import clean_env, mosic_serve

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text(encoding="utf-8")
MARKER = "<!-- The block below is run verbatim by tests/test_readme.py"


def sh_blocks_after(heading: str) -> list[str]:
    section = README[README.index(heading) :]
    return re.findall(r"```sh\n(.*?)```", section, re.S)


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
