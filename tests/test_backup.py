"""Backups, as an operator takes them: ``mosic backup`` while the server takes uploads and
plays, ``mosic restore`` into a fresh data dir, a second backup that copies only what is new,
the schedule run by exactly one of several workers, and on PostgreSQL the share that is
Mosic's (secrets and media; the database is pg_dump's)."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
import threading
from pathlib import Path

import httpx

from mosic.core.backup import (
    MANIFEST,
    MEDIA,
    SNAPSHOTS,
    damaged,
    find_snapshot,
    media_files,
    taken_at,
)
from tests.support.audio import wav_bytes
from tests.support.server import REPO, clean_env, mosic_serve, wait_for

SEEDED = 5
# The load runs until this many more uploads, around the backup, then stops: bounded.
UPLOADS_DURING = 4
UPLOADS_AFTER = 3


def run_mosic(data_dir: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mosic", *args],
        env=clean_env(MOSIC_DATA_DIR=str(data_dir), **env),
        cwd=data_dir.parent,
        capture_output=True,
        text=True,
        timeout=300,
    )


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Load:
    """Uploads of new songs and full plays of the stored ones, in two threads, until told to
    stop; what each uploaded clip's bytes hash to."""

    def __init__(self, server) -> None:
        self.server = server
        self.uploaded: dict[str, str] = {}
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=t) for t in (self._upload, self._play)]

    def add(self, seed: int) -> None:
        data = wav_bytes(seed)
        answer = httpx.post(
            self.server.base + "/play/upload",
            headers=self.server.headers,
            files={"file": (f"song{seed}.wav", data, "audio/wav")},
            timeout=60,
        )
        assert answer.status_code == 201, answer.text
        self.uploaded[answer.json()["id"]] = sha256(data)

    def _upload(self) -> None:
        seed = 1000
        while not self._stop.is_set():
            seed += 1
            self.add(seed)

    def _play(self) -> None:
        while not self._stop.is_set():
            for clip_id in list(self.uploaded):
                assert self.server.get(f"/play/{clip_id}/stream").status_code == 200

    def __enter__(self):
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)

    def wait_for_uploads(self, count: int) -> None:
        wait_for(f"{count} uploads", lambda: len(self.uploaded) >= count, 120)


def catalogue(server) -> list[dict]:
    answer = server.get("/play", params={"limit": 500})
    assert answer.status_code == 200
    return answer.json()


def pool_state(dest: Path) -> dict[str, tuple[int, int]]:
    return {
        p.relative_to(dest).as_posix(): (p.stat().st_ino, p.stat().st_mtime_ns)
        for p in (dest / MEDIA).rglob("*")
        if p.is_file()
    }


def new_media(data: Path, dest: Path) -> set[str]:
    """The media store's files the backup pool does not have yet."""
    media = data / "media"
    names = {p.relative_to(media).as_posix() for p in media_files(media)}
    return {name for name in names if not (dest / MEDIA / name).exists()}


def test_a_backup_under_load_restores_every_clip_and_count_and_the_next_copies_only_new_media(
    tmp_path,
):
    dest, data = tmp_path / "backups", tmp_path / "data"
    with mosic_serve(data, api_key=None) as server:
        load = Load(server)
        for seed in range(SEEDED):
            load.add(seed)
        with load:
            load.wait_for_uploads(SEEDED + UPLOADS_DURING // 2)
            before = len(load.uploaded)
            first = run_mosic(data, "backup", str(dest))
            load.wait_for_uploads(len(load.uploaded) + UPLOADS_DURING // 2)
        assert first.returncode == 0, first.stderr
        load.add(99)  # one more after the load: new for the second backup
        pool, new = pool_state(dest), new_media(data, dest)
        second = run_mosic(data, "backup", str(dest))
        assert second.returncode == 0, second.stderr
        assert f"media: {len(new)} copied, {len(pool)} already there" in second.stderr
        assert new and all(pool_state(dest)[name] == kept for name, kept in pool.items())
        api_key = server.api_key
    (older, _) = sorted(p for p in (dest / SNAPSHOTS).iterdir())
    counts = json.loads((older / MANIFEST).read_text())["counts"]
    assert before <= counts["clips"] <= len(load.uploaded) - 1
    restored = run_mosic(tmp_path / "fresh", "restore", str(older))
    assert restored.returncode == 0, restored.stderr
    with mosic_serve(tmp_path / "fresh", api_key=None) as again:
        assert again.api_key == api_key  # the generated key came back with the data
        clips = catalogue(again)
        assert len(clips) == counts["clips"]
        assert sum(clip["play_count"] for clip in clips) == counts["plays"] > 0
        for clip in clips:
            body = again.get(clip["audio_url"]).content
            assert sha256(body) == load.uploaded[clip["id"]]


def test_restore_checks_every_hash_first_and_only_into_an_empty_data_dir(tmp_path):
    dest, data = tmp_path / "backups", tmp_path / "data"
    with mosic_serve(data) as server:
        Load(server).add(7)
    assert run_mosic(data, "backup", str(dest)).returncode == 0
    refused = run_mosic(data, "restore", str(dest))
    assert refused.returncode == 1 and "not empty" in refused.stderr
    (audio,) = (dest / MEDIA).rglob("*.wav")
    data = audio.read_bytes()
    audio.write_bytes(data[:-1] + bytes([data[-1] ^ 0xFF]))  # one bit rotted
    broken = run_mosic(tmp_path / "fresh", "restore", str(dest))
    assert broken.returncode == 1 and "damaged" in broken.stderr, broken.stderr
    assert not any(p.is_file() for p in (tmp_path / "fresh").rglob("*"))


def test_on_postgresql_a_backup_holds_secrets_and_media_and_says_to_use_pg_dump(
    tmp_path, fresh_postgres_db
):
    db = fresh_postgres_db
    pg = {"MOSIC_DATABASE_URL_OVERRIDE": f"postgresql://{db.user}@{db.host}:{db.port}/{db.name}"}
    dest, data = tmp_path / "backups", tmp_path / "data"
    with mosic_serve(data, **pg) as server:
        load = Load(server)
        load.add(3)
        taken = run_mosic(data, "backup", str(dest), **pg)
    assert taken.returncode == 0, taken.stderr
    assert "pg_dump" in taken.stderr
    snapshot = find_snapshot(dest)
    manifest = json.loads((snapshot / MANIFEST).read_text())
    assert manifest["database"] == "postgresql" and set(manifest["files"]) == {"signing_secret"}
    assert list(load.uploaded.values())[0] + ".wav" in {Path(n).name for n in manifest["media"]}
    restored = run_mosic(tmp_path / "fresh", "restore", str(dest), **pg)
    assert restored.returncode == 0 and "pg_restore" in restored.stderr, restored.stderr
    assert damaged(snapshot, manifest) == []
    assert {p.name for p in (tmp_path / "fresh" / "media").rglob("*.wav")} == {
        Path(n).name for n in manifest["media"] if n.endswith(".wav")
    }


# The schedule's interval in the test: short, so that several backups are due within it.
SCHEDULE_INTERVAL_S = 2
SCHEDULED = 3


def test_scheduled_backups_are_taken_by_one_worker_and_pruned_to_the_kept_number(tmp_path):
    dest, data = tmp_path / "backups", tmp_path / "data"
    schedule = {
        "MOSIC_BACKUP_DIR": str(dest),
        "MOSIC_BACKUP_INTERVAL_H": str(SCHEDULE_INTERVAL_S / 3600),
        "MOSIC_BACKUP_KEEP": "2",
        "MOSIC_WORKERS": "2",
    }
    with mosic_serve(data, **schedule) as server:
        Load(server).add(11)

        def taken() -> list[str]:
            lines = server.output().splitlines()
            return [
                line.split("scheduled backup ")[1].split(":")[0]
                for line in lines
                if "scheduled backup " in line
            ]

        wait_for(f"{SCHEDULED} scheduled backups", lambda: len(taken()) >= SCHEDULED, 120)
    stamps = sorted(Path(path).name for path in taken())
    assert len(set(stamps)) == len(stamps)
    times = [taken_at(Path(stamp)).timestamp() for stamp in stamps]
    # Only one process takes each: never two within one interval.
    assert all(b - a >= SCHEDULE_INTERVAL_S for a, b in zip(times, times[1:], strict=False))
    kept = sorted(p.name for p in (dest / SNAPSHOTS).iterdir())
    assert kept == stamps[-2:]
    for stamp in kept:
        manifest = json.loads((dest / SNAPSHOTS / stamp / MANIFEST).read_text())
        assert damaged(dest / SNAPSHOTS / stamp, manifest) == []


def test_the_readme_commands_back_up_and_restore_verbatim(tmp_path):
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("### Back up and restore") :]
    block = re.findall(r"```sh\n(.*?)```", section, re.S)[0]
    work, data = tmp_path / "work", tmp_path / "work" / "data"
    with mosic_serve(data, api_key=None) as server:
        load = Load(server)
        load.add(5)
        ran = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", block],
            cwd=work,
            env=clean_env(MOSIC_DATA_DIR=str(data)),
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert ran.returncode == 0, ran.stderr
    with mosic_serve(work / "restored", api_key=None) as again:
        assert again.api_key == server.api_key
        (clip,) = catalogue(again)
        assert sha256(again.get(clip["audio_url"]).content) == load.uploaded[clip["id"]]
