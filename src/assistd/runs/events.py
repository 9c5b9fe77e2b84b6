"""The run event log: append events and wake whoever tails them.

Appending notifies: a trigger on ``run_events`` (migrations 0005, 0006) sends ``pg_notify`` on
``core.channels.EVENTS_CHANNEL`` with the run id once per statement and watched run (one a
stream tail of another process than the writer registered in ``run_watchers``), delivered at
commit.

Only a run's current owner appends (the API while it creates or resumes a run, one worker
while it executes it, the reaper when it takes a dead worker's run), so ids are in commit
order within a run and a reader that follows ``id`` never skips an event.
"""

from __future__ import annotations

import time
from typing import Any

from psycopg.types.json import Jsonb
from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from assistd.core.db import execute_alone, execute_in
from assistd.models import RunEvent
from assistd.models.rows import Row, insert_values

END_EVENTS = frozenset(
    {
        "thread.run.requires_action",
        "thread.run.completed",
        "thread.run.incomplete",
        "thread.run.failed",
        "thread.run.cancelled",
        "thread.run.expired",
    }
)
"""After these the stream of the current request ends."""


_APPEND = (
    "INSERT INTO run_events (run_id, event, data, created_at)"
    " SELECT %(run)s, e.item ->> 0, e.item -> 1, %(stamp)s"
    " FROM jsonb_array_elements(%(events)s::jsonb) WITH ORDINALITY AS e(item, n)"
    " ORDER BY e.n RETURNING id"
)
"""Append the ``[event, data]`` pairs of the JSON array ``events`` in order (their ids)."""


async def append(
    session: AsyncSession, run_id: str, events: list[tuple[str, dict[str, Any]]]
) -> list[int]:
    """Append events (in order; tailers are notified at commit); return their ids, in
    order.

    One statement straight through the session's own connection (in its transaction): the
    ORM's bulk insert costs several times the round trip on a path every run takes."""
    if not events:
        return []
    await session.flush()  # the run row must exist first
    params = {
        "run": run_id,
        "stamp": time.time(),
        # One JSON array of [event, data] pairs: one json.dumps, not an array of values.
        "events": Jsonb([[name, data] for name, data in events]),
    }
    return sorted(int(row[0]) for row in await execute_in(session, _APPEND, params))


_INSERT_WITH_EVENTS = (
    "WITH r AS (INSERT INTO {table} ({names}) VALUES ({exprs}) RETURNING {returning}),"
    " e AS (" + _APPEND + ")"
    " SELECT r.*{notify} FROM r"
)
_INSERT = "INSERT INTO {table} ({names}) VALUES ({exprs}) RETURNING {returning}{notify}"


async def insert_with_events(
    session: AsyncSession,
    row: Row,
    run_id: str,
    produced: list[tuple[str, dict[str, Any]]],
    *,
    returning: tuple[str, ...],
    notify: tuple[str, str] | None = None,
) -> tuple[Any, ...]:
    """Insert ``row`` and append the run's events announcing it, if any (and ``pg_notify``
    one ``(channel, payload)``) in one statement in the session's transaction; the row's
    ``returning`` columns. The ORM's flush plus a separate append cost three times as much
    on the path that creates every run."""
    await session.flush()  # rows the ORM still holds go first
    params: dict[str, Any] = {}
    names, exprs = insert_values(params, "c", row)
    tail = _run_insert_params(params, run_id, produced, notify)
    sql = (_INSERT_WITH_EVENTS if produced else _INSERT).format(
        table=f'"{row[0].name}"',
        names=names,
        exprs=exprs,
        returning=", ".join(f'"{c}"' for c in returning),
        notify=tail,
    )
    (found,) = await execute_in(session, sql, params)
    return tuple(found[: len(returning)])


def _run_insert_params(
    params: dict[str, Any],
    run_id: str,
    produced: list[tuple[str, dict[str, Any]]],
    notify: tuple[str, str] | None,
) -> str:
    """Add the parameters of a run insert's events (if any) and notification to
    ``params``; the select-list tail that sends the notification."""
    if produced:
        params["run"], params["stamp"] = run_id, time.time()
        # One JSON array of [event, data] pairs: one json.dumps, not an array of values.
        params["events"] = Jsonb([[name, data] for name, data in produced])
    if notify is None:
        return ""
    params["channel"], params["payload"] = notify
    return ", pg_notify(%(channel)s, %(payload)s)"


_INSERT_RUN_LOCKED = (
    "WITH t AS (UPDATE threads SET version = version + 1"
    " WHERE id = %(thread)s AND project_id = %(project)s RETURNING version),"
    " r AS (INSERT INTO runs ({names}) SELECT {exprs} FROM t RETURNING seq){events}"
    " SELECT r.seq, t.version{notify} FROM r, t"
)
_RUN_EVENTS = (
    ", e AS (INSERT INTO run_events (run_id, event, data, created_at)"
    " SELECT %(run)s, e.item ->> 0, e.item -> 1, %(stamp)s"
    " FROM r, jsonb_array_elements(%(events)s::jsonb) WITH ORDINALITY AS e(item, n)"
    " ORDER BY e.n RETURNING id)"
)


async def insert_run_locked(
    engine: AsyncEngine,
    row: Row,
    project_id: str,
    thread_id: str,
    produced: list[tuple[str, dict[str, Any]]],
    notify: tuple[str, str] | None,
) -> tuple[int, int] | None:
    """Insert a run on its own (committed at once, no transaction around it): lock the
    thread and count the change (``Thread.version``, as adding or deleting a message does,
    so they are ordered), insert the run, append its events and send its queue
    notification, in one statement; the run's ``seq`` and the thread's new ``version`` (its
    latest plus one, whatever this statement's snapshot), or None when the thread is gone.
    The one-active-run index raises ``UniqueViolation`` when the thread has an active
    run."""
    params: dict[str, Any] = {"thread": thread_id, "project": project_id}
    names, exprs = insert_values(params, "c", row)
    tail = _run_insert_params(params, row[1]["id"], produced, notify)
    sql = _INSERT_RUN_LOCKED.format(
        names=names, exprs=exprs, events=_RUN_EVENTS if produced else "", notify=tail
    )
    rows = await execute_alone(engine, sql, params)
    return (int(rows[0][0]), int(rows[0][1])) if rows else None


async def append_many(
    session: AsyncSession, items: list[tuple[str, list[tuple[str, dict[str, Any]]]]]
) -> None:
    """Append the events of several runs in one statement (one notification per run)."""
    rows = [
        {"run_id": run_id, "event": e, "data": d, "created_at": time.time()}
        for run_id, produced in items
        for e, d in produced
    ]
    if not rows:
        return
    await session.execute(insert(RunEvent), rows)


async def last_event_id(session: AsyncSession, run_id: str) -> int:
    """The id of the run's newest event (0 when none)."""
    value = await session.scalar(select(func.max(RunEvent.id)).where(RunEvent.run_id == run_id))
    return int(value or 0)
