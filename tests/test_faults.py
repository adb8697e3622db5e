"""Faults of what Mosic depends on, caused for real: a PostgreSQL stopped and started under a
running server, a full file system, a ``kill -9`` mid-upload. Each gives a deliberate
503/507, never a 500 or a hang, and leaves nothing behind."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import falcon.testing
import httpx
import peewee
import pytest

from mosic.app import create_app
from mosic.persistence.database import SqliteDatabase
from tests.conftest import LOCAL_BACKENDS, Api, reset_database, settings_for
from tests.support.analysis import measured_on
from tests.support.asgi import StaysConnected
from tests.support.audio import make_wav_of_size
from tests.support.postgres import controllable_cluster
from tests.support.server import mosic_serve, wait_for

# The bounds: a 503 within 2 s during the outage, recovery within 15 s of the return.
OUTAGE_ANSWER_S = 2.0
RECOVERY_S = 15.0
LEAKS = ("Traceback", "Unclosed connection", "never retrieved", "UVPoll")


@pytest.fixture(scope="module")
def cluster():
    """A cluster of this module's own: stopping the session's would fail other tests."""
    with controllable_cluster() as running:
        yield running


def timed(call) -> tuple[httpx.Response, float]:
    began = time.monotonic()
    response = call()
    return response, time.monotonic() - began


def database_errors(server) -> float:
    total = 0.0
    for line in server.metrics().splitlines():
        if line.startswith("mosic_database_errors_total{"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_a_postgres_outage_is_a_prompt_503_and_recovers_by_itself(cluster, tmp_path):
    song = make_wav_of_size(tmp_path / "long.wav", 24 * 1024 * 1024)
    with mosic_serve(tmp_path / "data", MOSIC_DATABASE_URL_OVERRIDE=cluster.url) as server:
        clip = server.upload(song, "audio/wav")
        # Its peaks and loudness, drawn after the 201, are in before the outage: what is
        # timed below is the requests' answer alone.
        clip = measured_on(server, clip["id"])
        errors_before = database_errors(server)
        listen = httpx.stream(
            "GET", server.base + clip["audio_url"], headers=server.headers, timeout=30
        )
        with listen as stream:
            chunks = stream.iter_bytes(64 * 1024)
            received = len(next(chunks))
            cluster.stop("fast")
            try:
                for path in ("/play", f"/play/{clip['id']}", f"/play/{clip['id']}/stats"):
                    response, took = timed(lambda p=path: server.get(p))
                    assert response.status_code == 503, (path, response.text)
                    assert took < OUTAGE_ANSWER_S, (path, took)
                    assert response.headers["Retry-After"].isdigit()
                    assert response.json()["title"] == "Database unavailable"
                for call in (
                    lambda: httpx.post(
                        server.base + "/play",
                        headers=server.headers,
                        timeout=10,
                        json={
                            "title": "t",
                            "duration": 1,
                            "audio_url": "https://example.com/a.mp3",
                        },
                    ),
                    lambda: server.delete(f"/play/{clip['id']}"),
                    lambda: server.get(clip["audio_url"]),
                ):
                    response, took = timed(call)
                    assert response.status_code == 503, response.text
                    assert took < OUTAGE_ANSWER_S
                ready, took = timed(lambda: server.get("/readyz", key=False))
                assert ready.status_code == 503 and took < OUTAGE_ANSWER_S
                assert "database" in ready.json()["reasons"][0]
                assert server.get("/healthz", key=False).status_code == 200
                # The stream that had started before the outage still ends whole.
                received += sum(len(chunk) for chunk in chunks)
            finally:
                cluster.start()
        assert received == clip["size"]
        back = time.monotonic()
        wait_for(
            "Mosic to recover",
            lambda: server.get("/play").status_code == 200,
            RECOVERY_S,
            server.log,
        )
        assert time.monotonic() - back < RECOVERY_S
        assert server.get("/readyz", key=False).status_code == 200
        assert server.get(f"/play/{clip['id']}").json()["title"] == clip["title"]
        assert database_errors(server) >= errors_before + 5
        # The same process recovered, with nothing leaked or crashed along the way.
        assert server.proc.poll() is None
        output = server.output()
        assert not [leak for leak in LEAKS if leak in output], output[-3000:]


def test_connections_the_server_ended_are_never_handed_out(cluster, tmp_path):
    """A backend ended under an idle pool (an administrator, a failover, an idle timeout)
    leaves dead connections in it: each is found dead when it would be handed out and
    replaced, so no request sees one (no 503) and nothing is logged as an error."""
    with mosic_serve(tmp_path / "data", MOSIC_DATABASE_URL_OVERRIDE=cluster.url) as server:
        # Several requests at once, so the pool holds several connections.
        with httpx.Client(base_url=server.base, headers=server.headers) as client:
            for _ in range(3):
                assert all(r.status_code == 200 for r in concurrently(client, "/play", 8))
            ended = terminate_backends(cluster.url)
            assert ended >= 2, ended
            answers = [client.get("/play").status_code for _ in range(12)]
        assert answers == [200] * 12
        assert "database error" not in server.output()


def concurrently(client: httpx.Client, path: str, n: int) -> list[httpx.Response]:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(lambda _: client.get(path), range(n)))


def terminate_backends(url: str) -> int:
    """End every other session of the database's user, as pg_terminate_backend does."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchall()
    time.sleep(0.2)  # the backends' goodbyes reach the sockets
    return sum(1 for (done,) in rows if done)


# -- a full disk ------------------------------------------------------------------------------

SMALL_DISK = "1m"


@pytest.fixture
def small_disk(tmp_path):
    """A real 1 MiB tmpfs (mounting needs root, which the tests and CI have)."""
    mount = tmp_path / "small"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={SMALL_DISK}", "tmpfs", mount], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", mount], check=True)


@pytest.fixture(params=LOCAL_BACKENDS)
async def small_api(small_disk, tmp_path, request):
    backend = request.param
    url = request.getfixturevalue("postgres_url") if backend == "postgresql" else None
    settings = settings_for(backend, tmp_path / "data", url, media_root=small_disk)
    reset_database(settings)
    async with falcon.testing.ASGIConductor(StaysConnected(create_app(settings))) as conductor:
        yield Api(conductor, settings, small_disk)


def free_bytes(path) -> int:
    stat = os.statvfs(path)
    return stat.f_bavail * stat.f_frsize


def wav_bytes_of(tmp_path, size: int) -> bytes:
    return make_wav_of_size(tmp_path / f"w{size}.wav", size).read_bytes()


async def test_a_full_disk_is_507_leaves_nothing_and_gives_the_space_back(
    small_api, small_disk, tmp_path
):
    # As the issue found it: a media volume with 768 KiB free.
    (small_disk / "filler").write_bytes(b"\0" * 256 * 1024)
    free_before = free_bytes(small_disk)
    response = await small_api.upload(
        wav_bytes_of(tmp_path, 1024 * 1024), "big.wav", content_type="audio/wav"
    )
    assert response.status_code == 507, response.text
    assert response.json["title"] == "Storage full"
    assert [p.name for p in small_api.media_files()] == ["filler"]
    assert free_bytes(small_disk) == free_before
    listing = await small_api.get("/play")
    assert listing.headers["X-Total-Count"] == "0"
    # The space given back takes the next upload that fits.
    fits = await small_api.upload(
        wav_bytes_of(tmp_path, 200 * 1024), "fits.wav", content_type="audio/wav"
    )
    assert fits.status_code == 201, fits.text
    assert (await small_api.get(fits.json["audio_url"])).status_code == 200


async def test_a_read_only_store_is_503_for_uploads_and_still_streams(
    small_api, small_disk, tmp_path
):
    stored = await small_api.upload(
        wav_bytes_of(tmp_path, 100 * 1024), "a.wav", content_type="audio/wav"
    )
    assert stored.status_code == 201
    subprocess.run(["mount", "-o", "remount,ro", small_disk], check=True)
    response = await small_api.upload(
        wav_bytes_of(tmp_path, 120 * 1024), "b.wav", content_type="audio/wav"
    )
    assert response.status_code == 503, response.text
    assert response.json["title"] == "Media store unavailable"
    assert response.headers["Retry-After"].isdigit()
    assert (await small_api.get("/play")).headers["X-Total-Count"] == "1"
    assert (await small_api.get("/readyz", key=None)).status_code == 503
    streamed = await small_api.get(stored.json["audio_url"])
    assert streamed.status_code == 200 and len(streamed.content) == stored.json["size"]


# -- a crash mid-upload -----------------------------------------------------------------------

BOUNDARY = "mosic-fault-boundary"


class RawUpload:
    """An upload over a raw socket, sent as far as the test says and no further."""

    def __init__(self, server, data: bytes, declared: int | None = None) -> None:
        self.data = data
        self.head = (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="big.wav"'
            "\r\nContent-Type: audio/wav\r\n\r\n"
        ).encode()
        self.tail = f"\r\n--{BOUNDARY}--\r\n".encode()
        length = len(self.head) + (declared or len(data)) + len(self.tail)
        host, port = server.base.removeprefix("http://").split(":")
        self.sock = socket.create_connection((host, int(port)), timeout=30)
        self.sock.sendall(
            (
                f"POST /play/upload HTTP/1.1\r\nHost: {host}\r\nX-API-Key: {server.api_key}\r\n"
                f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
                f"Content-Length: {length}\r\n\r\n"
            ).encode()
            + self.head
        )
        self.sent = 0

    def send(self, upto: int) -> None:
        self.sock.sendall(self.data[self.sent : upto])
        self.sent = upto

    def finish(self) -> int:
        self.send(len(self.data))
        self.sock.sendall(self.tail)
        status_line = self.sock.makefile("rb").readline().decode()
        self.sock.close()
        return int(status_line.split()[1])


def part_files(media: Path) -> dict[Path, int]:
    return {p: p.stat().st_size for p in (media / ".incoming").glob("*.part")}


def new_part(media: Path, known: set[Path], at_least: int) -> Path:
    def grown():
        for path, size in part_files(media).items():
            if path not in known and size >= at_least:
                return path
        return None

    return wait_for(f"a part file of {at_least} bytes", grown, 30)


def test_kill_9_mid_upload_leaves_nothing_after_restart_and_spares_a_live_upload(tmp_path):
    media = tmp_path / "shared-media"
    shared = {"MOSIC_MEDIA_ROOT": str(media)}
    live_song = make_wav_of_size(tmp_path / "live.wav", 8 * 1024 * 1024).read_bytes()
    crash_song = make_wav_of_size(tmp_path / "crash.wav", 40 * 1024 * 1024).read_bytes()
    with mosic_serve(tmp_path / "replica", **shared) as replica:
        # A replica sharing the store is receiving an upload, half sent, all along.
        live = RawUpload(replica, live_song)
        live.send(len(live_song) // 2)
        live_part = new_part(media, set(), 2 * 1024 * 1024)
        with mosic_serve(tmp_path / "crashing", **shared) as crashing:
            upload = RawUpload(crashing, crash_song)
            upload.send(len(crash_song) // 2)
            crashed_part = new_part(media, {live_part}, 16 * 1024 * 1024)
            os.kill(crashing.pid, signal.SIGKILL)
            crashing.proc.wait(timeout=10)
            upload.sock.close()
        assert crashed_part.exists()  # what the crash left
        with mosic_serve(tmp_path / "crashing", **shared) as restarted:
            assert not crashed_part.exists()
            assert live_part.exists()  # locked by its live receiver: untouched
            again = restarted.upload(tmp_path / "crash.wav", "audio/wav")
            assert again["size"] == len(crash_song)
            assert "(1 leftover partial uploads removed)" in restarted.output()
        assert live.finish() == 201
        assert part_files(media) == {}
        assert int(replica.get("/play").headers["X-Total-Count"]) == 1


# -- stalled bodies and half-open connections -------------------------------------------------

BODY_TIMEOUT_S = 2
HALF_OPEN = 300


def response_of(sock: socket.socket, within: float) -> tuple[int, bytes]:
    """The status and everything the server sent until it closed the connection."""
    sock.settimeout(within)
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return int(received.split(b" ", 2)[1]), received


@pytest.fixture(scope="module")
def impatient(tmp_path_factory):
    data = tmp_path_factory.mktemp("impatient") / "data"
    with mosic_serve(data, MOSIC_BODY_TIMEOUT_S=str(BODY_TIMEOUT_S)) as server:
        yield server


def test_a_slowloris_upload_is_408_closed_and_its_part_file_removed(impatient, tmp_path):
    song = make_wav_of_size(tmp_path / "slow.wav", 2 * 1024 * 1024).read_bytes()
    upload = RawUpload(impatient, song)
    upload.send(1024 * 1024 + 1)
    media = impatient.data_dir / "media"
    new_part(media, set(), 0)
    began = time.monotonic()
    # One byte now and then, each pause longer than the timeout: the slow client.
    with pytest.raises(OSError):
        for _ in range(10):
            time.sleep(BODY_TIMEOUT_S + 1)
            upload.send(upload.sent + 1)
    status, answer = response_of(upload.sock, BODY_TIMEOUT_S * 3)
    assert status == 408, answer
    assert b"connection: close" in answer.lower() and b"MOSIC_BODY_TIMEOUT_S" in answer
    assert time.monotonic() - began < BODY_TIMEOUT_S * 5
    wait_for("the part file to go", lambda: part_files(media) == {}, 10)
    assert impatient.get("/play").headers["X-Total-Count"] == "0"


def test_a_stalled_json_body_is_408_and_adds_nothing(impatient):
    host, port = impatient.base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(
            (
                f"POST /play HTTP/1.1\r\nHost: {host}\r\nX-API-Key: {impatient.api_key}\r\n"
                "Content-Type: application/json\r\nContent-Length: 200\r\n\r\n"
                '{"title": "never fin'
            ).encode()
        )
        status, _ = response_of(sock, BODY_TIMEOUT_S * 3)
    assert status == 408
    assert impatient.get("/play").headers["X-Total-Count"] == "0"


def test_hundreds_of_half_open_connections_leave_healthz_answering(impatient):
    host, port = impatient.base.removeprefix("http://").split(":")
    opened = []
    try:
        for i in range(HALF_OPEN):
            sock = socket.create_connection((host, int(port)), timeout=10)
            # Nothing, half a request line, or headers without the end of them.
            sock.sendall([b"", b"GET /play HT", b"GET /healthz HTTP/1.1\r\nHost: x\r\n"][i % 3])
            opened.append(sock)
        for _ in range(5):
            assert impatient.get("/healthz", key=False).status_code == 200
        assert impatient.get("/play").status_code == 200
    finally:
        for sock in opened:
            sock.close()
    assert impatient.proc.poll() is None


@pytest.mark.parametrize("backend", ["postgresql"])
async def test_database_connections_opened_past_descriptor_1023_work(api):
    """A connection the pool opens while the process holds many descriptors (2,000
    listeners) gets one past 1023, which select() refuses: its liveness check must not use
    it (every request on such a connection was a 500)."""
    held = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]
    try:
        answers = await asyncio.gather(*(api.get("/play") for _ in range(30)))
    finally:
        for fd in held:
            os.close(fd)
    assert [a.status_code for a in answers] == [200] * 30


async def test_sqlite_writers_of_two_workers_wait_for_each_other(tmp_path):
    """Two workers' connections to one SQLite file: a transaction that reads before it
    writes, while the other worker writes, waits for the other's commit and then commits
    too. With a plain ``BEGIN`` its write met a snapshot older than the other's commit, and
    failed at once with "database is locked" (a 503 to an upload in CI)."""
    path = str(tmp_path / "shared.sqlite3")
    mine, theirs = SqliteDatabase(path), SqliteDatabase(path)
    await mine.aio_execute_sql("CREATE TABLE counter (id INTEGER PRIMARY KEY, n INTEGER)")
    await mine.aio_execute_sql("INSERT INTO counter VALUES (1, 0)")
    read, committed = asyncio.Event(), asyncio.Event()

    async def read_then_write():
        async with mine.aio_atomic():
            await mine.aio_execute_sql("SELECT n FROM counter WHERE id = 1")
            read.set()
            # The other commits here when it can; now it cannot: it waits for this lock.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(committed.wait(), 0.5)
            await mine.aio_execute_sql("UPDATE counter SET n = n + 1 WHERE id = 1")

    async def write():
        await read.wait()
        async with theirs.aio_atomic():
            await theirs.aio_execute_sql("UPDATE counter SET n = n + 10 WHERE id = 1")
        committed.set()

    try:
        await asyncio.gather(read_then_write(), write())
        assert await mine.fetch_rows("SELECT n FROM counter WHERE id = 1", ()) == [(11,)]
    finally:
        await mine.aio_close()
        await theirs.aio_close()


async def test_a_failed_sqlite_commit_leaves_the_connection_ready_for_the_next(tmp_path):
    """A COMMIT that fails can leave SQLite's transaction open (a deferred constraint always
    does; a full disk may): it is rolled back, so the process' one pooled connection takes
    the next transaction instead of refusing every BEGIN from then on."""
    db = SqliteDatabase(str(tmp_path / "one.sqlite3"))
    await db.aio_execute_sql("CREATE TABLE parent (id INTEGER PRIMARY KEY)")
    await db.aio_execute_sql(
        "CREATE TABLE child (id INTEGER PRIMARY KEY, parent_id INTEGER REFERENCES parent (id)"
        " DEFERRABLE INITIALLY DEFERRED)"
    )
    try:
        with pytest.raises(peewee.IntegrityError):
            async with db.aio_atomic():
                await db.aio_execute_sql("INSERT INTO child VALUES (1, 404)")
        async with db.aio_atomic():
            await db.aio_execute_sql("INSERT INTO parent VALUES (7)")
            await db.aio_execute_sql("INSERT INTO child VALUES (2, 7)")
        assert await db.fetch_rows("SELECT id, parent_id FROM child", ()) == [(2, 7)]
    finally:
        await db.aio_close()
