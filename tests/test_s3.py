"""Media in an S3-compatible bucket (a real ``rclone serve s3``): what only the object store
has. The whole API suite also runs on it, in proxy mode (the ``s3`` backend of conftest).

- redirect mode: a stream is a 307 to a presigned GET that expires with the signed link,
  counted by the play rule from the request's Range; HEAD and 304 are answered by Mosic, and
  the presigned GET answers the same Content-Type for every format;
- the store stopped and started under a running Mosic: 503s that leave nothing, /readyz
  says why, and recovery without a restart;
- kill -9 mid-upload: no object and no pending multipart upload survive;
- three Mosic processes on one PostgreSQL and one bucket serve one catalogue.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import socket
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.conftest import API_KEY, DERIVED_SUFFIXES, Api, reset_database, settings_for
from tests.support.audio import CONTENT_TYPES, FORMATS, make_wav_of_size
from tests.support.forms import multipart
from tests.support.s3 import ACCESS_KEY, SECRET_KEY, rclone_s3, recording_proxy
from tests.support.server import mosic_serve, wait_for
from tests.support.tagging import image, tag_fully

PROBE = "bytes=0-1"


def s3_env(config) -> dict[str, str]:
    return {
        "MOSIC_STORAGE": "s3",
        "MOSIC_S3_BUCKET": config.bucket,
        "MOSIC_S3_PREFIX": config.prefix,
        "MOSIC_S3_ENDPOINT_URL": config.endpoint_url,
        "MOSIC_S3_ACCESS_KEY_ID": ACCESS_KEY,
        "MOSIC_S3_SECRET_ACCESS_KEY": SECRET_KEY,
        "MOSIC_S3_STREAM": config.stream,
        "MOSIC_S3_HEARTBEAT_S": str(config.heartbeat_s),
    }


@pytest.fixture
async def redirecting(s3_server, postgres_url, tmp_path, request):
    """The API on PostgreSQL with media in a bucket, streams answered by redirect."""
    import falcon.testing

    from mosic.app import create_app
    from tests.support.asgi import StaysConnected

    config = s3_server.new_bucket(f"mosic-{uuid.uuid4().hex[:12]}", stream="redirect")
    settings = settings_for("s3", tmp_path / "data", postgres_url, s3=config, storage="s3")
    reset_database(settings)
    async with falcon.testing.ASGIConductor(StaysConnected(create_app(settings))) as conductor:
        yield Api(conductor, settings, s3_server.media_dir(config), s3_server)


@pytest.fixture
async def song(redirecting, clip_file):
    data = clip_file("mp3", seconds=3.0, title="Redirected").read_bytes()
    created = await redirecting.upload(data)
    assert created.status_code == 201, created.text
    return {**created.json, "bytes": data}


async def plays(api, song) -> int:
    return (await api.get(f"/play/{song['id']}/stats")).json["play_count"]


async def test_a_stream_redirects_to_a_presigned_url_that_serves_the_range(redirecting, song):
    resp = await redirecting.get(song["audio_url"], headers={"Range": "bytes=100-199"})
    assert resp.status_code == 307
    target = resp.headers["Location"]
    assert "X-Amz-Signature=" in target and API_KEY not in target
    fetched = httpx.get(target, headers={"Range": "bytes=100-199"}, timeout=10)
    assert fetched.status_code in (200, 206)  # rclone answers a presigned Range with 200
    assert fetched.content == song["bytes"][100:200]
    tampered = target.replace("X-Amz-Signature=", "X-Amz-Signature=0")
    assert httpx.get(tampered, timeout=10).status_code == 403
    assert await plays(redirecting, song) == 0  # a seek is no listen


async def test_redirects_count_by_the_play_rule(redirecting, song):
    url = song["audio_url"]
    assert (await redirecting.get(url, headers={"Range": PROBE})).status_code == 307
    assert await plays(redirecting, song) == 0
    assert (await redirecting.get(url)).status_code == 307
    assert (await redirecting.get(url, headers={"Range": "bytes=0-"})).status_code == 307
    assert await plays(redirecting, song) == 2


async def test_renditions_are_made_and_served_by_mosic_even_in_redirect_mode(redirecting, song):
    # The encoder reads the object through the store (there is no file to redirect to), and
    # the finished rendition lives in Mosic's local cache, so it is sent, never redirected.
    url = song["audio_url"]
    first = await redirecting.get(url, query_string="format=opus&bitrate=48")
    assert first.status_code == 200, first.text
    assert first.headers["Content-Type"] == "audio/ogg" and "Content-Length" not in first.headers
    assert first.content.startswith(b"OggS")
    cached = await redirecting.get(
        url, query_string="format=opus&bitrate=48", headers={"Range": "bytes=100-"}
    )
    assert cached.status_code == 206 and cached.content == first.content[100:]
    assert (await redirecting.get(url)).status_code == 307  # the original still redirects
    assert await plays(redirecting, song) == 2  # the transcode and the plain GET, not the seek


async def test_head_and_304_are_answered_by_mosic_and_never_counted(redirecting, song):
    head = await redirecting.head(song["audio_url"])
    assert head.status_code == 200
    assert "Location" not in head.headers
    assert int(head.headers["Content-Length"]) == len(song["bytes"])
    assert head.headers["Accept-Ranges"] == "bytes"
    etag = head.headers["ETag"]
    cached = await redirecting.get(song["audio_url"], headers={"If-None-Match": etag})
    assert cached.status_code == 304
    assert "Location" not in cached.headers
    assert await plays(redirecting, song) == 0


async def test_the_presigned_url_expires_with_the_signed_link(redirecting, song):
    path, _, query = song["stream_url"].partition("?")
    expires = int(parse_qs(query)["expires"][0])
    before = time.time()
    resp = await redirecting.get(path, key=None, query_string=query)
    after = time.time()
    assert resp.status_code == 307
    lifetime = int(parse_qs(urlsplit(resp.headers["Location"]).query)["X-Amz-Expires"][0])
    # Whole seconds from the server's clock, read during the request and truncated: up to a
    # second more than what is left by the time the answer is read.
    assert expires - after <= lifetime <= expires - int(before)
    assert await plays(redirecting, song) == 1


def stored_type(client, config, key: str) -> str:
    return client.head_object(Bucket=config.bucket, Key=key)["ContentType"]


def followed_type(mosic, song: dict, path: Path) -> str:
    """The Content-Type of the presigned GET a stream redirects to (its bytes checked)."""
    redirect = mosic.get(song["audio_url"])
    assert redirect.status_code == 307, redirect.text
    fetched = httpx.get(redirect.headers["Location"], timeout=10)
    assert fetched.status_code == 200 and fetched.content == path.read_bytes()
    return fetched.headers["Content-Type"]


def test_a_presigned_stream_has_the_type_mosic_answers_for_every_format(
    s3_server, tmp_path, clip_file
):
    config = s3_server.new_bucket(f"mosic-{uuid.uuid4().hex[:12]}", stream="redirect")
    client, known = s3_server.client(), set()
    with mosic_serve(tmp_path / "data", api_key=API_KEY, **s3_env(config)) as mosic:
        for i, fmt in enumerate(FORMATS):
            path = clip_file(fmt, seconds=1.0, freq=500 + 13 * i)
            song = mosic.upload(path, CONTENT_TYPES[fmt])
            (key,) = set(stored_objects(s3_server, config)) - known
            known.add(key)
            # The object carries its type, for any reader of the bucket.
            assert stored_type(client, config, key) == CONTENT_TYPES[fmt], fmt
            head = httpx.head(mosic.base + song["audio_url"], headers=mosic.headers, timeout=10)
            assert head.headers["Content-Type"] == CONTENT_TYPES[fmt], fmt
            assert followed_type(mosic, song, path) == CONTENT_TYPES[fmt], fmt
            # An object stored without its type (before Mosic wrote one): the presigned URL
            # asks for the type all the same.
            client.copy_object(
                Bucket=config.bucket,
                Key=key,
                CopySource={"Bucket": config.bucket, "Key": key},
                ContentType="application/octet-stream",
                MetadataDirective="REPLACE",
            )
            assert stored_type(client, config, key) == "application/octet-stream"
            assert followed_type(mosic, song, path) == CONTENT_TYPES[fmt], fmt


# -- the store stopped and started under a running Mosic -----------------------------------


def stored_objects(server, config) -> list[str]:
    """The clips' audio in the bucket (not heartbeats, covers or waveform peaks)."""
    answer = server.client().list_objects_v2(Bucket=config.bucket, Prefix=config.prefix)
    return [
        o["Key"]
        for o in answer.get("Contents", [])
        if "/.instances/" not in o["Key"] and Path(o["Key"]).suffix not in DERIVED_SUFFIXES
    ]


def test_a_store_outage_is_a_503_that_leaves_nothing_and_mosic_recovers(
    tmp_path, postgres_url, clip_file, fresh_postgres_db
):
    db_url = f"postgresql://{fresh_postgres_db.user}@{fresh_postgres_db.host}:"
    db_url += f"{fresh_postgres_db.port}/{fresh_postgres_db.name}"
    audio = clip_file("mp3", seconds=1.0, freq=555)
    with rclone_s3(tmp_path / "store") as store:
        config = store.new_bucket("mosic-outage")
        port = urlsplit(store.endpoint).port
        env = {**s3_env(config), "MOSIC_DATABASE_URL_OVERRIDE": db_url}
        with mosic_serve(tmp_path / "data", **env) as mosic:
            song = mosic.upload(audio, "audio/mpeg")
            with rclone_s3_stopped(store):
                ready = mosic.get("/readyz", key=False)
                assert ready.status_code == 503
                assert any("media store" in r for r in ready.json()["reasons"])
                upload = post_file(mosic, clip_file("mp3", seconds=1.0, freq=556))
                assert upload.status_code == 503, upload.text
                assert upload.headers["Retry-After"]
                assert mosic.get(song["audio_url"]).status_code == 503
                assert mosic.get("/play").json()[0]["id"] == song["id"]  # the catalogue works
            assert urlsplit(store.endpoint).port == port
            wait_for("readiness after the outage", lambda: ready_ok(mosic), 20, mosic.log)
            again = post_file(mosic, clip_file("mp3", seconds=1.0, freq=556))
            assert again.status_code == 201, again.text
            assert mosic.get(song["audio_url"]).content == audio.read_bytes()
            assert len(stored_objects(store, config)) == 2  # the failed upload left nothing
        assert "Traceback" not in mosic.output()


def ready_ok(mosic) -> bool:
    return mosic.get("/readyz", key=False).status_code == 200


def post_file(mosic, path) -> httpx.Response:
    with path.open("rb") as fh:
        return httpx.post(
            mosic.base + "/play/upload",
            headers=mosic.headers,
            files={"file": (path.name, fh, "audio/mpeg")},
            timeout=30,
        )


class rclone_s3_stopped:  # noqa: N801 - used like a context manager function
    """Stop the store's process for the block and start it again on the same port and disk."""

    def __init__(self, store) -> None:
        self.store = store

    def __enter__(self):
        self.store.stop()

    def __exit__(self, *exc) -> None:
        self.store.restart()


# -- a crash mid-upload --------------------------------------------------------------------


def send_half_an_upload(mosic, size: int, tmp_path) -> socket.socket:
    big = make_wav_of_size(tmp_path / "big.wav", size)
    body, ctype = multipart(files={"file": ("big.wav", big.read_bytes(), "audio/wav")})
    host, port = urlsplit(mosic.base).hostname, urlsplit(mosic.base).port
    sock = socket.create_connection((host, port))
    head = (
        f"POST /play/upload HTTP/1.1\r\nHost: {host}\r\nX-API-Key: {mosic.api_key}\r\n"
        f"Content-Type: {ctype}\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    sock.sendall(head.encode() + body[: len(body) // 2])
    return sock


def test_kill_9_mid_upload_leaves_no_object_and_no_pending_multipart_upload(
    s3_server, tmp_path, fresh_postgres_db
):
    config = s3_server.new_bucket("mosic-crash")
    db = fresh_postgres_db
    env = {
        **s3_env(config),
        "MOSIC_DATABASE_URL_OVERRIDE": f"postgresql://{db.user}@{db.host}:{db.port}/{db.name}",
    }
    with mosic_serve(tmp_path / "data", **env) as mosic:
        sock = send_half_an_upload(mosic, 24 * 1024 * 1024, tmp_path)
        wait_for("a multipart upload to start", lambda: s3_server.pending_uploads(config), 20)
        mosic.proc.kill()  # SIGKILL: no clean-up code runs
        mosic.proc.wait(10)
        sock.close()
    assert s3_server.pending_uploads(config), "the crash left a multipart upload behind"
    with mosic_serve(tmp_path / "data", **env) as mosic:
        wait_for(
            "the sweep to abort the dead instance's upload",
            lambda: not s3_server.pending_uploads(config) and not stored_objects(s3_server, config),
            30,
            mosic.log,
        )
        assert mosic.get("/play").json() == []


# -- three replicas, one catalogue ---------------------------------------------------------


def test_three_replicas_on_one_database_and_bucket_serve_one_catalogue(
    s3_server, tmp_path, clip_file, fresh_postgres_db
):
    config = s3_server.new_bucket("mosic-replicas")
    db = fresh_postgres_db
    env = {
        **s3_env(config),
        "MOSIC_DATABASE_URL_OVERRIDE": f"postgresql://{db.user}@{db.host}:{db.port}/{db.name}",
        "MOSIC_S3_STREAM": "proxy",
    }
    files = [clip_file("mp3", seconds=1.0, freq=300 + 7 * i) for i in range(3)]
    with (
        mosic_serve(tmp_path / "a", **env) as a,
        mosic_serve(tmp_path / "b", **env) as b,
        mosic_serve(tmp_path / "c", **env) as c,
    ):
        replicas = [a, b, c]
        pairs = zip(replicas, files, strict=True)
        songs = [replica.upload(f, "audio/mpeg") for replica, f in pairs]
        assert post_file(b, files[0]).status_code == 409  # stored once, whoever received it
        listens = [(replicas[i % 3], songs[i % 3]) for i in range(60)]
        with ThreadPoolExecutor(12) as pool:
            bodies = list(pool.map(lambda rs: rs[0].get(rs[1]["audio_url"]).content, listens))
        assert all(body == files[i % 3].read_bytes() for i, body in enumerate(bodies))
        for replica in replicas:
            counts = [replica.get(f"/play/{s['id']}/stats").json()["play_count"] for s in songs]
            assert counts == [20, 20, 20]
    assert len(stored_objects(s3_server, config)) == 3


def test_s3_settings_name_the_variable_when_wrong():
    from mosic.settings import SettingsError, load_settings

    with pytest.MonkeyPatch.context() as env:
        env.setenv("MOSIC_STORAGE", "s3")
        with pytest.raises(SettingsError, match="MOSIC_S3_BUCKET"):
            load_settings(None)
        env.setenv("MOSIC_S3_BUCKET", "b")
        env.setenv("MOSIC_S3_STREAM", "teleport")
        with pytest.raises(SettingsError, match="MOSIC_S3_STREAM"):
            load_settings(None)


# -- moving a library between the disk and a bucket ----------------------------------------


def run_mosic(data_dir, *args: str, **env: str):
    import subprocess
    import sys

    from tests.support.server import clean_env

    return subprocess.run(
        [sys.executable, "-m", "mosic", *args],
        env=clean_env(MOSIC_DATA_DIR=str(data_dir), MOSIC_API_KEY=API_KEY, **env),
        cwd=data_dir,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_storage_migrate_copies_a_library_to_a_bucket_and_back_verifying_hashes(
    s3_server, tmp_path, clip_file
):
    config = s3_server.new_bucket("mosic-migrate")
    data = tmp_path / "data"
    files = [clip_file("mp3", seconds=1.0, freq=700 + 11 * i) for i in range(3)]
    # One with a cover: covers and waveform peaks are copied with the audio.
    files[0] = Path(shutil.copy(files[0], tmp_path / "covered.mp3"))
    tag_fully(files[0], "mp3", picture=image(tmp_path / "cover", color="teal"))
    with mosic_serve(data, api_key=API_KEY) as local:
        songs = [local.upload(f, "audio/mpeg") for f in files]
        extras = {u: local.get(u).content for u in derived_urls(songs)}
    assert len(extras) == 4  # one cover, three waveforms
    bucket_env = {k: v for k, v in s3_env(config).items() if k != "MOSIC_STORAGE"}

    first = run_mosic(data, "storage", "migrate", "--to", "s3", **bucket_env)
    assert first.returncode == 0, first.stderr
    assert "7 copied, 0 already there, 0 failed" in first.stderr
    assert len(stored_objects(s3_server, config)) == 3
    client = s3_server.client()
    assert {stored_type(client, config, k) for k in stored_objects(s3_server, config)} == {
        "audio/mpeg"
    }

    # A damaged object is found by its hash and copied again; the others are left alone.
    damaged = stored_objects(s3_server, config)[0]
    client.put_object(Bucket=config.bucket, Key=damaged, Body=b"not the audio")
    listed = client.list_objects_v2(Bucket=config.bucket, Prefix=config.prefix)["Contents"]
    (cover_key,) = [o["Key"] for o in listed if o["Key"].endswith(".jpg")]
    client.put_object(Bucket=config.bucket, Key=cover_key, Body=b"not the picture")
    second = run_mosic(data, "storage", "migrate", "--to", "s3", **bucket_env)
    assert second.returncode == 0, second.stderr
    assert "2 copied, 5 already there, 0 failed" in second.stderr

    with mosic_serve(data, api_key=API_KEY, **{**s3_env(config), "MOSIC_S3_STREAM": "proxy"}) as s3:
        for song, path in zip(songs, files, strict=True):
            assert s3.get(song["audio_url"]).content == path.read_bytes()
        assert {u: s3.get(u).content for u in derived_urls(songs)} == extras

    for stored in (data / "media").rglob("*.*"):
        if stored.is_file() and ".incoming" not in stored.parts:
            stored.unlink()
    back = run_mosic(data, "storage", "migrate", "--to", "local", **bucket_env)
    assert back.returncode == 0, back.stderr
    assert "7 copied, 0 already there, 0 failed" in back.stderr
    restored = sorted(p.read_bytes() for p in (data / "media").rglob("*.mp3"))
    assert restored == sorted(p.read_bytes() for p in files)
    with mosic_serve(data, api_key=API_KEY) as local:
        assert {u: local.get(u).content for u in derived_urls(songs)} == extras
    assert "Traceback" not in first.stderr + second.stderr + back.stderr


def derived_urls(songs: list[dict]) -> list[str]:
    """The cover (unsigned path: the key opens it) and waveform of each song that has them."""
    urls = [s["cover_url"].split("?")[0] for s in songs if s["cover_url"]]
    return urls + [s["waveform_url"] for s in songs if s["waveform_url"]]


async def test_a_call_waiting_for_a_pooled_connection_is_a_503_in_bounded_time(s3_server):
    """Every one of the client's 10 pooled connections held by a body nobody finishes
    reading: the next call must not wait for good (aiobotocore bounds connecting and
    reading, not that wait), but fail as the store being unavailable, within the bound."""
    import asyncio
    import dataclasses

    from mosic.media.s3 import READ_CHUNK_BYTES, S3Store
    from mosic.media.storage import StorageUnavailable

    config = s3_server.new_bucket(f"held-{uuid.uuid4().hex[:8]}")
    store = S3Store(dataclasses.replace(config, call_timeout_s=2))
    await store.start()
    held = []
    try:
        await store.put(
            "abcd.bin", b"\x01" * (64 * READ_CHUNK_BYTES), content_type="application/octet-stream"
        )
        for _ in range(10):
            chunks = (await store.open("abcd.bin")).chunks(0, 64 * READ_CHUNK_BYTES)
            await anext(chunks)  # its connection stays taken while the body is unread
            held.append(chunks)
        began = time.monotonic()
        with pytest.raises(StorageUnavailable):
            await asyncio.wait_for(store.get("abcd.bin"), 30)
        assert time.monotonic() - began < 10
        await held.pop().aclose()  # a connection back: calls go through again
        assert await store.get("abcd.bin") == b"\x01" * (64 * READ_CHUNK_BYTES)
    finally:
        for chunks in held:
            await chunks.aclose()
        await store.close()


async def test_bodies_are_sent_without_waiting_for_100_continue(s3_server):
    """CI's S3 hang (issue 19): rclone answered a PUT it failed before reading the body only
    after draining that body, which aiohttp held back until a "100 Continue" that never came
    (botocore asks for one on every PUT). Mosic sends its bodies straight away: no request
    through the store asks to continue, and what it stores arrives whole."""
    import dataclasses

    from mosic.media.s3 import S3Store

    config = s3_server.new_bucket(f"plain-{uuid.uuid4().hex[:8]}")
    async with recording_proxy(config.endpoint_url) as (endpoint, sent):
        store = S3Store(dataclasses.replace(config, endpoint_url=endpoint))
        await store.start()
        try:
            await store.put("abcd.bin", b"\x02" * 100_000, content_type="image/png")
            incoming = await store.receive(64 * 2**20)
            for _ in range(3):  # more than a part: a multipart upload
                await incoming.write(b"\x03" * (6 * 2**20))
            await incoming.finish()
            # Parts are hashed while the next arrives: the hash is still of the bytes in order.
            assert incoming.sha256 == hashlib.sha256(b"\x03" * (18 * 2**20)).hexdigest()
            await store.publish(incoming, "efgh.bin", content_type="audio/mpeg")
        finally:
            await store.close()
    requests = b"".join(sent).lower()
    puts = re.findall(rb"put /[^ ]+ http/1\.1\r\n", requests)
    assert len(puts) >= 4, puts  # the blob, three parts (and the heartbeat's)
    assert b"\r\nexpect:" not in requests
    stored = s3_server.media_dir(config)
    assert (stored / "ab/abcd.bin").read_bytes() == b"\x02" * 100_000
    assert (stored / "ef/efgh.bin").read_bytes() == b"\x03" * (18 * 2**20)
