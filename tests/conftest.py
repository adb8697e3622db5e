"""Fixtures shared by the suites.

Every API test runs twice: on the embedded SQLite file and on a real PostgreSQL. The
PostgreSQL leg uses ``MOSIC_TEST_DATABASE_URL`` when set, otherwise a throwaway cluster the
tests start themselves; it is never skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import faulthandler
import os
import signal
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import falcon.testing
import psycopg
import pytest

from mosic.app import create_app
from mosic.persistence.database import make_sync_database
from mosic.persistence.models import Clip
from mosic.settings import PostgresConfig, Settings, parse_database_url
from tests.support.asgi import StaysConnected
from tests.support.audio import make_clip
from tests.support.database import migrate
from tests.support.forms import multipart
from tests.support.postgres import configured_or_throwaway
from tests.support.s3 import rclone_s3

API_KEY = "test-key-0123456789"
# "s3": PostgreSQL, with media in a bucket of a real S3-compatible server (proxy mode).
BACKENDS = ("sqlite", "postgresql", "s3")
LOCAL_BACKENDS = ("sqlite", "postgresql")
TABLES = (
    "clip",
    "subsonic_star",
    "subsonic_rating",
    "subsonic_playlist",
    "subsonic_playlist_entry",
    "subsonic_play_queue",
    "subsonic_play_queue_entry",
    "library_album",
    "library_artist",
    "library_genre",
    "library_directory",
    "api_key",
    "user_star",
    "user_rating",
    "user_play_queue",
    "user_play_queue_entry",
    "user_bookmark",
    "user_play",
    "user_play_event",
    "user_now_playing",
    "user_listen",
    "share_link",
    "share_entry",
)
# Rows every database has from its migrations, put back as they were.
RESET = (
    "DELETE FROM music_folder WHERE id != 1",
    "DELETE FROM mosic_user WHERE id != 1",
    "UPDATE music_folder SET clips = 0, songs = 0",
    "UPDATE library_scan SET scanning = FALSE, owner = NULL, lease_until = NULL",
    "UPDATE mosic_lease SET owner = NULL, lease_until = NULL",
    # The artists were emptied behind the writers' backs: what a process kept is stale.
    "UPDATE library_version SET version = version + 1",
)
# How long an upload's loudness may take to be read, after its 201.
LOUDNESS_WAIT_S = 60
# Covers (by image type) and waveform peaks (audiowaveform .dat) in the media store.
DERIVED_SUFFIXES = {".jpg", ".png", ".gif", ".webp", ".bmp", ".img", ".dat"}


@pytest.fixture(scope="session")
def postgres_url():
    with configured_or_throwaway() as url:
        yield url


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    with rclone_s3(tmp_path_factory.mktemp("s3")) as server:
        yield server


def _dump_tasks(signum, frame) -> None:
    """``kill -USR1 <pytest>``: where each task of the running event loop waits, and every
    thread's stack, into ``$TMPDIR/mosic-tasks-<pid>.txt`` (pytest captures stderr; a stuck
    async test otherwise shows only an idle loop)."""
    path = Path(tempfile.gettempdir()) / f"mosic-tasks-{os.getpid()}.txt"
    with path.open("w") as out:
        faulthandler.dump_traceback(file=out, all_threads=True)
        with contextlib.suppress(RuntimeError):  # no loop running
            for task in asyncio.all_tasks(asyncio.get_running_loop()):
                print(f"--- {task!r}", file=out)
                task.print_stack(file=out)


signal.signal(signal.SIGUSR1, _dump_tasks)


def settings_for(backend: str, data_dir: Path, postgres_url: str | None, **overrides) -> Settings:
    postgres = parse_database_url(postgres_url) if backend in ("postgresql", "s3") else None
    return Settings(data_dir=data_dir, postgres=postgres, api_key=API_KEY, **overrides)


def reset_database(settings: Settings) -> None:
    """Apply migrations and empty the catalogue (and what the listener keeps), so each test
    starts from nothing."""
    emptied = tuple(f"DELETE FROM {table}" for table in TABLES)  # noqa: S608
    migrate(settings, then=emptied + RESET)


@contextlib.contextmanager
def postgres_database(postgres_url: str) -> Iterator[PostgresConfig]:
    """A new, empty PostgreSQL database on the test cluster, dropped afterwards."""
    name = f"mosic_{uuid.uuid4().hex[:12]}"
    admin = psycopg.connect(postgres_url, autocommit=True)
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    config = parse_database_url(postgres_url)
    try:
        yield PostgresConfig(host=config.host, port=config.port, user=config.user, name=name)
    finally:
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        admin.close()


@pytest.fixture
def fresh_postgres_db(postgres_url):
    with postgres_database(postgres_url) as config:
        yield config


@contextlib.contextmanager
def new_postgres_db(request) -> Iterator[PostgresConfig | None]:
    """For a fixture parametrized by ``LOCAL_BACKENDS``: a fresh PostgreSQL database on the
    "postgresql" leg, None on the SQLite one (whatever the fixture's scope)."""
    if request.param != "postgresql":
        yield None
        return
    with postgres_database(request.getfixturevalue("postgres_url")) as config:
        yield config


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    return request.param


@pytest.fixture
def settings(backend, tmp_path, request) -> Settings:
    url = request.getfixturevalue("postgres_url") if backend != "sqlite" else None
    extra = {}
    if backend == "s3":
        bucket = f"mosic-{uuid.uuid4().hex[:12]}"
        extra["s3"] = request.getfixturevalue("s3_server").new_bucket(bucket)
        extra["storage"] = "s3"
    settings = settings_for(backend, tmp_path / "data", url, **extra)
    reset_database(settings)
    return settings


def media_dir(settings: Settings, request) -> Path:
    """Where the store keeps files: the media root, or the bucket's folder on rclone's disk."""
    if not settings.uses_s3:
        return settings.media_root
    return request.getfixturevalue("s3_server").media_dir(settings.s3)


class Api:
    """The API as a client sees it: every call carries the key unless told otherwise."""

    def __init__(
        self,
        conductor: falcon.testing.ASGIConductor,
        settings: Settings,
        media_dir: Path,
        s3_server=None,
    ) -> None:
        self.conductor = conductor
        self.settings = settings
        self.media_dir = media_dir
        self.s3_server = s3_server
        self._sync_db = None  # for reads the API does not answer (made on first use)

    def _headers(self, headers, key):
        merged = {"X-API-Key": key} if key else {}
        merged.update(headers or {})
        return merged

    async def request(
        self, method: str, path: str, *, key: str | None = API_KEY, headers=None, **kwargs
    ) -> falcon.testing.Result:
        return await self.conductor.simulate_request(
            method, path, headers=self._headers(headers, key), **kwargs
        )

    async def get(self, path, **kw):
        return await self.request("GET", path, **kw)

    async def head(self, path, **kw):
        return await self.request("HEAD", path, **kw)

    async def post(self, path, **kw):
        return await self.request("POST", path, **kw)

    async def patch(self, path, **kw):
        return await self.request("PATCH", path, **kw)

    async def delete(self, path, **kw):
        return await self.request("DELETE", path, **kw)

    async def upload(
        self,
        data: bytes,
        filename: str = "clip.mp3",
        *,
        path="/play/upload",
        content_type: str = "audio/mpeg",
        key: str | None = API_KEY,
        measured: bool = True,
        **fields,
    ) -> falcon.testing.Result:
        """POST the file as a form; with ``measured``, return once the clip's loudness, which
        Mosic reads after the 201, is read: what a test compares later stays as it was."""
        body, ctype = multipart(fields, {"file": (filename, data, content_type)})
        result = await self.post(path, body=body, headers={"Content-Type": ctype}, key=key)
        if measured and result.status_code == 201:
            await self._loudness_read(result.json["id"])
        return result

    async def _loudness_read(self, clip_id: str) -> None:
        deadline = asyncio.get_running_loop().time() + LOUDNESS_WAIT_S
        while not await asyncio.to_thread(self._gain_read, uuid.UUID(clip_id)):
            assert asyncio.get_running_loop().time() < deadline, f"clip {clip_id} unmeasured"
            await asyncio.sleep(0.01)

    def _gain_read(self, clip_id: uuid.UUID) -> bool:
        if self._sync_db is None:
            self._sync_db = make_sync_database(self.settings)
        with self._sync_db.bind_ctx([Clip]):
            query = Clip.select(Clip.gain_source).where(Clip.id == clip_id)
            return query.scalar() is not None

    def close(self) -> None:
        if self._sync_db is not None:
            self._sync_db.close()

    async def add_external(
        self, title="Remote", duration=12.5, audio_url="https://example.com/a.mp3", **extra
    ):
        return await self.post(
            "/play", json={"title": title, "duration": duration, "audio_url": audio_url, **extra}
        )

    def media_files(self) -> list[Path]:
        """Every file in the media store: stored clips and partial uploads alike (not the
        object store's heartbeats, which say which replicas are alive)."""
        return sorted(
            p for p in self.media_dir.rglob("*") if p.is_file() and ".instances" not in p.parts
        )

    def stored_files(self) -> list[Path]:
        """The stored audio of clips (not partial uploads, covers or waveform peaks)."""
        return [p for p in self._published() if p.suffix not in DERIVED_SUFFIXES]

    def derived_files(self) -> list[Path]:
        """What Mosic derived from stored audio: covers and waveform peaks."""
        return [p for p in self._published() if p.suffix in DERIVED_SUFFIXES]

    def _published(self) -> list[Path]:
        return [p for p in self.media_files() if ".incoming" not in p.parts]

    def lose_stored_media(self) -> None:
        """Make every stored file vanish behind Mosic's back (from the disk, or the bucket)."""
        if self.s3_server is None:
            for path in self.stored_files():
                path.unlink()
            return
        client, config = self.s3_server.client(), self.settings.s3
        for path in self.stored_files():
            key = config.prefix + path.relative_to(self.media_dir).as_posix()
            client.delete_object(Bucket=config.bucket, Key=key)


@pytest.fixture
async def api(settings, request):
    async with falcon.testing.ASGIConductor(StaysConnected(create_app(settings))) as conductor:
        s3 = request.getfixturevalue("s3_server") if settings.uses_s3 else None
        client = Api(conductor, settings, media_dir(settings, request), s3)
        try:
            yield client
        finally:
            client.close()


@pytest.fixture(scope="session")
def audio_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("audio")


@pytest.fixture(scope="session")
def clip_file(audio_dir):
    """Make (and cache) a real tagged clip: ``clip_file("mp3", title="x")``."""
    made: dict[tuple, Path] = {}

    def make(fmt: str = "mp3", seconds: float = 1.0, freq: int = 440, **tags) -> Path:
        key = (fmt, seconds, freq, tuple(sorted(tags.items())))
        if key not in made:
            name = f"clip{len(made)}.{fmt}"
            made[key] = make_clip(audio_dir / name, fmt, seconds=seconds, freq=freq, **tags)
        return made[key]

    return make
