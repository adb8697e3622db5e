"""Database connections: an async pool for the service, a plain connection for migrations,
both through psycopg 3 on PostgreSQL.

PostgreSQL goes through peewee-async's psycopg 3 backend with a bounded pool whose every wait
is bounded too, so an outage answers 503 at once instead of hanging (see ``PostgresPoolBackend``
for why not aiopg). SQLite needs more
care: peewee-async opens a fresh connection per query and ignores ``pragmas`` and ``timeout``,
so concurrent writers fail with "database is locked". Our SQLite pool keeps a small, fixed set
of connections, each switched to WAL with a busy timeout, and a size of one means writes from
this process are serialised instead of racing for the file lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import select
import sqlite3
import time
from collections.abc import Sequence
from typing import Any

import aiosqlite
import peewee
import peewee_async
import psycopg
import psycopg_pool
from peewee_async.connection import connection_context
from peewee_async.pool import PoolBackend, PsycopgPoolBackend
from peewee_async.transactions import Transaction
from psycopg.rows import tuple_row

from mosic.settings import Settings

log = logging.getLogger(__name__)

SQLITE_BUSY_TIMEOUT_MS = 10_000
SQLITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA foreign_keys=ON",
    # 32 MiB of page cache (the default is 2): a library of a million songs keeps its
    # indexes' upper levels in memory, where 2 MiB re-read them from the file per query.
    "PRAGMA cache_size=-32768",
)
# One connection per process: SQLite has a single writer anyway, and queueing in-process is
# cheaper and fairer than spinning on the file lock.
SQLITE_POOL_SIZE = 1
# Every wait on PostgreSQL is bounded, so that during an outage a request fails over to a 503
# well within two seconds instead of hanging: the wait for a pool connection, the TCP connect
# (libpq's minimum is 2 s), and each statement (the server's limit and ours).
PG_ACQUIRE_TIMEOUT_S = 1.5
# How long a request waits for a connection in all while the pool is busy but working.
PG_BUSY_WAIT_S = 10
PG_CONNECT_TIMEOUT_S = 2
PG_STATEMENT_TIMEOUT_S = 10
# A reconnection attempt gives up after this long, so the next request starts a fresh one at
# once instead of waiting out the pool's growing backoff: recovery within seconds of the
# database's return.
PG_RECONNECT_TIMEOUT_S = 4


class SqlitePool:
    """A fixed-size pool of configured aiosqlite connections (an aiopg-style pool)."""

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


# The driver's errors as peewee's (which the HTTP edge answers), by the DB-API class names
# both share, as peewee's own wrapper maps them for the queries it runs.
PEEWEE_ERRORS = {
    cls.__name__: cls
    for cls in (
        peewee.IntegrityError,
        peewee.DataError,
        peewee.OperationalError,
        peewee.ProgrammingError,
        peewee.InterfaceError,
        peewee.InternalError,
        peewee.NotSupportedError,
        peewee.DatabaseError,
    )
}


def as_peewee_error(exc: Exception) -> peewee.PeeweeException:
    for cls in type(exc).__mro__:
        if cls.__name__ in PEEWEE_ERRORS:
            return PEEWEE_ERRORS[cls.__name__](str(exc))
    return peewee.DatabaseError(str(exc))


class ImmediateTransaction(Transaction):
    """A transaction that takes SQLite's write lock when it begins.

    A plain ``BEGIN`` takes it at the first write, and when another process has committed
    since this transaction's first read (its snapshot), that write fails at once with
    "database is locked", whatever the busy timeout: SQLite cannot wait its way out of a
    stale snapshot. Any read before the first write opens that window: a check before an
    update, or FTS5 reading its own configuration just before a clip is inserted. Taken at
    ``BEGIN``, the lock is waited for (the busy timeout) before the snapshot exists.

    Its statements fail as peewee's errors, which the HTTP edge answers with a 503, like
    every other query's: a lock still held after the busy timeout, say."""

    async def execute(self, sql: str) -> None:
        try:
            await super().execute(sql)
        except sqlite3.Error as exc:
            raise as_peewee_error(exc) from exc

    async def begin(self) -> None:
        if self.is_savepoint:
            await super().begin()
        else:
            await self.execute("BEGIN IMMEDIATE")

    async def commit(self) -> None:
        try:
            await super().commit()
        except peewee.PeeweeException:
            # A COMMIT that failed (a full disk, say) may leave the transaction open, and
            # the pool's one connection would refuse every later BEGIN.
            if not self.is_savepoint and self.connection.in_transaction:
                await self.rollback()
            raise


class SqliteDatabase(peewee_async.SqliteDatabase):
    pool_backend_cls = SqlitePoolBackend
    # How substring search uses an index here (mosic.persistence.search).
    full_text = "fts5"
    # Ids and times come back as text, for their fields to convert.
    rows_are_typed = False

    @contextlib.asynccontextmanager
    async def aio_atomic(self):
        """peewee-async's ``aio_atomic`` (a transaction, or a savepoint inside one), with
        the write lock taken as the transaction begins (``ImmediateTransaction``)."""
        async with self.aio_connection() as conn:
            context = connection_context.get()
            nested = context.transaction_is_opened
            try:
                async with ImmediateTransaction(conn, is_savepoint=nested):
                    context.transaction_is_opened = True
                    yield
            finally:
                context.transaction_is_opened = nested

    async def fetch_rows(self, sql: str, params: Sequence[Any]) -> list[tuple]:
        """Run ``sql``, which returns rows, and return them as tuples."""
        try:
            async with self.aio_connection() as conn, conn.execute(sql, params) as cursor:
                return list(await cursor.fetchall())
        except sqlite3.Error as exc:
            raise as_peewee_error(exc) from exc

    async def execute_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Run ``sql`` once for each of ``rows`` (its parameters), in one driver call: a
        bulk update costs one statement's preparation, not one per row."""
        try:
            async with self.aio_connection() as conn:
                await conn.executemany(sql, rows)
        except sqlite3.Error as exc:
            raise as_peewee_error(exc) from exc


class PostgresPoolBackend(PsycopgPoolBackend):
    """psycopg 3's pool with every wait bounded and each connection checked when handed out
    (``_quiet``).

    Not aiopg: on uvloop (the server's loop) aiopg leaves a closed poll handle registered for
    the socket libpq closed when a connection failed, so the next connection that gets the
    same file descriptor fails with ``RuntimeError: unable to perform operation on <UVPoll
    closed=True>``, leaking it ("Unclosed connection", "Future exception was never
    retrieved"); the same aiopg calls on asyncio's own loop give clean ``OperationalError``s.
    psycopg 3 registers a descriptor only while it waits on it. A broken connection fails the
    check and is discarded, never handed out; one returned broken or mid-transaction is
    closed by the pool.
    """

    async def create(self) -> None:
        p = self.connect_params
        pool = psycopg_pool.AsyncConnectionPool(
            psycopg.conninfo.make_conninfo(
                host=p["host"],
                port=p["port"],
                user=p["user"],
                password=p["password"],
                dbname=self.database,
                connect_timeout=PG_CONNECT_TIMEOUT_S,
                # UTC, as the tables' (naive) times are: a time read as timestamptz (a list's,
                # mosic.core.listing) then comes as datetime.timezone.utc, which psycopg
                # attaches for nothing (another zone is a conversion per value).
                options=f"-c statement_timeout={PG_STATEMENT_TIMEOUT_S * 1000} -c TimeZone=UTC",
            ),
            kwargs={"cursor_factory": psycopg.AsyncClientCursor, "autocommit": True},
            # Zero, so a worker starts (and reports not-ready) while the database is down.
            min_size=0,
            max_size=p["pool_size"],
            timeout=PG_ACQUIRE_TIMEOUT_S,
            reconnect_timeout=PG_RECONNECT_TIMEOUT_S,
            open=False,
        )
        await pool.open()
        self.pool = pool

    # Connections handed back healthy: while this moves, a wait is a busy pool, not an
    # outage.
    _returned_healthy = 0

    async def acquire(self) -> Any:
        # Transactions acquire outside peewee's exception wrapper: make a timeout the same
        # peewee error as any other database failure.
        try:
            # Checked here rather than by the pool's ``check``, which backs off a second
            # after each failed one: a pool full of dead connections would time out.
            for _ in range(self.connect_params["pool_size"] + 1):
                conn = await self._wait_for_connection()
                if _quiet(conn):
                    return conn
                await conn.close()  # the pool discards a closed connection it takes back
                await self.release(conn)
        except psycopg.Error as exc:
            raise peewee.OperationalError(str(exc)) from exc
        raise peewee.OperationalError("no live database connection")

    async def _wait_for_connection(self) -> Any:
        """A pooled connection. A wait of ``PG_ACQUIRE_TIMEOUT_S`` in which no connection
        came back healthy is an outage (a 503 within 2 s); one in which others did is a busy
        pool (200 listeners starting at once), which goes on waiting, up to
        ``PG_BUSY_WAIT_S`` in all."""
        deadline = time.monotonic() + PG_BUSY_WAIT_S
        while True:
            returned = self._returned_healthy
            try:
                return await super().acquire()
            except psycopg_pool.PoolTimeout:
                if self._returned_healthy == returned or time.monotonic() > deadline:
                    raise

    async def release(self, conn: Any) -> None:
        if not (conn.closed or conn.broken):
            self._returned_healthy += 1
        await super().release(conn)


def _quiet(conn: psycopg.AsyncConnection) -> bool:
    """Whether an idle connection is still open, told without a round trip (psycopg's own
    check, an empty query, doubled the round trips of every request and halved the plays per
    second). An idle connection has nothing to say: if its socket is readable, the server has
    closed it or sent its goodbye (a shutdown's or pg_terminate_backend's "terminating
    connection"). A peer that vanished silently is left to the statement timeouts."""
    if conn.closed or conn.broken:
        return False
    # poll, not select: select takes no descriptor past 1023, which a connection opened while
    # 2,000 listeners are connected has (every stream failed with a 500).
    poller = select.poll()
    poller.register(conn.fileno(), select.POLLIN)
    return not poller.poll(0)


class PostgresqlDatabase(peewee_async.Psycopg3Database):
    pool_backend_cls = PostgresPoolBackend
    full_text = "trgm"
    # psycopg returns uuid.UUID and datetime itself: what the fields would convert to.
    rows_are_typed = True

    async def aio_execute_sql(
        self, sql: str, params: Sequence[Any] | None = None, fetch_results=None
    ) -> Any:
        # Our own bound as well as the server's: a database that stops answering without
        # closing the socket (a partition) would otherwise hold the request for ever.
        try:
            async with asyncio.timeout(PG_STATEMENT_TIMEOUT_S):
                return await super().aio_execute_sql(sql, params, fetch_results)
        except TimeoutError:
            raise peewee.OperationalError("the database did not answer in time") from None

    async def fetch_rows(self, sql: str, params: Sequence[Any]) -> list[tuple]:
        """Run ``sql``, which returns rows, and return them as tuples (as
        ``mosic.persistence.compiled`` wants them).

        Through a cursor that binds on the server, unlike the client-side binding peewee's
        queries need: psycopg then prepares a statement run often, and half the time of a
        one-row read goes."""
        try:
            async with asyncio.timeout(PG_STATEMENT_TIMEOUT_S):
                async with (
                    self.aio_connection() as conn,
                    psycopg.AsyncCursor(conn, row_factory=tuple_row) as cursor,
                ):
                    await cursor.execute(sql, params, binary=True)
                    return await cursor.fetchall()
        except TimeoutError:
            raise peewee.OperationalError("the database did not answer in time") from None
        except psycopg.Error as exc:
            raise as_peewee_error(exc) from exc

    async def execute_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Run ``sql`` once for each of ``rows`` (its parameters); psycopg pipelines them,
        one round trip for the lot."""
        try:
            async with self.aio_connection() as conn, conn.cursor() as cursor:
                await cursor.executemany(sql, rows)
        except psycopg.Error as exc:
            raise as_peewee_error(exc) from exc


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
            pool_params={"pool_size": settings.db_pool_size},
        )
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return SqliteDatabase(str(settings.sqlite_path))


def make_sync_database(settings: Settings) -> peewee.Database:
    """A plain blocking connection for migrations and the command line.

    On PostgreSQL through psycopg 3 as well, so the image carries one driver. Its cursors
    bind on the client, as psycopg2's did: a migration's DDL may carry parameters and run
    several statements at once, which server-side binding refuses."""
    pg = settings.postgres
    if pg is not None:
        return peewee.PostgresqlDatabase(
            pg.name,
            host=pg.host,
            port=pg.port,
            user=pg.user,
            password=pg.password,
            prefer_psycopg3=True,
            cursor_factory=psycopg.ClientCursor,
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
    stats = pool.get_stats()
    return stats["pool_size"] - stats["pool_available"], pool.max_size
