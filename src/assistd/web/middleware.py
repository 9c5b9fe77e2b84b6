"""Pure ASGI middleware, one layer for every request: request ids, request metrics, and
empty JSON bodies read as ``{}``.

One layer rather than three: every ``send`` and ``receive`` of a request passes through each
layer's wrapper, and the three wrappers did little each."""

from __future__ import annotations

import secrets
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from assistd.core import logs
from assistd.web.metrics import record_request


class RequestMiddleware:
    """Per HTTP request:

    * answer with ``x-request-id`` (the SDK exposes it as ``_request_id``);
    * count it and its latency by method, route template and status (``/metrics``);
    * read an empty JSON body as ``{}``: the SDK sends ``Content-Type: application/json``
      with no body on some POSTs (cancel) and on DELETE, and such a request must neither
      fail to parse nor hide which fields are missing.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

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

        if _json_body_expected(scope):
            receive = _empty_body_as_object(receive)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            record_request(scope, status, time.perf_counter() - start)


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
