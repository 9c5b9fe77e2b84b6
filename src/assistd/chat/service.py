"""Pass a chat completion request to the backend that serves its model, through that
backend's SDK client (``llm.chat.BackendRouter``), and its failures back as API errors."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

import openai

from assistd.core import metrics
from assistd.core.errors import (
    AssistdError,
    BackendUnavailableError,
    InvalidRequestError,
    NotFoundError,
    RateLimitError,
)
from assistd.llm.chat import BackendRouter, NoBackendError, connect_failure

DONE = b"data: [DONE]\n\n"


def _backend_message(exc: openai.APIStatusError) -> tuple[str, str | None, str | None]:
    """The message, param and code of the backend's error envelope (its text otherwise)."""
    body = exc.body
    error = body.get("error", body) if isinstance(body, dict) else None
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        param, code = error.get("param"), error.get("code")
        return (
            error["message"],
            param if isinstance(param, str) else None,
            code if isinstance(code, str) else None,
        )
    return exc.message, None, None


def backend_error(exc: openai.APIError, model: str) -> AssistdError:
    """A backend's failure as the API error its caller gets: the caller's mistakes keep
    their 4xx, the backend's own troubles (and its refusal of assistd's key) are a 502."""
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        message, param, code = _backend_message(exc)
        if status == 429:
            return RateLimitError(
                f"The model backend is rate limiting requests: {message}",
                code=code or "rate_limit_exceeded",
            )
        if status == 404:
            return model_not_found(model)
        if status in (401, 403):
            return BackendUnavailableError(
                f"The model backend refused the server's credentials ({status}): {message}",
                code="backend_error",
            )
        if 400 <= status < 500:
            return InvalidRequestError(message, param=param, code=code)
        return BackendUnavailableError(
            f"The model backend failed ({status}): {message}", code="backend_error"
        )
    if isinstance(exc, openai.APIConnectionError):
        refused = connect_failure(exc)
        if refused is not None or not isinstance(exc, openai.APITimeoutError):
            return BackendUnavailableError(
                f"The model backend could not be reached ({refused or exc.message}).",
                code="backend_unreachable",
            )
        return BackendUnavailableError("The model backend timed out.", code="backend_timeout")
    return BackendUnavailableError(f"The model backend failed: {exc.message}", code="backend_error")


def model_not_found(model: str) -> NotFoundError:
    """OpenAI's answer for a model it does not serve."""
    return NotFoundError(
        f"The model '{model}' does not exist or you do not have access to it.",
        param="model",
        code="model_not_found",
    )


def route(router: BackendRouter, model: str) -> tuple[openai.AsyncOpenAI, str]:
    """The client of the backend serving ``model`` and the model's name there, or 404."""
    try:
        return router.client_for(model)
    except NoBackendError:
        raise model_not_found(model) from None


def _payload(body: dict[str, Any], name: str) -> dict[str, Any]:
    return {**body, "model": name}


async def complete(router: BackendRouter, body: dict[str, Any]) -> Any:
    """The backend's whole (not streamed) completion, as it sent it."""
    model = str(body["model"])
    client, name = route(router, model)
    start = time.perf_counter()
    try:
        result = await client.post("/chat/completions", cast_to=object, body=_payload(body, name))
    except openai.APIError as exc:
        metrics.BACKEND_ERRORS.labels(model, "passthrough").inc()
        raise backend_error(exc, model) from exc
    metrics.BACKEND_SECONDS.labels(model).observe(time.perf_counter() - start)
    return result


async def stream(router: BackendRouter, body: dict[str, Any]) -> AsyncIterator[bytes]:
    """Open the backend's stream (its refusal is raised here, before any byte is sent) and
    return its chunks framed as server-sent events."""
    model = str(body["model"])
    client, name = route(router, model)
    start = time.perf_counter()
    try:
        chunks = await client.post(
            "/chat/completions",
            cast_to=object,
            body=_payload(body, name),
            stream=True,
            stream_cls=openai.AsyncStream[object],
        )
    except openai.APIError as exc:
        metrics.BACKEND_ERRORS.labels(model, "passthrough").inc()
        raise backend_error(exc, model) from exc
    return _events(chunks, model, start)


async def _events(
    chunks: openai.AsyncStream[object], model: str, start: float
) -> AsyncIterator[bytes]:
    """Each chunk as one ``data:`` event, then ``[DONE]``; a failure mid-stream ends it with
    an ``error`` event (as OpenAI does), which the SDK raises to its caller."""
    first = True
    async with chunks:
        try:
            async for chunk in chunks:
                if first:
                    first = False
                    metrics.BACKEND_FIRST_TOKEN.labels(model).observe(time.perf_counter() - start)
                yield b"data: " + json.dumps(chunk, separators=(",", ":")).encode() + b"\n\n"
        except openai.APIError as exc:
            metrics.BACKEND_ERRORS.labels(model, "passthrough").inc()
            error = backend_error(exc, model).body()
            yield b"data: " + json.dumps(error, separators=(",", ":")).encode() + b"\n\n"
            return
    metrics.BACKEND_SECONDS.labels(model).observe(time.perf_counter() - start)
    yield DONE
