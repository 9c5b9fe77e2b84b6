"""The route class of every API router: large JSON bodies are parsed off the event loop."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute

PARSE_INLINE_BYTES = 256 * 1024
"""Bodies up to this size are parsed where FastAPI parses them (a thread hop costs more)."""


class ApiRoute(APIRoute):
    """Parses a JSON body larger than :data:`PARSE_INLINE_BYTES` in a worker thread, so a
    20 MB body does not hold up every other request while it is decoded."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def parse_then_handle(request: Request) -> Response:
            if _is_large_json(request):
                body = await request.body()
                # FastAPI reads the parsed body back from Starlette's cache; a body that does
                # not parse is left to FastAPI, which reports it as usual.
                with contextlib.suppress(ValueError):
                    request._json = await asyncio.to_thread(json.loads, body)
            return await handler(request)

        return parse_then_handle


def _is_large_json(request: Request) -> bool:
    length = request.headers.get("content-length", "")
    content_type = request.headers.get("content-type", "")
    return (
        length.isdigit()
        and int(length) > PARSE_INLINE_BYTES
        and content_type.split(";")[0].strip().endswith("json")
    )
