"""Operating Mosic: probes, settings, generated secrets, migrations, the command line,
and the embedded database under concurrent writes."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import stat
import subprocess
import sys
import time

import falcon.testing
import pytest

from mosic import __version__
from mosic.app import create_app
from mosic.media.local import LocalStore
from mosic.persistence.database import make_sync_database
from mosic.persistence.migrations import apply_pending, available, pending
from mosic.settings import PostgresConfig, Settings
from tests.conftest import LOCAL_BACKENDS, Api
from tests.support.server import free_port


def run_mosic(*args, env=None, cwd=None, timeout=60):
    base = {k: v for k, v in os.environ.items() if not k.startswith("MOSIC_")}
    return subprocess.run(
        [sys.executable, "-m", "mosic", *args],
        env=base | (env or {}),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


async def test_healthz_touches_no_database(tmp_path):
    # A PostgreSQL nobody listens on: liveness must not care, readiness must.
    settings = Settings(
        data_dir=tmp_path,
        api_key="k",
        postgres=PostgresConfig(host="127.0.0.1", port=1, name="none"),
    )
    async with falcon.testing.ASGIConductor(create_app(settings)) as client:
        health = await client.simulate_get("/healthz")
        assert health.status_code == 200
        assert health.json == {"status": "ok"}
        ready = await client.simulate_get("/readyz")
        assert ready.status_code == 503
        assert any("database" in reason for reason in ready.json["reasons"])
        listing = await client.simulate_get("/play", headers={"X-API-Key": "k"})
        assert listing.status_code == 503
        assert listing.json["title"] == "Database unavailable"
        assert "Retry-After" in listing.headers
        metrics = await client.simulate_get("/metrics")
        assert metrics.status_code == 200
        assert "mosic_database_errors_total" in metrics.text


@pytest.mark.parametrize("backend", LOCAL_BACKENDS, indirect=True)
async def test_readyz_reports_an_unwritable_media_store(api):
    assert (await api.get("/readyz", key=None)).json == {"status": "ok"}
    shutil.rmtree(api.settings.media_root)
    api.settings.media_root.write_text("a file where the media directory should be")
    resp = await api.get("/readyz", key=None)
    assert resp.status_code == 503
    assert resp.json["reasons"] == ["media store is not writable"]


async def test_a_key_is_generated_once_kept_0600_and_reused(tmp_path):
    settings = Settings(data_dir=tmp_path)
    key_file = tmp_path / "api_key"
    apply_pending(make_sync_database(settings))
    async with falcon.testing.ASGIConductor(create_app(settings)) as client:
        key = key_file.read_text().strip()
        assert len(key) >= 40
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        assert stat.S_IMODE((tmp_path / "signing_secret").stat().st_mode) == 0o600
        assert (await client.simulate_get("/play")).status_code == 401
        ok = await client.simulate_get("/play", headers={"X-API-Key": key})
        assert ok.status_code == 200
    create_app(settings)
    assert key_file.read_text().strip() == key


def test_a_generated_key_is_announced_once_and_then_reused(tmp_path):
    # The printing itself is checked end to end, through `mosic serve`, in test_e2e.
    from mosic.persistence.secrets import resolve_credentials

    said = []
    first = resolve_credentials(
        Settings(data_dir=tmp_path), announce=lambda key, path: said.append((key, path))
    )
    again = resolve_credentials(
        Settings(data_dir=tmp_path), announce=lambda key, path: said.append((key, path))
    )
    assert said == [(first.api_key, tmp_path / "api_key")]
    assert again == first


@pytest.mark.parametrize(
    "env, name",
    [
        ({"MOSIC_PORT": "eighty"}, "MOSIC_PORT"),
        ({"MOSIC_MAX_UPLOAD_MB": "0"}, "MOSIC_MAX_UPLOAD_MB"),
        ({"MOSIC_DB_HOST": "db", "MOSIC_DB_PORT": "x"}, "MOSIC_DB_PORT"),
        ({"MOSIC_LOG_FORMAT": "xml"}, "MOSIC_LOG_FORMAT"),
        ({"MOSIC_LOG_LEVEL": "LOUD"}, "MOSIC_LOG_LEVEL"),
        ({"MOSIC_SIGNED_URL_TTL": "-5"}, "MOSIC_SIGNED_URL_TTL"),
        ({"MOSIC_DATABASE_URL_OVERRIDE": "mysql://u@h/db"}, "MOSIC_DATABASE_URL_OVERRIDE"),
        ({"MOSIC_WORKERS": "many"}, "MOSIC_WORKERS"),
        ({"MOSIC_PORT": "70000"}, "MOSIC_PORT"),
        ({"MOSIC_METRICS_PORT": "0"}, "MOSIC_METRICS_PORT"),
        ({"MOSIC_SUBSONIC_USER": "  "}, "MOSIC_SUBSONIC_USER"),
        ({"MOSIC_TRANSCODE_MAX": "0"}, "MOSIC_TRANSCODE_MAX"),
        ({"MOSIC_TRANSCODE_CACHE_MB": "lots"}, "MOSIC_TRANSCODE_CACHE_MB"),
        ({"MOSIC_ACCEL_REDIRECT": "internal-media"}, "MOSIC_ACCEL_REDIRECT"),
        ({"MOSIC_NGINX_AUTH_REQUEST": "maybe"}, "MOSIC_NGINX_AUTH_REQUEST"),
        # nginx sends from its own disk: not with the media in a bucket.
        (
            {"MOSIC_NGINX_AUTH_REQUEST": "true", "MOSIC_STORAGE": "s3", "MOSIC_S3_BUCKET": "b"},
            "MOSIC_NGINX_AUTH_REQUEST",
        ),
        ({"MOSIC_MAX_JSON_KB": "0"}, "MOSIC_MAX_JSON_KB"),
        ({"MOSIC_BODY_TIMEOUT_S": "0"}, "MOSIC_BODY_TIMEOUT_S"),
        ({"MOSIC_BODY_TIMEOUT_S": "soon"}, "MOSIC_BODY_TIMEOUT_S"),
        ({"MOSIC_BODY_MIN_RATE": "-1"}, "MOSIC_BODY_MIN_RATE"),
        ({"MOSIC_HEADER_TIMEOUT_S": "0"}, "MOSIC_HEADER_TIMEOUT_S"),
        ({"MOSIC_HEADER_TIMEOUT_S": "nan"}, "MOSIC_HEADER_TIMEOUT_S"),
        ({"MOSIC_SHUTDOWN_GRACE_S": "-1"}, "MOSIC_SHUTDOWN_GRACE_S"),
        ({"MOSIC_BACKUP_INTERVAL_H": "0"}, "MOSIC_BACKUP_INTERVAL_H"),
        ({"MOSIC_BACKUP_KEEP": "0"}, "MOSIC_BACKUP_KEEP"),
    ],
)
def test_an_invalid_setting_stops_start_up_with_one_line_naming_it(tmp_path, env, name):
    result = run_mosic("serve", env={"MOSIC_DATA_DIR": str(tmp_path)} | env, cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert name in lines[0]
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "mosic.sqlite3").exists()


def test_settings_come_from_a_dot_env_file_in_the_working_directory(tmp_path):
    (tmp_path / ".env").write_text("MOSIC_PORT=notaport\n")
    result = run_mosic("serve", cwd=tmp_path)
    assert result.returncode == 2
    assert "MOSIC_PORT" in result.stderr


def test_bad_command_line_values_are_one_clear_line(tmp_path):
    bad = run_mosic("serve", "--port", "99999", env={"MOSIC_DATA_DIR": str(tmp_path)})
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [
        "mosic: invalid setting: --port must be a port number from 1 to 65535, got 99999"
    ]


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_taken_port_stops_serve_with_one_line_naming_it_before_it_says_it_listens(
    tmp_path, workers
):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        busy = run_mosic(
            "serve", "--port", str(port), "--workers", workers,
            env={"MOSIC_DATA_DIR": str(tmp_path)},
        )  # fmt: skip
    assert busy.returncode == 1
    lines = busy.stderr.strip().splitlines()
    assert len(lines) == 1, busy.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in lines[0]
    assert "--port or MOSIC_PORT" in lines[0]
    assert "listening" not in busy.stderr + busy.stdout
    assert "Traceback" not in busy.stderr
    # Stopped before anything else: no database made, no key generated.
    assert not (tmp_path / "mosic.sqlite3").exists()
    assert not (tmp_path / "api_key").exists()


def test_a_taken_metrics_port_names_its_own_setting(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        metrics_port = taken.getsockname()[1]
        env = {"MOSIC_DATA_DIR": str(tmp_path), "MOSIC_METRICS_PORT": str(metrics_port)}
        busy = run_mosic("serve", "--port", str(free_port()), env=env)
    assert busy.returncode == 1
    [line] = busy.stderr.strip().splitlines()
    assert line.endswith(
        f"cannot listen on 127.0.0.1:{metrics_port}: another program already uses that port; "
        "choose another with MOSIC_METRICS_PORT"
    ), line


def test_version():
    result = run_mosic("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"mosic {__version__}"


def test_migrate_on_sqlite_is_idempotent_and_logs_the_database(tmp_path):
    first = run_mosic("migrate", env={"MOSIC_DATA_DIR": str(tmp_path)})
    assert first.returncode == 0, first.stderr
    assert f"SQLite {tmp_path.resolve() / 'mosic.sqlite3'}" in first.stderr
    assert "0001_create_clip" in first.stderr
    again = run_mosic("migrate", env={"MOSIC_DATA_DIR": str(tmp_path)})
    assert again.returncode == 0
    assert "up to date" in again.stderr
    db = make_sync_database(Settings(data_dir=tmp_path))
    assert pending(db) == []
    assert "clip" in db.get_tables()


def test_replicas_migrating_at_once_on_postgres_do_not_collide(fresh_postgres_db, tmp_path):
    pg = fresh_postgres_db
    env = {
        "MOSIC_DATA_DIR": str(tmp_path),
        "MOSIC_DB_HOST": pg.host,
        "MOSIC_DB_PORT": str(pg.port),
        "MOSIC_DB_USER": pg.user,
        "MOSIC_DB_NAME": pg.name,
    }
    base = {k: v for k, v in os.environ.items() if not k.startswith("MOSIC_")}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "mosic", "migrate"],
            env=base | env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    outputs = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0], outputs
    applied = [err for _, err in outputs if "migrations: 0001_create_clip" in err]
    assert len(applied) == 1, outputs
    assert f"PostgreSQL {pg.user}@{pg.host}:{pg.port}/{pg.name}" in outputs[0][1]
    db = make_sync_database(Settings(data_dir=tmp_path, postgres=pg))
    assert db.execute_sql("SELECT count(*) FROM mosic_migrations").fetchone()[0] == len(available())
    assert pending(db) == []
    db.close()


def test_migrate_reports_an_unreachable_database_in_one_line(tmp_path):
    result = run_mosic(
        "migrate",
        env={"MOSIC_DATA_DIR": str(tmp_path), "MOSIC_DB_HOST": "127.0.0.1", "MOSIC_DB_PORT": "1"},
    )
    assert result.returncode == 1
    assert "migration failed" in result.stderr
    assert "Traceback" not in result.stderr


async def test_sqlite_takes_concurrent_uploads_and_plays_without_locking_errors(
    tmp_path, clip_file
):
    settings = Settings(data_dir=tmp_path, api_key="k")
    db = make_sync_database(settings)
    apply_pending(db)
    db.close()
    async with falcon.testing.ASGIConductor(create_app(settings)) as conductor:
        api = Api(conductor, settings, settings.media_root)
        files = [clip_file("mp3", seconds=0.5, freq=200 + 10 * i).read_bytes() for i in range(12)]
        uploads = await asyncio.gather(*(api.upload(data, key="k") for data in files))
        assert [r.status_code for r in uploads] == [201] * 12, [r.text for r in uploads]
        target = uploads[0].json["id"]
        other = [api.upload(data, key="k", title="dup") for data in files[:4]]
        listens = [api.get(f"/play/{target}/stream", key="k") for _ in range(150)]
        results = await asyncio.gather(*listens, *other)
        assert [r.status_code for r in results[:150]] == [200] * 150
        assert [r.status_code for r in results[150:]] == [409] * 4
        stats = await api.get(f"/play/{target}/stats", key="k")
        assert stats.json["play_count"] == 150
        assert len(api.stored_files()) == 12


async def test_the_sweep_removes_only_part_files_nobody_holds(tmp_path):
    store = LocalStore(tmp_path / "media")
    store.prepare()
    orphans = [store.incoming_dir / "crashed.part", store.incoming_dir / "just-left.part"]
    for orphan in orphans:
        orphan.write_bytes(b"partial")
    receiving = await store.receive(1024)
    await receiving.write(b"live bytes")
    old = time.time() - 24 * 60 * 60
    os.utime(receiving.path, (old, old))
    assert await store.sweep() == 2
    assert not any(orphan.exists() for orphan in orphans)
    # Still locked by its receiver, however long it has been quiet.
    assert receiving.path.exists()
    await receiving.discard()
    assert not receiving.path.exists()
