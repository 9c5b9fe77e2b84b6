"""An ordered, batching writer for everything one run writes to the database.

The run loop produces many small writes (a stream event per token, step and message
updates). Each goes through the sink, which applies them strictly in order; while one
transaction is in flight, later items queue up and the next transaction takes them all, so
a fast model costs a few commits per second instead of one per token, and the first token
is written at once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from assistd.models import Run
from assistd.runs import events
from assistd.runs.local import HUB

Event = tuple[str, dict[str, Any]]
Op = Callable[[AsyncSession], Awaitable[list[Event]]]


@dataclass
class _Item:
    events: list[Event]
    op: Op | None
    done: asyncio.Future[None] | None


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
            try:
                async with self.maker() as session, session.begin():
                    if self.owner is not None:
                        await self._check_owner(session)
                    produced: list[Event] = []
                    for item in batch:
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

    async def _check_owner(self, session: AsyncSession) -> None:
        row = (
            await session.execute(
                select(Run.worker_id, Run.status).where(Run.id == self.run_id).with_for_update()
            )
        ).first()
        if row is None or row[0] != self.owner or row[1] not in ("in_progress", "cancelling"):
            raise LostOwnership(f"run {self.run_id} is no longer owned by {self.owner}")


async def _noop(session: AsyncSession) -> list[Event]:
    return []
