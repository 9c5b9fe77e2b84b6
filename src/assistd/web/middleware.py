"""Pure ASGI middleware: request ids, and empty JSON bodies read as ``{}``."""

from __future__ import annotations

import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from assistd.core import logs


class RequestIdMiddleware:
    """Answer every request with ``x-request-id`` (the SDK exposes it as ``_request_id``)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = "req_" + uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        logs.request_id.set(request_id)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                # Replace, never duplicate, an id an error handler already copied in.
                headers = [
                    (k, v) for k, v in message.get("headers", []) if k.lower() != b"x-request-id"
                ]
                headers.append((b"x-request-id", request_id.encode()))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_id)


class EmptyJsonBodyMiddleware:
    """The SDK sends ``Content-Type: application/json`` with no body on some POSTs (cancel)
    and on DELETE; an empty JSON body is read as ``{}`` so it never fails to parse and
    missing fields are reported by name."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "DELETE"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers", []))
        if not headers.get(b"content-type", b"").startswith(b"application/json"):
            await self.app(scope, receive, send)
            return
        first = True

        async def receive_with_default() -> Message:
            nonlocal first
            message = await receive()
            if first and message["type"] == "http.request":
                first = False
                if not message.get("body") and not message.get("more_body"):
                    message = {"type": "http.request", "body": b"{}", "more_body": False}
            return message

        await self.app(scope, receive_with_default, send)
