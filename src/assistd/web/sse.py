"""Server-sent events framing for run streams."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from starlette.responses import StreamingResponse

DONE = b"event: done\ndata: [DONE]\n\n"


def frame(event: str, data: dict[str, Any]) -> bytes:
    """One ``event:``/``data:`` frame (JSON on one line)."""
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


async def _frames(
    events: AsyncIterator[tuple[str, dict[str, Any]] | None], done: bool
) -> AsyncIterator[bytes]:
    async for item in events:
        if item is None:
            yield b": keep-alive\n\n"
        else:
            yield frame(*item)
    if done:
        yield DONE


def sse_response(
    events: AsyncIterator[tuple[str, dict[str, Any]] | None], *, done: bool = True
) -> StreamingResponse:
    """A ``text/event-stream`` response, ending with ``done`` unless told not to (a
    Responses stream ends with its last event)."""
    return StreamingResponse(
        _frames(events, done),
        media_type="text/event-stream",
        headers={"cache-control": "no-cache", "x-accel-buffering": "no"},
    )
