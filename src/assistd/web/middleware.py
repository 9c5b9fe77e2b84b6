"""Pure ASGI middleware, one layer for every request: request ids, request metrics and the
access log, the API key and the body size checked before a byte of the body is read, and
empty JSON bodies read as ``{}``.

One layer rather than several: every ``send`` and ``receive`` of a request passes through
each layer's wrapper, and the wrappers did little each."""

from __future__ import annotations

import logging
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from assistd.core import logs
from assistd.core.errors import AssistdError, PayloadTooLargeError
from assistd.web.metrics import record_request

access_log = logging.getLogger("assistd.access")

Authenticate = Callable[[Request], Awaitable[object]]
"""Checks a request's key from its headers alone; raises an ``AssistdError`` (401) if wrong."""


class RequestMiddleware:
    """Per HTTP request:

    * answer with ``x-request-id`` (the SDK exposes it as ``_request_id``);
    * count it and its latency by method, route template and status (``/metrics``), and
      log one line for it (method, path, status, milliseconds, request id);
    * on the API's paths, check the key before the body is read: FastAPI reads a JSON body
      before it runs any dependency, so a keyless caller could make the server buffer it;
    * refuse a body over its limit with 413: by its ``Content-Length`` before reading it, or
      as a chunked one streams past the limit (uploads have a limit of their own);
    * read an empty JSON body as ``{}``: the SDK sends ``Content-Type: application/json``
      with no body on some POSTs (cancel) and on DELETE, and such a request must neither
      fail to parse nor hide which fields are missing.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        authenticate: Authenticate | None = None,
        api_prefixes: tuple[str, ...] = ("/v1/",),
        max_body_bytes: int = 64 * 1024 * 1024,
        uploads: Sequence[tuple[re.Pattern[str], int]] = (),
    ) -> None:
        self.app = app
        self.authenticate = authenticate
        self.api_prefixes = api_prefixes
        self.max_body_bytes = max_body_bytes
        self.uploads = uploads

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        request_id = "req_" + secrets.token_hex(16)
        scope.setdefault("state", {})["request_id"] = request_id
        logs.request_id.set(request_id)
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                # Replace, never duplicate, an id an error handler already copied in.
                headers = [
                    (k, v) for k, v in message.get("headers", []) if k.lower() != b"x-request-id"
                ]
                headers.append((b"x-request-id", request_id.encode()))
                message["headers"] = headers
            await send(message)

        try:
            try:
                admitted = await self._admit(scope, receive)
            except AssistdError as exc:
                # Outside the app, so its exception handlers never see this: render it here.
                response = JSONResponse(exc.body(), exc.status_code, headers=exc.headers)
                await response(scope, receive, send_with_id)
                return
            if admitted is None:
                return  # the client left while its chunked body was being read
            if _json_body_expected(scope):
                admitted = _empty_body_as_object(admitted)
            await self.app(scope, admitted, send_with_id)
        finally:
            seconds = time.perf_counter() - start
            record_request(scope, status, seconds)
            if access_log.isEnabledFor(logging.INFO):
                _log_access(scope, status, seconds)

    async def _admit(self, scope: Scope, receive: Receive) -> Receive | None:
        """Check the key and the body's size; the ``receive`` the app is to read through."""
        path: str = scope["path"]
        if self.authenticate is not None and path.startswith(self.api_prefixes):
            await self.authenticate(Request(scope))
        upload_limit = None
        if scope["method"] == "POST":
            upload_limit = next((n for route, n in self.uploads if route.fullmatch(path)), None)
        limit = self.max_body_bytes if upload_limit is None else upload_limit
        length, chunked = _framing(scope)
        if length is not None:
            if length > limit:
                raise _too_large(limit)
            return receive
        if not chunked:
            return receive
        if upload_limit is not None:
            # A file streams on to disk: count it as it goes rather than hold it here.
            return _counted(receive, limit)
        return await _read_capped(receive, limit)


def _log_access(scope: Scope, status: int, seconds: float) -> None:
    method, path, ms = scope["method"], scope["path"], round(seconds * 1000, 1)
    fields = {"method": method, "path": path, "status": status, "duration_ms": ms}
    access_log.info("%s %s %d %.1f ms", method, path, status, ms, extra={"fields": fields})


def _too_large(limit: int) -> PayloadTooLargeError:
    return PayloadTooLargeError(
        f"The request body is too large. The maximum body size is {limit} bytes.",
        code="request_too_large",
    )


def _framing(scope: Scope) -> tuple[int | None, bool]:
    """The body's ``Content-Length`` (``None`` when absent or unreadable), and whether it is
    chunked."""
    length: int | None = None
    chunked = False
    for key, value in scope.get("headers", ()):
        if key == b"content-length":
            try:
                length = int(value)
            except ValueError:
                length = None
        elif key == b"transfer-encoding":
            chunked = b"chunked" in value.lower()
    return length, chunked


def _counted(receive: Receive, limit: int) -> Receive:
    size = 0

    async def receive_counted() -> Message:
        nonlocal size
        message = await receive()
        if message["type"] == "http.request":
            size += len(message.get("body", b""))
            if size > limit:
                raise _too_large(limit)
        return message

    return receive_counted


async def _read_capped(receive: Receive, limit: int) -> Receive | None:
    """Read a chunked body up to ``limit`` (the app would read all of it anyway) and hand it
    on whole; ``None`` if the client disconnects first."""
    chunks: list[bytes] = []
    size = 0
    more = True
    while more:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
        more = bool(message.get("more_body"))
    body: Message | None = {"type": "http.request", "body": b"".join(chunks), "more_body": False}

    async def receive_read() -> Message:
        nonlocal body
        if body is not None:
            message, body = body, None
            return message
        return await receive()

    return receive_read


def _json_body_expected(scope: Scope) -> bool:
    if scope["method"] not in ("POST", "DELETE"):
        return False
    for key, value in scope.get("headers", ()):
        if key == b"content-type":
            return bool(value.startswith(b"application/json"))
    return False


def _empty_body_as_object(receive: Receive) -> Receive:
    first = True

    async def receive_with_default() -> Message:
        nonlocal first
        message = await receive()
        if first and message["type"] == "http.request":
            first = False
            if not message.get("body") and not message.get("more_body"):
                message = {"type": "http.request", "body": b"{}", "more_body": False}
        return message

    return receive_with_default
