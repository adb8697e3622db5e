"""Users and their keys, against a real ``mosic serve`` (two workers) on SQLite and PostgreSQL:
an admin makes a listener and keys; a listener is refused every admin route; a revoked key is
refused at once by every worker; Subsonic apps log in as a user with each login form; no key
or password text is kept anywhere; and ``mosic user`` does the same from the command line."""

from __future__ import annotations

import hashlib
import secrets
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from mosic.persistence.models import ADMIN_ID
from tests.conftest import LOCAL_BACKENDS
from tests.support.server import clean_env, mosic_serve
from tests.test_folders import db_env, query

REQUESTS_PER_WORKER = 12  # enough that both workers answer some (new connection each)


@pytest.fixture(params=LOCAL_BACKENDS)
def pg(request):
    if request.param != "postgresql":
        yield None
        return
    yield request.getfixturevalue("fresh_postgres_db")


@pytest.fixture
def server(tmp_path, pg):
    with mosic_serve(tmp_path / "data", "--workers", "2", **db_env(pg)) as running:
        running.pg = pg
        yield running


def call(server, method: str, path: str, key: str | None, **kwargs) -> httpx.Response:
    headers = {"X-API-Key": key} if key is not None else {}
    return httpx.request(method, server.base + path, headers=headers, timeout=10, **kwargs)


def add_user(server, name: str, **fields) -> tuple[dict, str]:
    made = call(server, "POST", "/users", server.api_key, json={"name": name, **fields})
    assert made.status_code == 201, made.text
    body = made.json()
    return body, body["key"]["key"]


def subsonic(server, method: str, **params) -> dict:
    answer = httpx.get(f"{server.base}/rest/{method}", params={**params, "f": "json"}, timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.json()["subsonic-response"]


def token(key: str) -> dict:
    salt = secrets.token_hex(6)
    return {"t": hashlib.md5((key + salt).encode(), usedforsecurity=False).hexdigest(), "s": salt}


def test_an_admin_makes_a_listener_who_may_not_manage_anything(server):
    body, key = add_user(server, "Kid")
    assert {k: body[k] for k in ("name", "role", "music_folders")} == {
        "name": "Kid", "role": "listener", "music_folders": None,
    }  # fmt: skip
    assert body["key"]["scope"] == "full" and len(key) >= 40
    assert call(server, "GET", "/me", key).json() == {
        "name": "Kid", "role": "listener", "music_folders": None,
    }  # fmt: skip
    assert call(server, "GET", "/me", server.api_key).json()["role"] == "admin"
    assert call(server, "GET", "/play", key).status_code == 200  # a listener reads
    for method, path in [("GET", "/users"), ("POST", "/users"), ("GET", "/users/Kid"),
                         ("DELETE", "/users/Kid"), ("GET", "/users/Kid/keys"),
                         ("POST", "/users/Kid/keys"), ("POST", "/library/scan")]:  # fmt: skip
        refused = call(server, method, path, key, json={})
        assert refused.status_code == 403, (method, path, refused.text)
        assert refused.json()["title"] == "Admins only"
    listed = call(server, "GET", "/users", server.api_key).json()
    assert [(u["name"], u["role"]) for u in listed] == [("Kid", "listener"), ("mosic", "admin")]


@pytest.mark.parametrize(
    ("fields", "status", "says"),
    [
        ({"name": ""}, 400, "non-empty"),
        ({"name": "x" * 65}, 400, "at most 64"),
        ({"name": " padded"}, 400, "spaces"),
        ({"name": "a/b"}, 400, "'/'"),
        ({"name": "ok", "role": "root"}, 400, "role must be one of admin, listener"),
        ({"name": "ok", "music_folders": ["Nowhere"]}, 400, "no music folder named 'Nowhere'"),
        ({"name": "ok", "music_folders": "Uploads"}, 400, "a list of music folder names"),
        ({"name": "MOSIC"}, 409, "exists"),  # the admin's name, in another case
        ({"name": "ok", "extra": 1}, 400, "unknown field"),
    ],
)
def test_bad_users_are_refused_saying_why(tmp_path, fields, status, says):
    with mosic_serve(tmp_path / "data") as server:
        answer = call(server, "POST", "/users", server.api_key, json=fields)
        assert answer.status_code == status, answer.text
        assert says in answer.json()["description"]


def test_the_admin_stays_an_admin_and_cannot_be_removed(server):
    admin = "/users/mosic"
    assert call(server, "DELETE", admin, server.api_key).status_code == 409
    assert (
        call(server, "PATCH", admin, server.api_key, json={"role": "listener"}).status_code == 409
    )
    assert call(server, "GET", "/users/nobody", server.api_key).status_code == 404


def test_keys_are_shown_once_scoped_and_revoked_at_once_on_every_worker(server):
    _, full = add_user(server, "Ann", music_folders=["Uploads"])
    made = call(server, "POST", "/users/Ann/keys", server.api_key, json={"scope": "read"})
    assert made.status_code == 201, made.text
    read = made.json()
    assert read["scope"] == "read" and read["key"] != full
    listed = call(server, "GET", "/users/Ann/keys", server.api_key).json()
    assert {k["scope"] for k in listed} == {"full", "read"}
    assert all(set(k) == {"id", "scope", "created_at"} for k in listed)  # never the key
    remote = {"title": "t", "duration": 1, "audio_url": "https://example.com/a.mp3"}
    assert call(server, "POST", "/play", read["key"], json=remote).status_code == 403
    assert call(server, "POST", "/play", full, json=remote).status_code == 201
    gone = call(server, "DELETE", f"/users/Ann/keys/{read['id']}", server.api_key)
    assert gone.status_code == 204
    # Every request a new connection: both workers answer, and none accepts the key.
    answers = {call(server, "GET", "/me", read["key"]).status_code
               for _ in range(2 * REQUESTS_PER_WORKER)}  # fmt: skip
    assert answers == {401}
    assert (
        call(server, "DELETE", f"/users/Ann/keys/{read['id']}", server.api_key).status_code == 404
    )
    assert call(server, "GET", "/me", full).json()["music_folders"] == ["Uploads"]


def test_removing_a_user_removes_its_keys_and_gives_its_uploads_to_the_admin(server):
    _, key = add_user(server, "Leaving")
    remote = {"title": "mine", "duration": 1, "audio_url": "https://example.com/m.mp3"}
    clip = call(server, "POST", "/play", key, json=remote).json()
    assert call(server, "DELETE", "/users/Leaving", server.api_key).status_code == 204
    assert call(server, "GET", "/me", key).status_code == 401
    owner = query(server.data_dir, server.pg, "SELECT owner_id FROM clip WHERE id = ?",
                  clip["id"] if server.pg else clip["id"].replace("-", ""))  # fmt: skip
    assert owner == [(ADMIN_ID,)]
    assert call(server, "GET", f"/play/{clip['id']}", server.api_key).status_code == 200


def test_a_listener_changes_and_deletes_its_own_uploads_only(server):
    _, ann = add_user(server, "Ann")
    _, bob = add_user(server, "Bob")
    remote = {"title": "Ann's", "duration": 1, "audio_url": "https://example.com/a.mp3"}
    clip = call(server, "POST", "/play", ann, json=remote).json()
    path = f"/play/{clip['id']}"
    for method, body in (("PATCH", {"title": "Bob was here"}), ("DELETE", None)):
        refused = call(server, method, path, bob, json=body)
        assert refused.status_code == 403 and refused.json()["title"] == "Not yours"
    assert call(server, "PATCH", path, ann, json={"title": "Still Ann's"}).status_code == 200
    assert call(server, "PATCH", path, server.api_key, json={"title": "Admin's"}).status_code == 200
    assert call(server, "GET", path, bob).json()["title"] == "Admin's"  # a listener reads it
    assert call(server, "DELETE", path, ann).status_code == 204


def test_subsonic_apps_log_in_as_a_user_with_each_form(server):
    _, key = add_user(server, "Kid")
    logins = [
        {"u": "Kid", "p": key},
        {"u": "kid", "p": "enc:" + key.encode().hex()},  # names ignore case
        {"u": "Kid", **token(key)},
        {"apiKey": key},
    ]
    for login in logins:
        answer = subsonic(server, "ping", **login)
        assert answer["status"] == "ok", (login.keys(), answer)
    me = subsonic(server, "getUser", u="Kid", p=key, username="Kid")["user"]
    assert (me["username"], me["adminRole"]) == ("Kid", False)
    assert subsonic(server, "tokenInfo", apiKey=key)["tokenInfo"] == {"username": "Kid"}
    for wrong in ({"u": "mosic", "p": key}, {"u": "Kid", "p": server.api_key},
                  {"u": "Kid", **token(server.api_key)}):  # fmt: skip
        assert subsonic(server, "ping", **wrong)["error"]["code"] == 40
    for method, params in [("getUsers", {}), ("getUser", {"username": "mosic"}),
                           ("createUser", {"username": "x", "password": "long enough pw"}),
                           ("deleteUser", {"username": "mosic"}), ("startScan", {})]:  # fmt: skip
        answer = subsonic(server, method, u="Kid", p=key, **params)
        assert answer["error"]["code"] == 50, (method, answer)


def test_subsonic_admins_manage_users_and_passwords(server):
    admin = {"u": "mosic", "p": server.api_key}
    made = subsonic(server, "createUser", **admin, username="Dad", password="correct horse battery",
                    musicFolderId="1")  # fmt: skip
    assert made["status"] == "ok", made
    users = subsonic(server, "getUsers", **admin)["users"]["user"]
    assert {u["username"]: u["folder"] for u in users} == {"Dad": [1], "mosic": [1]}
    assert subsonic(server, "ping", u="dad", p="correct horse battery")["status"] == "ok"
    assert subsonic(server, "ping", u="Dad", **token("correct horse battery"))["status"] == "ok"
    # A password is its user's alone: not an API key, nor another user's password.
    assert subsonic(server, "ping", apiKey="correct horse battery")["error"]["code"] == 44
    assert call(server, "GET", "/me", "correct horse battery").status_code == 401
    subsonic(server, "createUser", **admin, username="Mum", password="correct horse battery")
    assert subsonic(server, "ping", u="Mum", p="correct horse battery")["status"] == "ok"
    changed = subsonic(server, "changePassword", u="Dad", p="correct horse battery",
                       username="Dad", password="enc:" + b"a new long password".hex())  # fmt: skip
    assert changed["status"] == "ok", changed
    assert subsonic(server, "ping", u="Dad", p="correct horse battery")["error"]["code"] == 40
    assert subsonic(server, "ping", u="Dad", p="a new long password")["status"] == "ok"
    assert subsonic(server, "ping", u="Mum", p="correct horse battery")["status"] == "ok"
    short = subsonic(server, "changePassword", **admin, username="Mum", password="short")
    assert "at least 12" in short["error"]["message"]
    assert (
        subsonic(server, "updateUser", **admin, username="Mum", adminRole="true")["status"] == "ok"
    )
    assert call(server, "GET", "/users/Mum", server.api_key).json()["role"] == "admin"
    assert subsonic(server, "deleteUser", **admin, username="Dad")["status"] == "ok"
    assert subsonic(server, "ping", u="Dad", p="a new long password")["error"]["code"] == 40
    assert subsonic(server, "deleteUser", **admin, username="Dad")["error"]["code"] == 70


def test_no_key_or_password_text_is_kept_anywhere(server):
    _, key = add_user(server, "Kid")
    read = call(server, "POST", "/users/Kid/keys", server.api_key, json={"scope": "read"}).json()
    password = "a password nobody may read"
    subsonic(server, "changePassword", u="Kid", p=key, username="Kid", password=password)
    assert subsonic(server, "ping", u="Kid", p=password)["status"] == "ok"
    secrets_made = [key, read["key"], password]
    kept = query(server.data_dir, server.pg, "SELECT id, digest, sealed FROM api_key")
    assert len(kept) == 3
    text = repr(kept) + repr(query(server.data_dir, server.pg, "SELECT * FROM mosic_user"))
    for secret in secrets_made:
        assert secret not in text
        assert hashlib.sha256(secret.encode()).hexdigest() not in text  # not a plain hash
    for path in Path(server.data_dir).rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert not any(secret.encode() in data for secret in secrets_made), path
    log = server.output()
    assert not any(secret in log for secret in secrets_made)


def run_user(server, *args: str) -> subprocess.CompletedProcess:
    env = clean_env(MOSIC_DATA_DIR=str(server.data_dir), MOSIC_API_KEY=server.api_key,
                    **db_env(server.pg))  # fmt: skip
    return subprocess.run([sys.executable, "-m", "mosic", "user", *args], env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip


def test_the_user_command_adds_lists_makes_keys_and_removes(server):
    added = run_user(server, "add", "Gran", "--music-folders", "Uploads")
    assert added.returncode == 0, added.stderr
    key = added.stdout.strip()
    assert call(server, "GET", "/me", key).json() == {
        "name": "Gran", "role": "listener", "music_folders": ["Uploads"],
    }  # fmt: skip
    assert key not in added.stderr
    listed = run_user(server, "list")
    assert listed.stdout.splitlines() == ["Gran\tlistener\tUploads", "mosic\tadmin\tevery folder"]
    more = run_user(server, "key", "gran", "--read")
    assert more.returncode == 0, more.stderr
    read_key = more.stdout.strip()
    assert call(server, "GET", "/me", read_key).status_code == 200
    assert call(server, "POST", "/play", read_key, json={}).status_code == 403
    again = run_user(server, "add", "GRAN")
    assert again.returncode == 1 and "exists" in again.stderr and not again.stdout
    assert run_user(server, "remove", "Gran").returncode == 0
    assert {call(server, "GET", "/me", k).status_code for k in (key, read_key)} == {401}
    missing = run_user(server, "remove", "Gran")
    assert missing.returncode == 1 and "no user is named 'Gran'" in missing.stderr


def test_the_admin_is_named_by_the_setting(tmp_path):
    with mosic_serve(tmp_path / "data", MOSIC_ADMIN_USER="Boss") as server:
        assert call(server, "GET", "/me", server.api_key).json()["name"] == "Boss"
        assert subsonic(server, "ping", u="boss", p=server.api_key)["status"] == "ok"
        assert subsonic(server, "ping", u="mosic", p=server.api_key)["error"]["code"] == 40
        add_user(server, "Kid")
    # Another user already has the name the admin is to take: one clear line, exit 1.
    env = clean_env(**mosic_env_for(tmp_path / "data"), MOSIC_ADMIN_USER="kid")
    result = subprocess.run([sys.executable, "-m", "mosic", "migrate"], env=env,
                            capture_output=True, text=True, timeout=120)  # fmt: skip
    assert result.returncode == 1
    assert "MOSIC_ADMIN_USER 'kid' is another user's name" in result.stderr


def mosic_env_for(data_dir: Path) -> dict[str, str]:
    return {"MOSIC_DATA_DIR": str(data_dir), "MOSIC_API_KEY": "test-key-0123456789"}
