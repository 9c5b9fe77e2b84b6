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
from sqlalchemy import Table, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from assistd.core.db import engine_of, execute_alone
from assistd.models import Run
from assistd.models.rows import Row, bind, insert_values
from assistd.runs import events, status
from assistd.runs.local import HUB
from assistd.runs.starter import RunDiscarded

Event = tuple[str, dict[str, Any]]
Op = Callable[[AsyncSession], Awaitable[list[Event]]]

LINGER_SECONDS = 0.001
"""How long a lone stream event waits for company before it is written (never the run's
first write, so the first token is not delayed)."""

LOCKED_RUN = "assistd.locked_run"
"""``session.info`` key: the run row an owner's transaction has locked (ops use it)."""


@dataclass
class Update:
    """A row to update by id. ``patch`` columns are read back by the update and copied into
    the data of the events that announce the row (``PlainEvent.patch``): fields others may
    change meanwhile, like ``metadata``. With ``run_usage`` the row (a run) also gets
    ``usage``, the sum over the run's steps including this batch's step updates."""

    table: Table
    id: str
    values: dict[str, Any]
    patch: tuple[str, ...] = ()
    run_usage: bool = False


PlainEvent = tuple[str, dict[str, Any], int | None]
"""An event and the index (among its item's updates) of the update whose ``patch`` columns
its data takes, if any."""


@dataclass
class _Item:
    events: list[Event]
    op: Op | None
    done: asyncio.Future[None] | None
    rows: list[Row] | None = None
    updates: list[Update] | None = None
    patches: list[int | None] | None = None
    """Per event: the index of the update (in ``updates``) that patches it."""


class LostOwnership(RuntimeError):
    """The run is no longer this worker's (reaped after a stall, or ended elsewhere)."""


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
        self.record = True
        """Whether stream events are written (a run nobody streams records none: only a
        stream reads them); rows and updates are written either way."""
        HUB.open_writer(run_id)
        self._task = asyncio.create_task(self._writer(), name=f"sink-{run_id}")

    def event(self, name: str, data: dict[str, Any]) -> None:
        """Append a stream event without waiting."""
        self._raise_if_failed()
        if self.record:
            self._queue.put_nowait(_Item([(name, data)], None, None))

    def insert_later(self, rows: list[Row], produced: list[Event]) -> None:
        """Queue plain row inserts and the events that announce them, without waiting."""
        self._raise_if_failed()
        self._queue.put_nowait(_Item(produced if self.record else [], None, None, rows))

    def update_later(self, updates: list[Update], produced: list[PlainEvent]) -> None:
        """Queue plain row updates and the events that announce them, without waiting."""
        self._raise_if_failed()
        self._queue.put_nowait(_plain_item(updates, produced if self.record else [], None))

    async def update(self, updates: list[Update], produced: list[PlainEvent]) -> None:
        """Plain row updates and their events, in order; wait until committed."""
        self._raise_if_failed()
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_plain_item(updates, produced if self.record else [], done))
        await done

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
        self._raise_if_failed()
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Item([], None, done))
        await done

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
        written = False
        while True:
            first = await self._queue.get()
            if first is None:
                return
            if written and _lingers(first) and self._queue.empty():
                # A lone stream event after the first write (a text delta): wait a moment for
                # what follows it. The model's last token is followed at once by its end,
                # and the run's final write then takes that token along, instead of waiting
                # for the token's own write to finish first.
                await asyncio.sleep(LINGER_SECONDS)
            written = True
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
                if all(item.op is None and _empty(item) for item in batch):
                    ids: list[int] = []  # only flushes: nothing to write
                elif self.owner is not None and all(item.op is None for item in batch):
                    ids, produced = await self._write_plain(batch)
                else:
                    async with self.maker() as session, session.begin():
                        if self.owner is not None:
                            await self._check_owner(session)
                        for item in batch:
                            produced.extend(await self._apply_item(session, item))
                        if not self.record:
                            produced = []
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

    async def _apply_item(self, session: AsyncSession, item: _Item) -> list[Event]:
        """One item inside a transaction (the ORM path); the events it produced."""
        for table, values in item.rows or ():
            await session.execute(insert(table), [values])
        patched: list[dict[str, Any]] = []
        for u in item.updates or ():
            values = dict(u.values)
            if u.run_usage:
                await session.flush()
                values["usage"] = await status.usage_total(session, self.run_id)
            returning = [u.table.c[c] for c in u.patch] or [u.table.c.id]
            row = (
                await session.execute(
                    update(u.table).where(u.table.c.id == u.id).values(values).returning(*returning)
                )
            ).first()
            # (A row deleted meanwhile, like a message the user removed, patches nothing.)
            patched.append({} if row is None else {c: row._mapping[c] for c in u.patch})
            if u.table is Run.__table__:
                # The ORM copy of the run (if any) is stale now: later ops reload it.
                locked = session.info.pop(LOCKED_RUN, None)
                if locked is not None:
                    session.expunge(locked)
        out = _patched(item.events, item.patches, patched)
        if item.op is not None:
            out.extend(await item.op(session))
        return out

    async def _write_plain(self, batch: list[_Item]) -> tuple[list[int], list[Event]]:
        """Check ownership, insert and update the batch's rows and append its events, in one
        statement; the new event ids and the events as stored."""
        rows: list[Row] = []
        updates: list[Update] = []
        produced: list[Event] = []
        patch_of: list[int | None] = []
        for item in batch:
            rows.extend(item.rows or ())
            base = len(updates)
            updates.extend(item.updates or ())
            produced.extend(item.events)
            patches = item.patches or [None] * len(item.events)
            patch_of.extend(None if p is None else base + p for p in patches)
        # An update of a row this same statement inserts would not see it (one snapshot):
        # fold it into the insert, and patch its events from the values inserted.
        step_usage = [u for u in updates if u.table.name == "run_steps" and "usage" in u.values]
        inserted = {(table.name, values.get("id")): i for i, (table, values) in enumerate(rows)}
        rows = [(table, dict(values)) for table, values in rows]
        kept: list[Update] = []
        where: dict[int, int] = {}
        folded: dict[int, dict[str, Any]] = {}
        for k, u in enumerate(updates):
            i = inserted.get((u.table.name, u.id))
            if i is not None and not u.run_usage:
                rows[i][1].update(u.values)
                folded[k] = {c: rows[i][1].get(c) for c in u.patch}
            else:
                where[k] = len(kept)
                kept.append(u)
        if folded:
            produced = _patched(
                produced,
                [p if p in folded else None for p in patch_of],
                [folded.get(k, {}) for k in range(len(updates))],
            )
            patch_of = [None if p is None or p in folded else where[p] for p in patch_of]
        else:
            patch_of = [None if p is None else where[p] for p in patch_of]
        updates = kept
        sql, params = _plain_statement(
            self.run_id, self.owner, rows, updates, step_usage, produced, patch_of
        )
        result = await execute_alone(engine_of(self.maker), sql, params)
        if not produced:
            if not result or not result[0][1]:
                raise LostOwnership(f"run {self.run_id} is no longer owned by {self.owner}")
            return [], []
        ids = sorted(int(r[1]) for r in result if r[0] < 0)
        if len(ids) != len(produced):
            raise LostOwnership(f"run {self.run_id} is no longer owned by {self.owner}")
        patched: list[dict[str, Any]] = [{} for _ in updates]
        for k, _, values in result:
            if k >= 0:
                patched[k] = values
        return ids, _patched(produced, patch_of, patched)

    async def _check_owner(self, session: AsyncSession) -> None:
        run = await session.scalar(select(Run).where(Run.id == self.run_id).with_for_update())
        if run is None or run.worker_id != self.owner or run.status not in status.EXECUTING:
            raise LostOwnership(f"run {self.run_id} is no longer owned by {self.owner}")
        session.info[LOCKED_RUN] = run


def _lingers(item: _Item) -> bool:
    """Whether ``item`` is stream events only, nobody waiting for them."""
    return bool(item.events) and not (item.op or item.done or item.rows or item.updates)


def _empty(item: _Item) -> bool:
    return not (item.events or item.rows or item.updates)


def _plain_item(
    updates: list[Update], produced: list[PlainEvent], done: asyncio.Future[None] | None
) -> _Item:
    return _Item(
        [(name, data) for name, data, _ in produced],
        None,
        done,
        updates=updates,
        patches=[p for _, _, p in produced],
    )


def _patched(
    produced: list[Event], patch_of: list[int | None] | None, patched: list[dict[str, Any]]
) -> list[Event]:
    if not patch_of:
        return list(produced)
    return [
        (name, data if p is None else {**data, **patched[p]})
        for (name, data), p in zip(produced, patch_of, strict=True)
    ]


def _plain_statement(
    run_id: str,
    owner: str | None,
    rows: list[Row],
    updates: list[Update],
    step_usage: list[Update],
    produced: list[Event],
    patch_of: list[int | None],
) -> tuple[str, dict[str, Any]]:
    """One statement: lock the run if ``owner`` still executes it, then (only if so) insert
    ``rows``, apply ``updates`` and append ``produced``, each event's data taking the
    ``patch`` columns of its update (``step_usage``: the batch's step updates, for the run's
    usage). It returns ``(-1, event id, NULL)`` per event and
    ``(k, 0, patch columns)`` per update ``k``; without events, ``(-1, owned, NULL)``."""
    params: dict[str, Any] = {"run": run_id, "owner": owner, "executing": list(status.EXECUTING)}
    parts = [
        "owner AS (SELECT 1 AS ok FROM runs WHERE id = %(run)s AND worker_id = %(owner)s"
        " AND status = ANY(%(executing)s) FOR UPDATE)"
    ]
    for i, row in enumerate(rows):
        table = row[0]
        names, exprs = insert_values(params, f"r{i}_", row)
        parts.append(f'r{i} AS (INSERT INTO "{table.name}" ({names}) SELECT {exprs} FROM owner)')
    step_usage = [u for u in step_usage if u.values.get("usage") is not None]
    params["xids"] = [u.id for u in step_usage]
    params["xp"] = sum(int(u.values["usage"].get("prompt_tokens", 0)) for u in step_usage)
    params["xc"] = sum(int(u.values["usage"].get("completion_tokens", 0)) for u in step_usage)
    selects = []
    for k, u in enumerate(updates):
        sets = [
            f'"{c}" = ' + bind(params, f"u{k}_{j}", u.table, c, v)
            for j, (c, v) in enumerate(u.values.items())
            if not (u.run_usage and c == "usage")
        ]
        if u.run_usage:
            sets.append(f'"usage" = ({status.RUN_USAGE})')
        params[f"u{k}_id"] = u.id
        returning = ", ".join(f'"{c}"' for c in u.patch) or "id"
        parts.append(
            f'u{k} AS (UPDATE "{u.table.name}" SET {", ".join(sets)} WHERE id = %(u{k}_id)s'
            f" AND EXISTS (SELECT 1 FROM owner) RETURNING {returning})"
        )
        patch = f"to_jsonb(u{k})" if u.patch else "'{}'::jsonb"
        selects.append(f"SELECT {k}, 0::bigint, {patch} FROM u{k}")
    if not produced:
        return (
            f"WITH {', '.join(parts)} SELECT -1, count(*), NULL::jsonb FROM owner",
            params,
        )
    # One JSON array of [event, data, patch] (one json.dumps, not an array of values).
    params["events"] = Jsonb(
        [
            [name, data, -1 if p is None else p]
            for (name, data), p in zip(produced, patch_of, strict=True)
        ]
    )
    params["stamp"] = time.time()
    data = "e.item -> 1"
    if updates:
        whens = " ".join(
            f"WHEN {k} THEN e.item -> 1 || coalesce((SELECT to_jsonb(u{k}) FROM u{k}), '{{}}')"
            for k, u in enumerate(updates)
            if u.patch
        )
        if whens:
            data = f"CASE (e.item ->> 2)::int {whens} ELSE e.item -> 1 END"
    parts.append(
        "ev AS (INSERT INTO run_events (run_id, event, data, created_at)"
        f" SELECT %(run)s, e.item ->> 0, {data}, %(stamp)s FROM owner,"
        " jsonb_array_elements(%(events)s::jsonb) WITH ORDINALITY AS e(item, n)"
        " ORDER BY e.n RETURNING id)"
    )
    union = " UNION ALL ".join(["SELECT -1, id, NULL::jsonb FROM ev", *selects])
    return f"WITH {', '.join(parts)} {union}", params
