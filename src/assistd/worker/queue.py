"""Queue SQL on the ``runs`` table: claim, heartbeat, reap, expire, prune."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from assistd.core.clock import now
from assistd.models import Run, RunEvent, RunWatcher
from assistd.models.run import ACTIVE_STATUSES, TERMINAL_STATUSES
from assistd.runs import events, status
from assistd.runs.status import EXECUTING, recorded

WORKER_LOST = {
    "code": "server_error",
    "message": "The worker executing this run stopped unexpectedly; the run was ended.",
}


async def claim(session: AsyncSession, worker_id: str, limit: int) -> list[str]:
    """Take up to ``limit`` queued runs (oldest first), skipping rows others hold."""
    runs = list(
        await session.scalars(
            select(Run)
            .where(Run.status == "queued")
            .order_by(Run.seq)
            .with_for_update(skip_locked=True)
            .limit(limit)
        )
    )
    claimed: list[str] = []
    produced: list[tuple[str, list[tuple[str, dict[str, Any]]]]] = []
    stamp = time.time()
    for run in runs:
        if run.expires_at is not None and run.expires_at <= now():
            produced.append((run.id, await status.end(session, run, "expired")))
            continue
        event = recorded(
            run, "in_progress", worker_id=worker_id, heartbeat_at=stamp, attempts=run.attempts + 1
        )
        produced.append((run.id, event))
        claimed.append(run.id)
    # One insert and one notify statement for the whole batch.
    await events.append_many(session, produced)
    return claimed


async def heartbeat(
    session: AsyncSession, worker_id: str, run_ids: list[str]
) -> list[tuple[str, str]]:
    """Refresh the lease of the runs this worker owns and executes (``run_ids``); return
    (id, status) of each. A run it owns but executes not (a bug, or a request cancelled at
    the wrong moment) gets no heartbeat: the reaper ends it after the lease."""
    if not run_ids:
        return []
    result = await session.execute(
        update(Run)
        .where(
            Run.worker_id == worker_id,
            Run.id.in_(run_ids),
            Run.status.in_(EXECUTING),
        )
        .values(heartbeat_at=time.time())
        .returning(Run.id, Run.status)
    )
    return [(row[0], row[1]) for row in result.all()]


async def reap(session: AsyncSession, lease_seconds: float, limit: int = 100) -> list[str]:
    """Fail runs whose worker stopped heartbeating (killed, partitioned, frozen)."""
    stale = list(
        await session.scalars(
            select(Run)
            .where(
                Run.status.in_(EXECUTING),
                Run.heartbeat_at < time.time() - lease_seconds,
            )
            .with_for_update(skip_locked=True)
            .limit(limit)
        )
    )
    for run in stale:
        # A run that was being cancelled ends cancelled (``status.end``).
        produced = await status.end(session, run, "failed", WORKER_LOST)
        await events.append(session, run.id, produced)
    return [r.id for r in stale]


async def expire(session: AsyncSession, limit: int = 100) -> list[str]:
    """Expire queued runs and runs waiting for tool outputs past ``expires_at``."""
    due = list(
        await session.scalars(
            select(Run)
            .where(Run.status.in_(("queued", "requires_action")), Run.expires_at <= now())
            .with_for_update(skip_locked=True)
            .limit(limit)
        )
    )
    for run in due:
        await events.append(session, run.id, await status.end(session, run, "expired"))
    return [r.id for r in due]


async def prune_events(session: AsyncSession, retention_seconds: float) -> int:
    """Drop stream events of runs that ended long ago."""
    finished = select(Run.id).where(Run.status.in_(TERMINAL_STATUSES))
    result = await session.execute(
        delete(RunEvent).where(
            RunEvent.created_at < time.time() - retention_seconds,
            RunEvent.run_id.in_(finished),
        )
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def prune_watchers(session: AsyncSession, grace_seconds: float = 60.0) -> int:
    """Drop stream-tail registrations of runs that ended (or vanished) a while ago: a tail
    removes its own when it ends, one of a process that died stays until here."""
    active = select(Run.id).where(Run.id == RunWatcher.run_id, Run.status.in_(ACTIVE_STATUSES))
    result = await session.execute(
        delete(RunWatcher).where(RunWatcher.since < time.time() - grace_seconds, ~active.exists())
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
