"""A response's stream: its run's event log, numbered, with the run's own lifecycle events
told as the response's (``response.created`` … ``response.completed``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from assistd.core.notify import Listener
from assistd.models import StoredResponse
from assistd.responses.wire import response_object
from assistd.runs import stream

Event = tuple[str, dict[str, Any]]

_LIFECYCLE = {
    "thread.run.created": "response.created",
    "thread.run.queued": "response.queued",
    "thread.run.in_progress": "response.in_progress",
    "thread.run.completed": "response.completed",
    "thread.run.incomplete": "response.incomplete",
    "thread.run.failed": "response.failed",
    "thread.run.expired": "response.failed",
    "thread.run.cancelled": "response.failed",
}
"""A run's events → its response's (a cancelled response ends ``response.failed`` with
status ``cancelled``: the SDK knows no ``response.cancelled``)."""


class Translator:
    """Turns a run's stored events into its response's, in order (deterministic, so a
    resumed stream numbers its events as the first one did)."""

    def __init__(self, row: StoredResponse) -> None:
        self.row = row
        self.output: dict[int, dict[str, Any]] = {}

    def events(self, name: str, data: dict[str, Any]) -> list[Event]:
        if name.startswith("response."):
            if name == "response.output_item.done":
                self.output[int(data["output_index"])] = data["item"]
            return [(name, data)]
        renamed = _LIFECYCLE.get(name)
        if renamed is None or (renamed == "response.queued" and not self.row.background):
            return []
        run = data
        if name == "thread.run.created" and not self.row.background:
            run = {**data, "status": "in_progress"}
        output = [self.output[i] for i in sorted(self.output)]
        return [(renamed, {"response": response_object(self.row, run, output)})]


async def events(
    maker: async_sessionmaker[AsyncSession],
    listener: Listener,
    row: StoredResponse,
    starting_after: int = -1,
    *,
    poll_seconds: float = 1.0,
) -> AsyncIterator[Event | None]:
    """The response's events after sequence number ``starting_after``, until it ends;
    ``None`` now and then while nothing happens."""
    translator = Translator(row)
    number = -1
    async for got in stream.tail(maker, listener, row.run_id, 0, poll_seconds=poll_seconds):
        if got is None:
            yield None
            continue
        for name, data in translator.events(*got):
            number += 1
            if number > starting_after:
                yield name, {"type": name, **data, "sequence_number": number}
