"""Starting a run this process creates on its own worker: the ``Starter`` protocol.

The worker implements it and the app injects it (``app.state.starter``), so the HTTP layer and
the run services start runs without importing the worker or the engine. A process without a
worker has no starter: its runs are queued and claimed by some worker.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from assistd.models import Assistant, Message, Run, Thread


class RunDiscarded(RuntimeError):
    """The transaction creating the run rolled back: the run never existed."""


class EarlyStart(Protocol):
    """A run started before the statement inserting it returned; tell it how that went."""

    def inserted(self, fresh: bool) -> None:
        """The run is in the database; ``fresh``: its context is still the thread's."""

    def dropped(self) -> None:
        """The run was not inserted: it writes nothing."""


class Starter(Protocol):
    """Starts runs, inserted already claimed for ``id``, before the queue would hand them out.

    Each way matches one way of creating a run: in a transaction (``adopt``), or without one,
    streamed (``start_early``: the model is called while the insert is on its way) or not
    (``start_inserted``, once the insert returned)."""

    id: str
    """The id runs started here are claimed for."""

    def can_start(self) -> bool:
        """Whether one more run may be started here now."""
        ...

    async def adopt(self, session: AsyncSession, run_id: str) -> asyncio.Future[None]:
        """Start a run ``session``'s open transaction created; it writes nothing until the
        returned gate resolves (commit) and nothing at all if the gate fails (rollback)."""
        ...

    def start_early(
        self, run: Run, thread: Thread, assistant: Assistant, messages: list[Message]
    ) -> EarlyStart:
        """Start ``run`` on the thread's ``messages`` before its insert returns."""
        ...

    def start_inserted(
        self, run: Run, thread: Thread, assistant: Assistant, messages: list[Message] | None
    ) -> None:
        """Start the inserted ``run`` on ``messages`` (None: its context is read anew)."""
