"""Database connections: an async pool for the service, a plain connection for migrations.

PostgreSQL goes through peewee-async's aiopg backend with a bounded pool. SQLite needs more
care: peewee-async opens a fresh connection per query and ignores ``pragmas`` and ``timeout``,
so concurrent writers fail with "database is locked". Our SQLite pool keeps a small, fixed set
of connections, each switched to WAL with a busy timeout, and a size of one means writes from
this process are serialised instead of racing for the file lock.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import aiosqlite
import peewee
import peewee_async
from peewee_async.pool import AioPgPoolBackend, PoolBackend

from mosic.settings import Settings

log = logging.getLogger(__name__)

SQLITE_BUSY_TIMEOUT_MS = 10_000
SQLITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA foreign_keys=ON",
)
# One connection per process: SQLite has a single writer anyway, and queueing in-process is
# cheaper and fairer than spinning on the file lock.
SQLITE_POOL_SIZE = 1
PG_POOL_TIMEOUT_S = 30


class SqlitePool:
    """A fixed-size pool of configured aiosqlite connections (aiopg's pool interface)."""

    def __init__(self, database: str, size: int) -> None:
        self.database = database
        self.size = size
        self._idle: asyncio.Queue[aiosqlite.Connection] = asyncio.Queue()
        self._all: list[aiosqlite.Connection] = []
        self._lock = asyncio.Lock()
        self.closed = False

    async def _open(self) -> aiosqlite.Connection:
        conn = await aiosqlite.connect(self.database, isolation_level=None)
        for pragma in SQLITE_PRAGMAS:
            await conn.execute(pragma)
        return conn

    async def acquire(self) -> aiosqlite.Connection:
        if self.closed:
            raise peewee.InterfaceError("the SQLite pool is closed")
        async with self._lock:
            if self._idle.empty() and len(self._all) < self.size:
                conn = await self._open()
                self._all.append(conn)
                return conn
        return await self._idle.get()

    def release(self, conn: aiosqlite.Connection) -> None:
        self._idle.put_nowait(conn)

    @property
    def in_use(self) -> int:
        return len(self._all) - self._idle.qsize()

    async def close(self) -> None:
        self.closed = True
        for conn in self._all:
            await conn.close()
        self._all.clear()


class SqlitePoolBackend(PoolBackend):
    required_modules = ["aiosqlite"]

    async def create(self) -> None:
        self.pool = SqlitePool(
            self.database, self.connect_params.get("pool_size", SQLITE_POOL_SIZE)
        )

    async def acquire(self) -> Any:
        if self.pool is None:
            await self.connect()
        return await self.pool.acquire()

    async def release(self, conn: Any) -> None:
        self.pool.release(conn)

    def has_acquired_connections(self) -> bool:
        return self.pool is not None and self.pool.in_use > 0

    async def close(self) -> None:
        if self.pool is not None:
            await self.pool.close()


class SqliteDatabase(peewee_async.SqliteDatabase):
    pool_backend_cls = SqlitePoolBackend


class FairAioPgPoolBackend(AioPgPoolBackend):
    """aiopg's pool, entered in arrival order.

    When aiopg's pool is exhausted, a released connection wakes one waiter, which must then
    re-take the pool's lock behind any request that arrived meanwhile: the newcomer gets the
    connection and the waiter queues again, so a few requests wait many turns (the p99 of
    bench/profiles/FINDINGS.md, 1). A FIFO semaphore of the pool's size in front means aiopg
    always has a connection (or room for one) for whoever gets in. The pool's timeout covers
    the wait for a turn and for the connection together, as aiopg's alone did before.
    """

    async def create(self) -> None:
        self._turns = asyncio.Semaphore(self.connect_params["maxsize"])
        await super().create()

    async def acquire(self) -> Any:
        if self.pool is None:
            await self.connect()
        async with asyncio.timeout(self.connect_params.get("timeout")):
            await self._turns.acquire()
            try:
                return await super().acquire()
            except BaseException:
                self._turns.release()
                raise

    async def release(self, conn: Any) -> None:
        try:
            await super().release(conn)
        finally:
            self._turns.release()


class PostgresqlDatabase(peewee_async.PostgresqlDatabase):
    pool_backend_cls = FairAioPgPoolBackend


def make_database(settings: Settings) -> peewee_async.AioDatabase:
    """The async database the service uses. Its pool opens lazily, in the event loop of the
    first query (the app's lifespan connects it when a worker starts)."""
    pg = settings.postgres
    if pg is not None:
        return PostgresqlDatabase(
            pg.name,
            host=pg.host,
            port=pg.port,
            user=pg.user,
            password=pg.password,
            pool_params={
                # Zero, so a worker starts (and reports not-ready) while the database is down.
                "minsize": 0,
                "maxsize": settings.db_pool_size,
                "timeout": PG_POOL_TIMEOUT_S,
            },
        )
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return SqliteDatabase(str(settings.sqlite_path))


def make_sync_database(settings: Settings) -> peewee.Database:
    """A plain blocking connection for migrations and the command line."""
    pg = settings.postgres
    if pg is not None:
        return peewee.PostgresqlDatabase(
            pg.name, host=pg.host, port=pg.port, user=pg.user, password=pg.password
        )
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return peewee.SqliteDatabase(
        str(settings.sqlite_path),
        pragmas={"journal_mode": "wal", "busy_timeout": SQLITE_BUSY_TIMEOUT_MS},
    )


def pool_usage(db: peewee_async.AioDatabase) -> tuple[int, int]:
    """(connections in use, pool capacity), for the pool gauge in ``/metrics``."""
    pool = db.pool_backend.pool
    if pool is None:
        return 0, 0
    if isinstance(pool, SqlitePool):
        return pool.in_use, pool.size
    # aiopg's pool: ``size`` counts open connections, ``freesize`` the idle ones.
    return pool.size - pool.freesize, pool.maxsize
