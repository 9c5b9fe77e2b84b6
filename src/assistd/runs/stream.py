"""Tail a run's event log: what a streaming response sends, from any API process."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import AsyncIterator
from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from assistd.core.channels import EVENTS_CHANNEL
from assistd.core.ids import process_tag
from assistd.core.notify import Listener
from assistd.models import Run, RunEvent, RunWatcher
from assistd.models.run import TERMINAL_STATUSES
from assistd.runs.events import END_EVENTS
from assistd.runs.local import HUB, LocalEvents

_PAGE = 1000

KEEPALIVE = None
"""Yielded when nothing happened for a while (the SSE layer sends a comment)."""

RACE_SECONDS = 0.5
RACE_POLL_SECONDS = 0.05
"""Just after a tail registers as a watcher, a write whose trigger ran before the registration
committed sends no NOTIFY: the tail reads this often for that long instead of waiting for one."""

_PROCESS = process_tag()
_numbers = itertools.count(1)
_unwatching: set[asyncio.Task[None]] = set()


async def tail(
    maker: async_sessionmaker[AsyncSession],
    listener: Listener,
    run_id: str,
    after_id: int,
    *,
    poll_seconds: float = 1.0,
    keepalive_seconds: float = 15.0,
    hub: LocalEvents = HUB,
) -> AsyncIterator[tuple[str, dict[str, Any]] | None]:
    """Yield ``(event, data)`` after ``after_id`` until the run rests (terminal or waiting for
    tool outputs); ``None`` now and then while nothing happens.

    Events come from the database (woken by NOTIFY), or, while this process's own worker
    writes the run, straight from its sink through ``hub`` (no read-back). A tail that reads
    the database registers as the run's watcher first: only watched runs send NOTIFYs."""
    wake = listener.subscribe(EVENTS_CHANNEL, run_id)
    # Subscribed before the first read: whatever commits after it arrives here too.
    local = hub.subscribe(run_id, wake)
    idle = 0.0
    must_read = True
    read_under: int | None = None  # the local writer's token at the last database read
    watcher: str | None = None
    racing_until = 0.0
    try:
        while True:
            wake.clear()
            writer = hub.writer(run_id)
            if writer is None and watcher is None:
                watcher = await _watch(maker, run_id)
                racing_until = time.monotonic() + RACE_SECONDS
            if local and not must_read and writer is not None and writer == read_under:
                rows = [r for r in local if r[0] > after_id]
                local.clear()
            elif must_read or writer is None or writer != read_under:
                read_under = writer
                # (Rows handed over meanwhile are read here too; the next round skips them.)
                rows = await _read(maker, run_id, after_id)
                if not rows and not local:
                    # Nothing new: has the run ended? Its final events commit together with
                    # its final status, so once the status says so, one more read sees them.
                    async with maker() as session:
                        status = await session.scalar(select(Run.status).where(Run.id == run_id))
                    if status is None:
                        return  # deleted
                    if status in TERMINAL_STATUSES:
                        rows = await _read(maker, run_id, after_id)
                        if not rows:
                            return  # ended, with its events already pruned
            else:
                rows = []  # a NOTIFY for rows the local writer already handed over
            must_read = False
            for event_id, name, data in rows:
                after_id = event_id
                yield name, data
                if name in END_EVENTS:
                    return
            if len(rows) >= _PAGE:
                continue  # more are waiting
            if rows:
                idle = 0.0
            # Anything committed since the read above has set ``wake`` (it was cleared
            # first), so waiting here never misses an event; the timeout is the fallback.
            timeout = poll_seconds
            if time.monotonic() < racing_until:
                timeout = min(poll_seconds, RACE_POLL_SECONDS)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), timeout)
            if not wake.is_set():
                must_read = True  # quiet for a while: check the database itself
                idle += timeout
                if idle >= keepalive_seconds:
                    idle = 0.0
                    yield KEEPALIVE
    finally:
        hub.unsubscribe(run_id, local)
        listener.unsubscribe(EVENTS_CHANNEL, run_id, wake)
        if watcher is not None:
            # In the background: the tail may be closing because its task is cancelled.
            task = asyncio.create_task(_unwatch(maker, run_id, watcher))
            _unwatching.add(task)
            task.add_done_callback(_unwatching.discard)


async def _watch(maker: async_sessionmaker[AsyncSession], run_id: str) -> str:
    """Register a watcher of ``run_id`` (committed before the caller reads its events)."""
    watcher = f"{_PROCESS}:{next(_numbers)}"
    async with maker() as session, session.begin():
        await session.execute(
            insert(RunWatcher).values(run_id=run_id, watcher=watcher, since=time.time())
        )
    return watcher


async def _unwatch(maker: async_sessionmaker[AsyncSession], run_id: str, watcher: str) -> None:
    with contextlib.suppress(Exception):  # a leftover is pruned by the workers' maintenance
        async with maker() as session, session.begin():
            await session.execute(
                delete(RunWatcher).where(RunWatcher.run_id == run_id, RunWatcher.watcher == watcher)
            )


async def _read(maker: async_sessionmaker[AsyncSession], run_id: str, after_id: int) -> list[Any]:
    async with maker() as session:
        result = await session.execute(
            select(RunEvent.id, RunEvent.event, RunEvent.data)
            .where(RunEvent.run_id == run_id, RunEvent.id > after_id)
            .order_by(RunEvent.id)
            .limit(_PAGE)
        )
        return list(result.all())
