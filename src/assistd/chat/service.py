"""Pass a chat completion request to the backend that serves its model, through that
backend's SDK client (``llm.chat.BackendRouter``), and its failures back as API errors.
Its tokens are counted in ``assistd_tokens_total`` as a run's are."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
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
from assistd.llm import tokens
from assistd.llm.chat import BackendRouter, NoBackendError, Tokenizer, connect_failure

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


@dataclass(frozen=True)
class _Meter:
    """Where a completion's tokens are counted: the model as the caller named it, the
    caller's project (``None`` unless counted per project), and what counts them when the
    backend reports no usage."""

    model: str
    project: str | None
    tokenizer: Tokenizer
    messages: list[dict[str, Any]]

    async def count(self, usage: tuple[int, int] | None, written: str) -> None:
        """Count the backend's ``usage``, or else the prompt and ``written`` as the run code
        does: the messages sent and the text and tool calls received, by the tokenizer."""
        if usage is None:
            prompt = await _prompt_tokens(self.messages, self.tokenizer)
            usage = prompt, await asyncio.to_thread(tokens.count_text, written, self.tokenizer)
        metrics.count_tokens(self.model, self.project, *usage)


def _meter(router: BackendRouter, body: dict[str, Any], project: str | None) -> _Meter:
    model = str(body["model"])
    return _Meter(model, project, router.tokenizer(model), body["messages"])


async def _prompt_tokens(messages: list[dict[str, Any]], tokenizer: Tokenizer) -> int:
    try:
        return sum(await tokens.count_messages(messages, tokenizer))
    except (AttributeError, TypeError):
        # The backend took message shapes count_message does not read: count their JSON.
        text = json.dumps(messages)
        return await asyncio.to_thread(tokens.count_text, text, tokenizer)


def _usage(value: object) -> tuple[int, int] | None:
    """``(prompt_tokens, completion_tokens)`` of a completion's or chunk's ``usage``."""
    usage = value.get("usage") if isinstance(value, dict) else None
    if not isinstance(usage, dict):
        return None
    prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
    if type(prompt) is not int or type(completion) is not int or min(prompt, completion) < 0:
        return None
    return prompt, completion


def _written(value: object) -> str:
    """Text, refusals, tool names and arguments of a completion's or chunk's choices."""
    choices = value.get("choices") if isinstance(value, dict) else None
    out: list[str] = []
    for choice in choices if isinstance(choices, list) else []:
        if not isinstance(choice, dict):
            continue
        message = choice.get("message") or choice.get("delta")
        if not isinstance(message, dict):
            continue
        out += [v for k in ("content", "refusal") if isinstance(v := message.get(k), str)]
        calls = message.get("tool_calls")
        for call in calls if isinstance(calls, list) else []:
            function = call.get("function") if isinstance(call, dict) else None
            if isinstance(function, dict):
                out += [v for k in ("name", "arguments") if isinstance(v := function.get(k), str)]
    return "".join(out)


def _asking_usage(payload: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """The streamed request asking the backend for usage, and whether the client did not
    (then the usage is taken out of the stream it gets)."""
    options = payload.get("stream_options")
    if options is None:
        options = {}
    if not isinstance(options, dict) or options.get("include_usage") is True:
        return payload, False  # asked already, or malformed: the backend's to judge
    return {**payload, "stream_options": {**options, "include_usage": True}}, True


async def complete(router: BackendRouter, body: dict[str, Any], project: str | None) -> Any:
    """The backend's whole (not streamed) completion, as it sent it; its tokens counted,
    by ``project`` too when given."""
    model = str(body["model"])
    client, name = route(router, model)
    start = time.perf_counter()
    try:
        result = await client.post("/chat/completions", cast_to=object, body=_payload(body, name))
    except openai.APIError as exc:
        metrics.BACKEND_ERRORS.labels(model, "passthrough").inc()
        raise backend_error(exc, model) from exc
    metrics.BACKEND_SECONDS.labels(model).observe(time.perf_counter() - start)
    await _meter(router, body, project).count(_usage(result), _written(result))
    return result


async def stream(
    router: BackendRouter, body: dict[str, Any], project: str | None
) -> AsyncIterator[bytes]:
    """Open the backend's stream (its refusal is raised here, before any byte is sent) and
    return its chunks framed as server-sent events; its tokens are counted at its end."""
    model = str(body["model"])
    client, name = route(router, model)
    # Ask for usage even if the client did not (kept from it then): exact, as runs ask too.
    payload, strip = _asking_usage(_payload(body, name))
    start = time.perf_counter()
    try:
        chunks = await client.post(
            "/chat/completions",
            cast_to=object,
            body=payload,
            stream=True,
            stream_cls=openai.AsyncStream[object],
        )
    except openai.APIError as exc:
        metrics.BACKEND_ERRORS.labels(model, "passthrough").inc()
        raise backend_error(exc, model) from exc
    return _events(chunks, _meter(router, body, project), start, strip)


def _event(value: object) -> bytes:
    return b"data: " + json.dumps(value, separators=(",", ":")).encode() + b"\n\n"


async def _events(
    chunks: openai.AsyncStream[object], meter: _Meter, start: float, strip: bool
) -> AsyncIterator[bytes]:
    """Each chunk as one ``data:`` event, then ``[DONE]``; a failure mid-stream ends it with
    an ``error`` event (as OpenAI does), which the SDK raises to its caller. The tokens are
    counted before that last event; a client that leaves first stops the count, as a
    cancelled run's unfinished turn goes uncounted."""
    model = meter.model
    first = True
    usage: tuple[int, int] | None = None
    written: list[str] = []
    async with chunks:
        try:
            async for chunk in chunks:
                if first:
                    first = False
                    metrics.BACKEND_FIRST_TOKEN.labels(model).observe(time.perf_counter() - start)
                usage = _usage(chunk) or usage
                written.append(_written(chunk))
                if strip and isinstance(chunk, dict) and "usage" in chunk:
                    if chunk.get("choices") == [] and _usage(chunk) is not None:
                        continue  # the usage chunk the client did not ask for
                    chunk = {k: v for k, v in chunk.items() if k != "usage"}
                yield _event(chunk)
        except openai.APIError as exc:
            metrics.BACKEND_ERRORS.labels(model, "passthrough").inc()
            await meter.count(usage, "".join(written))
            yield _event(backend_error(exc, model).body())
            return
    metrics.BACKEND_SECONDS.labels(model).observe(time.perf_counter() - start)
    await meter.count(usage, "".join(written))
    yield DONE
