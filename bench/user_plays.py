"""The play path with users, against the release before users, in one run.

Issue 20 counts every play twice, in the clip's global count and in its listener's own (with a
history row and "now playing"), and asks the play path to keep at least 80 % of the plays/s it
had. Each side serves ``bench.plays``' 2,000 concurrent ``GET /play/{id}/stream`` (a 5 s MP3,
read whole) through one ``mosic serve`` worker, on SQLite and on PostgreSQL, each with a fresh
database:

- **before**: the code of ``PREVIOUS`` (``git archive``), the admin's configured key;
- **after, admin**: today's code and the configured key (compared in memory);
- **after, listener**: today's code and a listener's key (found in the database each request).

Exact means every response is whole and ``/stats`` moves by exactly the plays sent.

    python -m bench.user_plays
"""

from __future__ import annotations

import contextlib
import dataclasses
import random
import subprocess
import sys
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx

from bench.common import API_KEY, log, postgres_url, temp_dir
from bench.plays import CLIP_SECONDS, _describe, http_plays
from tests.support.server import mosic_serve

PREVIOUS = "3332196"  # main before per-user counting (issue 20's second half)
REPO = Path(__file__).resolve().parent.parent
TARGET = 0.80


def previous_code(into: Path) -> Path:
    into.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", PREVIOUS, "mosic"], capture_output=True, check=True
    )
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return into


@contextlib.contextmanager
def fresh_database(url: str | None):
    """A new, empty PostgreSQL database beside ``url``'s (None stays None: SQLite)."""
    if url is None:
        yield None
        return
    import psycopg

    name = f"bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    parts = urlsplit(url)
    try:
        yield urlunsplit(parts._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def measure(root: Path, label: str, clip: Path, url: str | None, code: Path | None, as_listener):
    env = {"MOSIC_DATABASE_URL_OVERRIDE": url} if url else {}
    data = root / f"data-{label}"
    with fresh_database(url) as db_url:
        if db_url:
            env["MOSIC_DATABASE_URL_OVERRIDE"] = db_url
        with mosic_serve(data, "--workers", "1", api_key=API_KEY, pythonpath=code, **env) as srv:
            created = srv.upload(clip, "audio/mpeg")
            if as_listener:
                made = httpx.post(f"{srv.base}/users", headers=srv.headers,
                                  json={"name": "listener"}, timeout=10)  # fmt: skip
                made.raise_for_status()
                srv = dataclasses.replace(srv, api_key=made.json()["key"]["key"])
            log(f"{label}: 3 x 2,000 plays")
            result = http_plays(srv, created["id"], created["size"])
    log(f"{label}: {_describe(result)} {result['rates']}")
    return result


def main() -> int:
    from tests.support.audio import make_clip

    table = []
    with temp_dir("mosic-bench-user-plays-") as root, contextlib.ExitStack() as stack:
        old = previous_code(root / "previous")
        clip = make_clip(
            root / "tone.mp3", "mp3", seconds=CLIP_SECONDS, freq=random.randint(200, 2000)
        )
        for backend in ("postgresql", "sqlite"):
            url = stack.enter_context(postgres_url()) if backend == "postgresql" else None
            before = measure(root, f"{backend}-before", clip, url, old, False)
            admin = measure(root, f"{backend}-admin", clip, url, None, False)
            listener = measure(root, f"{backend}-listener", clip, url, None, True)
            table.append((backend, before, admin, listener))
    print(f"{'database':<11} {'before':>12} {'after, admin':>20} {'after, listener':>20}  exact")
    missed = False
    for backend, before, admin, listener in table:
        cells = [f"{before['rate']:,.0f}/s"]
        for after in (admin, listener):
            share = after["rate"] / before["rate"]
            missed |= share < TARGET
            cells.append(f"{after['rate']:,.0f}/s = {share:.0%}")
        exact = all(r["exact"] for r in (before, admin, listener))
        print(f"{backend:<11} {cells[0]:>12} {cells[1]:>20} {cells[2]:>20}  {exact}")
    print(f"target: after >= {TARGET:.0%} of before ({'missed' if missed else 'met'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
