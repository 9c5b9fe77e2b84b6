"""The run event log: append events and wake whoever tails them.

Appending notifies: a trigger on ``run_events`` (migration 0005) sends ``pg_notify`` on
``EVENTS_CHANNEL`` with the run id once per statement and run, delivered at commit.

Only a run's current owner appends (the API while it creates or resumes a run, one worker
while it executes it, the reaper when it takes a dead worker's run), so ids are in commit
order within a run and a reader that follows ``id`` never skips an event.
"""

from __future__ import annotations

import time
from typing import Any

from psycopg.types.json import Jsonb
from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from assistd.models import RunEvent

EVENTS_CHANNEL = "assistd_run_events"
"""NOTIFY channel: payload is the run id whose log grew."""
QUEUE_CHANNEL = "assistd_runs"
"""NOTIFY channel: payload ``queued:<run id>`` or ``cancel:<run id>`` for workers."""

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
    conn = await session.connection()
    raw = await conn.get_raw_connection()
    pg = raw.driver_connection
    assert pg is not None
    params = {
        "run": run_id,
        "stamp": time.time(),
        # One JSON array of [event, data] pairs: one json.dumps, not an array of values.
        "events": Jsonb([[name, data] for name, data in events]),
    }
    cursor = await pg.execute(_APPEND, params)
    return sorted(int(row[0]) for row in await cursor.fetchall())


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


async def notify(session: AsyncSession, channel: str, payload: str) -> None:
    """``pg_notify`` inside the current transaction (delivered at commit)."""
    await session.execute(select(func.pg_notify(channel, payload)))


async def last_event_id(session: AsyncSession, run_id: str) -> int:
    """The id of the run's newest event (0 when none)."""
    value = await session.scalar(select(func.max(RunEvent.id)).where(RunEvent.run_id == run_id))
    return int(value or 0)
