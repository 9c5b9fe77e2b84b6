"""An ordered, batching writer for everything one run writes to the database.

The run loop produces many small writes (a stream event per token, step and message
updates). Each goes through the sink, which applies them strictly in order; while one
transaction is in flight, later items queue up and the next transaction takes them all, so
a fast model costs a few commits per second instead of one per token, and the first token
is written at once.

A batch of only events and plain row inserts (the common case while a model streams: text
deltas, a new message and its step) is written as one statement on an autocommit connection:
the ownership check, the inserts and the events in a single round trip, atomic like any one
statement. Batches with ORM operations take a transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from psycopg.types.json import Jsonb
from sqlalchemy import Table, insert, inspect, select
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import DeclarativeBase

from assistd.models import Run
from assistd.runs import events
from assistd.runs.local import HUB

Event = tuple[str, dict[str, Any]]
Op = Callable[[AsyncSession], Awaitable[list[Event]]]
Row = tuple[Table, dict[str, Any]]
"""A row to insert: its table and values by column name."""

_EXECUTING = ("in_progress", "cancelling")

LOCKED_RUN = "assistd.locked_run"
"""``session.info`` key: the run row an owner's transaction has locked (ops use it)."""


def plain_row(obj: DeclarativeBase) -> Row:
    """A new ORM object as a row to insert; columns left None that the database fills
    (``seq``) are left out."""
    mapper = inspect(type(obj))
    values: dict[str, Any] = {}
    for attr in mapper.column_attrs:
        column = attr.columns[0]
        value = getattr(obj, attr.key)
        if value is None and column.server_default is not None:
            continue
        values[column.name] = value
    table = mapper.local_table
    assert isinstance(table, Table)
    return table, values


@dataclass
class _Item:
    events: list[Event]
    op: Op | None
    done: asyncio.Future[None] | None
    rows: list[Row] | None = None


class LostOwnership(RuntimeError):
    """The run is no longer this worker's (reaped after a stall, or ended elsewhere)."""


class RunDiscarded(RuntimeError):
    """The transaction creating the run rolled back: the run never existed."""


class RunSink:
    """Serialises a run's writes; ``apply`` waits for commit, ``event`` does not.

    With an ``owner``, every transaction first locks the run and checks that this worker
    still owns it and it is still executing; otherwise nothing is written (a worker that
    froze past its lease must not scribble on a run the reaper already ended).

    With a ``gate`` (a run started while the transaction creating it commits), nothing is
    written before the gate resolves; if it fails, nothing is written at all.
    """

    def __init__(
        self,
        maker: async_sessionmaker[AsyncSession],
        run_id: str,
        owner: str | None = None,
        gate: asyncio.Future[None] | None = None,
    ) -> None:
        self.maker = maker
        self.run_id = run_id
        self.owner = owner
        self._gate = gate
        self._queue: asyncio.Queue[_Item | None] = asyncio.Queue()
        self._error: BaseException | None = None
        self._closed = False
        HUB.open_writer(run_id)
        self._task = asyncio.create_task(self._writer(), name=f"sink-{run_id}")

    def event(self, name: str, data: dict[str, Any]) -> None:
        """Append a stream event without waiting."""
        self._raise_if_failed()
        self._queue.put_nowait(_Item([(name, data)], None, None))

    def insert_later(self, rows: list[Row], produced: list[Event]) -> None:
        """Queue plain row inserts and the events that announce them, without waiting."""
        self._raise_if_failed()
        self._queue.put_nowait(_Item(produced, None, None, rows))

    def later(self, op: Op) -> None:
        """Queue ``op`` in order without waiting for it."""
        self._raise_if_failed()
        self._queue.put_nowait(_Item([], op, None))

    async def apply(self, op: Op) -> None:
        """Run ``op`` in order with everything queued before it; wait until committed."""
        self._raise_if_failed()
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Item([], op, done))
        await done

    async def flush(self) -> None:
        """Wait until everything queued so far is committed."""
        await self.apply(_noop)

    async def close(self) -> None:
        """Flush and stop the writer."""
        try:
            if not self._task.done():
                self._queue.put_nowait(None)
                with contextlib.suppress(Exception):
                    await self._task
        finally:
            if not self._closed:
                self._closed = True
                HUB.close_writer(self.run_id)

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise RuntimeError("writing the run's state failed") from self._error

    async def _writer(self) -> None:
        if self._gate is not None:
            try:
                await asyncio.shield(self._gate)
            except BaseException as exc:
                self._error = RunDiscarded(self.run_id) if isinstance(exc, Exception) else exc
                while not self._queue.empty():
                    item = self._queue.get_nowait()
                    if item is not None and item.done is not None and not item.done.done():
                        item.done.set_exception(self._error)
                if not isinstance(exc, Exception):
                    raise
                return
        while True:
            first = await self._queue.get()
            if first is None:
                return
            batch = [first]
            stop = False
            while not self._queue.empty():
                item = self._queue.get_nowait()
                if item is None:
                    stop = True
                    break
                batch.append(item)
            produced: list[Event] = []
            try:
                if self.owner is not None and all(item.op is None for item in batch):
                    for item in batch:
                        produced.extend(item.events)
                    ids = await self._write_plain(
                        [row for item in batch for row in item.rows or ()], produced
                    )
                else:
                    async with self.maker() as session, session.begin():
                        if self.owner is not None:
                            await self._check_owner(session)
                        for item in batch:
                            for table, values in item.rows or ():
                                await session.execute(insert(table), [values])
                            produced.extend(item.events)
                            if item.op is not None:
                                produced.extend(await item.op(session))
                        ids = await events.append(session, self.run_id, produced)
            except Exception as exc:
                self._error = exc
                for item in batch:
                    if item.done is not None and not item.done.done():
                        item.done.set_exception(exc)
                # Fail everything still queued, then keep draining so nobody waits forever.
                continue
            # Committed: tails in this process take the rows from memory.
            HUB.publish(
                self.run_id,
                [(i, name, data) for i, (name, data) in zip(ids, produced, strict=True)],
            )
            for item in batch:
                if item.done is not None and not item.done.done():
                    item.done.set_result(None)
            if stop:
                return

    async def _write_plain(self, rows: list[Row], produced: list[Event]) -> list[int]:
        """Check ownership, insert ``rows`` and append ``produced`` in one statement."""
        sql, params = _plain_statement(self.run_id, self.owner, rows, produced)
        engine = self.maker.kw["bind"]
        assert isinstance(engine, AsyncEngine)
        async with engine.connect() as conn:
            raw = await conn.get_raw_connection()
            pg = raw.driver_connection
            assert pg is not None
            # One statement is its own transaction: no BEGIN/COMMIT round trips.
            await pg.set_autocommit(True)
            try:
                cursor = await pg.execute(sql, params)
                result = await cursor.fetchall()
            finally:
                await pg.set_autocommit(False)
        if produced:
            ids = sorted(int(r[0]) for r in result)
            if len(ids) != len(produced):
                raise LostOwnership(f"run {self.run_id} is no longer owned by {self.owner}")
            return ids
        if not result or not result[0][0]:
            raise LostOwnership(f"run {self.run_id} is no longer owned by {self.owner}")
        return []

    async def _check_owner(self, session: AsyncSession) -> None:
        run = await session.scalar(select(Run).where(Run.id == self.run_id).with_for_update())
        if run is None or run.worker_id != self.owner or run.status not in _EXECUTING:
            raise LostOwnership(f"run {self.run_id} is no longer owned by {self.owner}")
        session.info[LOCKED_RUN] = run


async def _noop(session: AsyncSession) -> list[Event]:
    return []


_PG = postgresql.dialect()  # type: ignore[no-untyped-call]
_COLUMN_TYPES: dict[tuple[str, str], str] = {}


def _sql_type(table: Table, column: str) -> str:
    key = (table.name, column)
    if key not in _COLUMN_TYPES:
        _COLUMN_TYPES[key] = table.c[column].type.compile(dialect=_PG)
    return _COLUMN_TYPES[key]


def _plain_statement(
    run_id: str, owner: str | None, rows: list[Row], produced: list[Event]
) -> tuple[str, dict[str, Any]]:
    """One statement: lock the run if ``owner`` still executes it, then insert ``rows`` and
    ``produced`` (only if so); it returns the new event ids (or, without events, whether
    the run is still owned)."""
    params: dict[str, Any] = {"run": run_id, "owner": owner, "executing": list(_EXECUTING)}
    parts = [
        "owner AS (SELECT 1 AS ok FROM runs WHERE id = %(run)s AND worker_id = %(owner)s"
        " AND status = ANY(%(executing)s) FOR UPDATE)"
    ]
    for i, (table, values) in enumerate(rows):
        names, exprs = [], []
        for j, (column, value) in enumerate(values.items()):
            key = f"r{i}_{j}"
            sql_type = _sql_type(table, column)
            params[key] = Jsonb(value) if sql_type == "JSONB" and value is not None else value
            names.append(f'"{column}"')
            exprs.append(f"%({key})s::{sql_type}")
        parts.append(
            f'r{i} AS (INSERT INTO "{table.name}" ({", ".join(names)})'
            f" SELECT {', '.join(exprs)} FROM owner)"
        )
    if not produced:
        return f"WITH {', '.join(parts)} SELECT count(*) FROM owner", params
    params["names"] = [name for name, _ in produced]
    params["datas"] = [Jsonb(data) for _, data in produced]
    params["stamp"] = time.time()
    parts.append(
        "ev AS (INSERT INTO run_events (run_id, event, data, created_at)"
        " SELECT %(run)s, e.event, e.data, %(stamp)s"
        " FROM owner, unnest(%(names)s::text[], %(datas)s::jsonb[]) WITH ORDINALITY"
        " AS e(event, data, n) ORDER BY e.n RETURNING id)"
    )
    return f"WITH {', '.join(parts)} SELECT id FROM ev", params
