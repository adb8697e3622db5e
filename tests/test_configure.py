"""Configuring Mosic the way containers do: secrets in files, references a tool left
unexpanded, and keeping /metrics off the port an Ingress publishes."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx
import pytest

from mosic.settings import SettingsError, load_settings
from tests.support.server import clean_env, mosic_serve

SECRETS = {
    "MOSIC_API_KEY": "api_key",
    "MOSIC_SIGNING_SECRET": "signing_secret",
}


def run_mosic(*args, env, cwd, timeout=60):
    return subprocess.run(
        [sys.executable, "-m", "mosic", *args],
        env=clean_env(**env),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def settings_from(monkeypatch, tmp_path, **env: str):
    for name in [n for n in os.environ if n.startswith("MOSIC_")]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return load_settings(env_file=None)


@pytest.mark.parametrize(
    "env, name",
    [
        # What Debian's podman-compose 1.0.3 hands over for `${MOSIC_API_KEY:-}`.
        ({"MOSIC_API_KEY": "${MOSIC_API_KEY:-}"}, "MOSIC_API_KEY"),
        ({"MOSIC_SIGNING_SECRET": "prefix-${MOSIC_SIGNING_SECRET}"}, "MOSIC_SIGNING_SECRET"),
        # Through another variable and back.
        ({"MOSIC_DB_HOST": "${OTHER_HOST}", "OTHER_HOST": "${MOSIC_DB_HOST}"}, "MOSIC_DB_HOST"),
    ],
)
def test_a_value_that_refers_to_itself_is_one_line_naming_it(tmp_path, env, name):
    result = run_mosic("serve", env={"MOSIC_DATA_DIR": str(tmp_path)} | env, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert name in lines[0] and "refers to itself" in lines[0]
    assert "RecursionError" not in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "mosic.sqlite3").exists()


def test_a_reference_to_another_variable_still_expands(monkeypatch, tmp_path):
    settings = settings_from(
        monkeypatch, tmp_path, MOSIC_API_KEY="${SHARED_KEY}", SHARED_KEY="k" * 32
    )
    assert settings.api_key == "k" * 32


def test_secret_settings_read_from_files_like_compose_secrets(monkeypatch, tmp_path):
    files = {}
    for name, value in {
        "MOSIC_API_KEY_FILE": "key-from-file",
        "MOSIC_SIGNING_SECRET_FILE": "signing-from-file",
        "MOSIC_DB_PASSWORD_FILE": "pw-from-file",
    }.items():
        path = tmp_path / name.lower()
        path.write_text(value + "\n")  # a trailing newline is not part of the secret
        files[name] = str(path)
    settings = settings_from(monkeypatch, tmp_path, MOSIC_DB_HOST="db", **files)
    assert settings.api_key == "key-from-file"
    assert settings.signing_secret == "signing-from-file"
    assert settings.postgres.password == "pw-from-file"

    url = tmp_path / "url"
    url.write_text("postgresql://u:s3cret@db.internal:6432/media\n")
    settings = settings_from(monkeypatch, tmp_path, MOSIC_DATABASE_URL_OVERRIDE_FILE=str(url))
    assert (settings.postgres.host, settings.postgres.port) == ("db.internal", 6432)
    assert settings.postgres.password == "s3cret"


def test_a_secret_file_and_a_value_together_or_a_missing_file_are_errors(monkeypatch, tmp_path):
    key = tmp_path / "key"
    key.write_text("from-file")
    with pytest.raises(SettingsError, match="MOSIC_API_KEY or MOSIC_API_KEY_FILE, not both"):
        settings_from(monkeypatch, tmp_path, MOSIC_API_KEY="x", MOSIC_API_KEY_FILE=str(key))
    missing = tmp_path / "nowhere"
    with pytest.raises(SettingsError, match=f"MOSIC_SIGNING_SECRET_FILE: cannot read {missing}"):
        settings_from(monkeypatch, tmp_path, MOSIC_SIGNING_SECRET_FILE=str(missing))
    # An empty value beside a file is what Compose passes for an unset ${VAR:-}: the file wins.
    settings = settings_from(monkeypatch, tmp_path, MOSIC_API_KEY="", MOSIC_API_KEY_FILE=str(key))
    assert settings.api_key == "from-file"


def test_the_api_key_file_is_what_clients_must_send(tmp_path):
    key = tmp_path / "secret"
    key.write_text("a-key-from-a-compose-secret\n")
    # MOSIC_API_KEY empty beside the file, as Compose passes an unset ${MOSIC_API_KEY:-}.
    with mosic_serve(tmp_path / "data", api_key="", MOSIC_API_KEY_FILE=str(key)) as mosic:
        assert not (tmp_path / "data" / "api_key").exists(), "no key generated"
        headers = {"X-API-Key": "a-key-from-a-compose-secret"}
        assert httpx.get(mosic.base + "/play", headers=headers).status_code == 200
        assert httpx.get(mosic.base + "/play", headers={"X-API-Key": "x"}).status_code == 401


def test_metrics_can_leave_the_api_port(tmp_path):
    with mosic_serve(
        tmp_path / "data", "--workers", "2", metrics_port=True, MOSIC_METRICS_ON_API_PORT="false"
    ) as mosic:
        assert mosic.base != mosic.metrics_base
        off = httpx.get(mosic.base + "/metrics")
        assert off.status_code == 404
        assert "metrics port" in off.json()["description"]
        assert httpx.get(mosic.base + "/healthz").status_code == 200
        scraped = httpx.get(mosic.metrics_base + "/metrics")
        assert scraped.status_code == 200 and "mosic_plays_total" in scraped.text


def test_metrics_stay_on_the_api_port_by_default_and_without_a_metrics_port(tmp_path):
    with mosic_serve(tmp_path / "a", metrics_port=True) as mosic:
        assert httpx.get(mosic.base + "/metrics").status_code == 200
    # Without a metrics port the setting cannot hide the only place metrics are served.
    with mosic_serve(tmp_path / "b", MOSIC_METRICS_ON_API_PORT="false") as mosic:
        assert httpx.get(mosic.base + "/metrics").status_code == 200
