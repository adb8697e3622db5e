"""Who may do what: read-only keys (``MOSIC_READ_API_KEYS``) read and never write, every
refusal is counted by reason, and a signed link opens one clip's one resource until it
expires. On SQLite and PostgreSQL."""

from __future__ import annotations

import re
import time

import falcon.testing
import httpx
import pytest

from mosic.app import create_app
from mosic.core.keys import Grant, KeyRing, User
from mosic.core.signing import BadSignature, Signer
from mosic.observability.metrics import AuthFailure
from mosic.settings import load_settings
from tests.conftest import API_KEY, Api, media_dir
from tests.support.asgi import StaysConnected
from tests.support.server import mosic_serve

READ_KEYS = ("read-key-one-0123456789", "read-key-two-0123456789")


@pytest.fixture
async def api(settings, request):
    settings = settings.replace(read_api_keys=READ_KEYS)
    async with falcon.testing.ASGIConductor(StaysConnected(create_app(settings))) as conductor:
        s3 = request.getfixturevalue("s3_server") if settings.uses_s3 else None
        yield Api(conductor, settings, media_dir(settings, request), s3)


def failures(text: str) -> dict[str, float]:
    found = re.findall(r'^mosic_auth_failures_total\{reason="(\w+)"\} (\S+)$', text, re.M)
    return {reason: float(value) for reason, value in found}


async def snapshot(api) -> tuple[list[dict], list]:
    return (await api.get("/play")).json, api.media_files()


async def test_a_read_only_key_reads_lists_and_streams(api, clip_file):
    clip = (await api.upload(clip_file("mp3").read_bytes(), title="Song")).json
    for key in READ_KEYS:
        assert (await api.get("/play", key=key)).json[0]["id"] == clip["id"]
        assert (await api.get(f"/play/{clip['id']}", key=key)).status_code == 200
        assert (await api.get(f"/play/{clip['id']}/stats", key=key)).status_code == 200
        streamed = await api.get(clip["audio_url"], key=key)
        assert streamed.status_code == 200 and len(streamed.content) == clip["size"]
        assert (await api.head(clip["audio_url"], key=key)).status_code == 200
    # Listening with a read-only key is still a listen.
    assert (await api.get(f"/play/{clip['id']}/stats")).json["play_count"] == len(READ_KEYS)


async def test_every_write_with_a_read_only_key_is_403_and_changes_nothing(api, clip_file):
    clip = (await api.upload(clip_file("mp3").read_bytes(), title="Keep")).json
    before = await snapshot(api)
    key = READ_KEYS[1]
    remote = {"title": "New", "duration": 1, "audio_url": "https://example.com/a.mp3"}
    other = clip_file("mp3", seconds=1.4).read_bytes()
    writes = [
        api.post("/play", json=remote, key=key),
        api.upload(other, key=key),
        api.upload(other, path="/play", key=key),
        api.patch(f"/play/{clip['id']}", json={"title": "Changed"}, key=key),
        api.delete(f"/play/{clip['id']}", key=key),
    ]
    for write in writes:
        response = await write
        assert response.status_code == 403, response.text
        assert response.json["title"] == "Read-only key"
    assert await snapshot(api) == before
    counted = failures((await api.get("/metrics", key=None)).text)
    assert counted[AuthFailure.READ_ONLY] == len(writes)


async def test_every_kind_of_refusal_is_counted_and_none_shows_a_key(api, clip_file):
    clip = (await api.upload(clip_file("mp3").read_bytes())).json
    start = failures((await api.get("/metrics", key=None)).text)
    assert start == {reason.value: 0.0 for reason in AuthFailure}  # pre-created zeroes
    secret = (api.settings.data_dir / "signing_secret").read_text().strip()
    expired = Signer(secret, 60)
    assert (await api.get("/play", key=None)).status_code == 401
    assert (await api.get("/play", key="")).status_code == 401
    assert (await api.get("/play", key="guess-0123456789")).status_code == 401
    path = clip["audio_url"]
    bad = await api.get(path, key=None, query_string="expires=9999999999&sig=00")
    assert bad.status_code == 403
    old = await api.get(path, key=None, query_string=expired.query(clip["id"], now=1))
    assert old.status_code == 403
    assert (await api.delete(f"/play/{clip['id']}", key=READ_KEYS[0])).status_code == 403
    made = await api.post("/users", json={"name": "Listener"})
    assert made.status_code == 201, made.text
    listener = made.json["key"]["key"]
    assert (await api.get("/users", key=listener)).status_code == 403
    text = (await api.get("/metrics", key=None)).text
    assert failures(text) == {
        "missing": 2.0,
        "wrong": 1.0,
        "bad_signature": 1.0,
        "expired": 1.0,
        "read_only": 1.0,
        "not_admin": 1.0,
    }
    for secret in (*READ_KEYS, API_KEY, listener, "guess-0123456789"):
        assert secret not in text


async def test_a_signed_link_opens_one_resource_of_one_clip_and_only_to_read(api, clip_file):
    mine = (await api.upload(clip_file("mp3").read_bytes())).json
    other = (await api.upload(clip_file("mp3", seconds=1.6).read_bytes())).json
    query = mine["stream_url"].split("?", 1)[1]
    assert (await api.get(mine["audio_url"], key=None, query_string=query)).status_code == 200
    assert (await api.get(other["audio_url"], key=None, query_string=query)).status_code == 403
    for path in (f"/play/{mine['id']}", f"/play/{mine['id']}/stats", "/play"):
        assert (await api.get(path, key=None, query_string=query)).status_code == 401
    deleted = await api.delete(f"/play/{mine['id']}", key=None, query_string=query)
    assert deleted.status_code == 401
    assert (await api.get(f"/play/{mine['id']}")).status_code == 200


def test_a_signature_names_its_resource_and_expires():
    signer = Signer("secret", 60)
    now = time.time()
    expires, sig = signer.sign("clip", now)
    signer.verify("clip", str(expires), sig, now=now)
    with pytest.raises(BadSignature):
        signer.verify("clip", str(expires), sig, now=now, resource="cover")
    with pytest.raises(BadSignature):
        signer.verify("clip", str(expires), sig, now=now + 61)


def test_empty_entries_never_become_keys(tmp_path, monkeypatch):
    monkeypatch.setenv("MOSIC_READ_API_KEYS", " ,r1,, r2 ,")
    assert load_settings(None).read_api_keys == ("r1", "r2")
    admin = User(id=1, name="mosic", role="admin")
    ring = KeyRing("full", ("", "r1"), admin)
    assert ring.grant("") is None and ring.grant(None) is None
    assert ring.grant("r1") == Grant(writes=False, user=admin)
    assert ring.grant("full") == Grant(writes=True, user=admin)
    assert ring.grant("r") is None and ring.grant("full ") is None


def test_a_missing_key_and_a_wrong_key_say_which_over_real_http(tmp_path):
    """A newcomer's two first mistakes, against a real ``mosic serve``: both 401 with the
    challenge (the contract), each saying what went wrong, counted by reason, never logged.
    Subsonic's are codes 10 (nothing sent) and 40 or 44 (a wrong key)."""
    wrong_key = "wrong-key-0123456789abcdef"
    with mosic_serve(tmp_path / "data") as server:
        base = server.base
        missing = httpx.get(f"{base}/play", timeout=10)
        wrong = httpx.get(f"{base}/play", headers={"X-API-Key": wrong_key}, timeout=10)
        for response in (missing, wrong):
            assert response.status_code == 401
            assert response.headers["WWW-Authenticate"] == 'ApiKey header="X-API-Key"'
            assert response.json()["title"] == "Unauthorized"
        assert missing.json()["description"].startswith("no API key: send it in the X-API-Key")
        assert wrong.json()["description"].startswith("that API key is not valid")

        def subsonic(**auth) -> dict:
            ping = httpx.get(f"{base}/rest/ping.view", params={**auth, "f": "json"}, timeout=10)
            assert ping.status_code == 200
            answer = ping.json()["subsonic-response"]
            assert answer["status"] == "failed"
            return answer["error"]

        nothing = subsonic()
        assert nothing["code"] == 10 and "no credentials" in nothing["message"]
        assert subsonic(u="mosic")["code"] == 10  # a user name alone: the password is missing
        bad_password = subsonic(u="mosic", p=wrong_key)
        assert bad_password["code"] == 40
        assert "password one of that user's API keys" in bad_password["message"]
        assert subsonic(apiKey=wrong_key)["code"] == 44
        # Counted as REST's are: two missing and two wrong over Subsonic, one each over REST.
        metrics = httpx.get(f"{base}/metrics", timeout=10).text
        assert failures(metrics)["missing"] == 3.0
        assert failures(metrics)["wrong"] == 3.0
        log = server.output()
    assert wrong_key not in log and server.api_key not in log
