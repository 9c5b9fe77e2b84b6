"""Chat-completions backends behind one protocol, and the router from model name to backend.

Backends are reached with the official ``openai`` SDK (``AsyncOpenAI`` or
``AsyncAzureOpenAI``); the SDK retries 429, 5xx, timeouts and connection errors with
exponential backoff, honouring ``retry-after``. Once retries are spent the error surfaces as
``BackendError`` with the code the run's ``last_error`` reports. A stream that ends without a
``finish_reason`` (cut, empty, only ``[DONE]``) is retried as often while it has produced
nothing, and is a ``server_error`` once it has: a cut-off answer never passes for a whole one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
import tomllib
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import openai

from assistd.core import metrics
from assistd.llm import tokens

ErrorCode = Literal[
    "server_error", "rate_limit_exceeded", "invalid_prompt", "context_length_exceeded"
]


class BackendError(Exception):
    """The backend failed for good; ``code`` is the run's ``last_error.code``."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code: ErrorCode = code
        self.message = message


@dataclass
class ToolCallDelta:
    """A piece of one tool call; ``id`` and ``name`` arrive once, arguments in pieces."""

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""


@dataclass
class Usage:
    """Token counts of one model call."""

    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        """Prompt plus completion."""
        return self.prompt_tokens + self.completion_tokens


@dataclass
class ChatChunk:
    """One streamed piece of a completion."""

    content: str | None = None
    refusal: str | None = None
    reasoning: str | None = None
    """Reasoning text (``reasoning_content`` or ``reasoning``, as vLLM, DeepSeek, Ollama and
    OpenRouter send it; OpenAI's chat completions send none)."""
    tool_calls: list[ToolCallDelta] = field(default_factory=list)
    finish_reason: str | None = None
    usage: Usage | None = None


@dataclass
class ChatRequest:
    """What the run loop asks of a model."""

    model: str
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] = field(default_factory=list)
    tool_choice: Any = None
    parallel_tool_calls: bool | None = None
    temperature: float | None = None
    top_p: float | None = None
    response_format: Any = None
    max_completion_tokens: int | None = None
    reasoning_effort: str | None = None


class ChatBackend(Protocol):
    """Streams chat completions."""

    def stream(self, request: ChatRequest) -> AsyncGenerator[ChatChunk, None]:
        """Yield chunks of the completion of ``request``: one of them carries its
        ``finish_reason``, or the stream raises ``BackendError``."""
        ...


@dataclass
class _Progress:
    """What one attempt at a completion has yielded so far."""

    finished: bool = False
    produced: bool = False
    """Text, a refusal or a tool call came (a client may have seen it: no retry)."""
    characters: int = 0


def _retry_delay(attempt: int) -> float:
    """Seconds before retrying a stream that ended without output (the SDK's backoff)."""
    return float(min(0.5 * 2**attempt, 8.0))


class OpenAIChatBackend:
    """OpenAI, Azure OpenAI or any OpenAI-compatible server, through the SDK."""

    def __init__(self, client: openai.AsyncOpenAI, deployment_for: dict[str, str]) -> None:
        self.client = client
        self.deployment_for = deployment_for

    async def stream(self, request: ChatRequest) -> AsyncGenerator[ChatChunk, None]:
        """Stream a completion, mapping SDK errors to ``BackendError``; one that ends without
        ``finish_reason`` is retried while it has produced nothing, else fails."""
        body = self._body(request)
        retries = self.client.max_retries
        for attempt in range(retries + 1):
            progress = _Progress()
            async with contextlib.aclosing(self._attempt(request.model, body, progress)) as chunks:
                async for chunk in chunks:
                    yield chunk
            if progress.finished:
                return
            if progress.produced:
                metrics.BACKEND_ERRORS.labels(request.model, "server_error").inc()
                raise BackendError(
                    "server_error",
                    "The model's response stream ended before it finished (no finish_reason) "
                    f"after {progress.characters} characters.",
                )
            if attempt < retries:
                await asyncio.sleep(_retry_delay(attempt))
        metrics.BACKEND_ERRORS.labels(request.model, "server_error").inc()
        raise BackendError(
            "server_error",
            "The model's response stream ended before it finished (no finish_reason) "
            f"without any output, {retries + 1} times.",
        )

    def _body(self, request: ChatRequest) -> dict[str, Any]:
        """The request body of ``request``."""
        kwargs: dict[str, Any] = {
            "model": self.deployment_for.get(request.model, request.model),
            "messages": request.messages,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if request.tools:
            kwargs["tools"] = request.tools
            if request.tool_choice is not None:
                kwargs["tool_choice"] = request.tool_choice
            if request.parallel_tool_calls is not None:
                kwargs["parallel_tool_calls"] = request.parallel_tool_calls
        for name in ("temperature", "top_p", "max_completion_tokens", "reasoning_effort"):
            value = getattr(request, name)
            if value is not None:
                kwargs[name] = value
        if request.response_format not in (None, "auto"):
            kwargs["response_format"] = request.response_format
        return kwargs

    async def _attempt(
        self, model: str, kwargs: dict[str, Any], progress: _Progress
    ) -> AsyncGenerator[ChatChunk, None]:
        """One call to the backend (the SDK retries failed requests), noting in ``progress``
        what it yields."""
        start = time.perf_counter()
        first = True
        try:
            # The SDK's client sends the request (auth, Azure deployment URLs, retries with
            # backoff) and decodes the server-sent events; chunks stay plain dicts: building
            # its typed chunk models cost ~80 us of CPU per token (measured), the request
            # body is already JSON-ready.
            stream = await self.client.post(
                "/chat/completions",
                cast_to=object,
                body=kwargs,
                stream=True,
                stream_cls=openai.AsyncStream[object],
            )
            # Closed on every exit, cancellation included: the connection goes back to the
            # pool (or is dropped) instead of lingering half-read.
            async with stream:
                async for chunk in stream:
                    if first:
                        first = False
                        metrics.BACKEND_FIRST_TOKEN.labels(model).observe(
                            time.perf_counter() - start
                        )
                    out = _convert(chunk)
                    if out.content or out.refusal or out.tool_calls:
                        progress.produced = True
                        progress.characters += len(out.content or "") + len(out.refusal or "")
                        progress.characters += sum(len(c.arguments) for c in out.tool_calls)
                    if out.finish_reason:
                        progress.finished = True
                    yield out
            metrics.BACKEND_SECONDS.labels(model).observe(time.perf_counter() - start)
        except openai.RateLimitError as exc:
            metrics.BACKEND_ERRORS.labels(model, "rate_limit_exceeded").inc()
            raise BackendError(
                "rate_limit_exceeded", f"The model backend is rate limiting requests: {exc}"
            ) from exc
        except openai.NotFoundError as exc:
            metrics.BACKEND_ERRORS.labels(model, "invalid_prompt").inc()
            raise BackendError(
                "invalid_prompt",
                f"The model '{model}' does not exist or is not served by its backend.",
            ) from exc
        except (openai.BadRequestError, openai.UnprocessableEntityError) as exc:
            metrics.BACKEND_ERRORS.labels(model, "invalid_prompt").inc()
            raise BackendError(
                "invalid_prompt", f"The model backend rejected the request: {exc}"
            ) from exc
        except openai.APIError as exc:
            metrics.BACKEND_ERRORS.labels(model, "server_error").inc()
            unreachable = connect_failure(exc)
            if unreachable is not None:
                raise BackendError(
                    "server_error", f"The model backend failed: could not connect ({unreachable})."
                ) from exc
            raise BackendError("server_error", f"The model backend failed: {exc}") from exc


def connect_failure(exc: BaseException) -> OSError | None:
    """The refused or failed connection under an SDK error, if that is what it was (the aiohttp
    transport reports a refused connection as a connect *timeout*)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and not isinstance(seen, TimeoutError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _convert(chunk: Any) -> ChatChunk:
    """A streamed ``chat.completion.chunk`` (decoded JSON) as a ``ChatChunk``."""
    out = ChatChunk()
    if not isinstance(chunk, dict):
        return out
    usage = chunk.get("usage")
    if usage:
        out.usage = Usage(
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
        )
    for choice in chunk.get("choices") or []:
        delta = choice.get("delta")
        if delta:
            out.content = delta.get("content") or None
            out.refusal = delta.get("refusal") or None
            out.reasoning = delta.get("reasoning_content") or delta.get("reasoning") or None
            for call in delta.get("tool_calls") or []:
                fn = call.get("function") or {}
                out.tool_calls.append(
                    ToolCallDelta(
                        index=int(call.get("index") or 0),
                        id=call.get("id") or None,
                        name=fn.get("name") or None,
                        arguments=fn.get("arguments") or "",
                    )
                )
        if choice.get("finish_reason"):
            out.finish_reason = choice["finish_reason"]
    return out


# ---- routing -------------------------------------------------------------------------------


@dataclass
class BackendSpec:
    """How to reach one backend."""

    name: str
    kind: Literal["openai", "azure"] = "openai"
    base_url: str | None = None
    api_key: str | None = None
    azure_endpoint: str | None = None
    api_version: str | None = None


Tokenizer = Literal["cl100k_base", "o200k_base"]
TOKENIZERS: tuple[Tokenizer, ...] = ("cl100k_base", "o200k_base")


@dataclass
class ModelRoute:
    """Which backend serves a model name, under which deployment/model name, and (when the
    models file says) how many tokens its context holds and how they are counted."""

    backend: str
    deployment: str | None = None
    context_window: int | None = None
    tokenizer: Tokenizer | None = None


class NoBackendError(BackendError):
    """No configured backend serves the model."""


class ModelsFileError(ValueError):
    """The models file holds a value the server cannot use; the text names where."""


def http_client() -> Any:
    """The HTTP client under the SDK's clients: the SDK's own aiohttp transport
    (``openai.DefaultAioHttpClient``) when this SDK has it, else ``None`` (its httpx default).

    With hundreds of streams open at once, httpx's connection pool scans every pooled
    connection (asking each socket whether it is readable) whenever a request starts or a
    response closes; a profile of 500 concurrent runs spent 13% of the server's CPU there.
    aiohttp's connector does not.
    """
    factory = getattr(openai, "DefaultAioHttpClient", None)
    if factory is None:
        return None
    try:
        return factory()
    except RuntimeError:  # an SDK installed without its aiohttp extra
        return None


class BackendRouter:
    """Maps an assistant's model name to a backend (and deployment)."""

    def __init__(
        self,
        specs: dict[str, BackendSpec],
        routes: dict[str, ModelRoute],
        default: str | None,
        *,
        max_retries: int = 3,
        timeout: float = 600.0,
    ) -> None:
        self.specs = specs
        self.routes = routes
        self.default = default
        self.max_retries = max_retries
        self.timeout = timeout
        self._backends: dict[str, OpenAIChatBackend] = {}

    def _client(self, spec: BackendSpec) -> openai.AsyncOpenAI:
        if spec.kind == "azure":
            return openai.AsyncAzureOpenAI(
                api_key=spec.api_key,
                azure_endpoint=spec.azure_endpoint or "",
                api_version=spec.api_version,
                max_retries=self.max_retries,
                timeout=self.timeout,
                http_client=http_client(),
            )
        return openai.AsyncOpenAI(
            api_key=spec.api_key or "unused",
            base_url=spec.base_url,
            max_retries=self.max_retries,
            timeout=self.timeout,
            http_client=http_client(),
        )

    def backend_for(self, model: str) -> ChatBackend:
        """The backend serving ``model``, or ``NoBackendError``."""
        route = self.routes.get(model)
        name = route.backend if route else self.default
        if name is None or name not in self.specs:
            raise NoBackendError(
                "invalid_prompt",
                f"No model backend serves the model '{model}'. Configure OPENAI_API_KEY / "
                "OPENAI_BASE_URL, Azure OpenAI (AZURE_OPENAI_ENDPOINT, AZURE_OPENAI_API_KEY, "
                "OPENAI_API_VERSION), or a route in the file ASSISTD_MODELS__MODELS_FILE names.",
            )
        return self._named(name)

    def context_window(self, model: str) -> int:
        """Tokens ``model``'s context holds: its route's ``context_window``, else the size
        of its well-known family."""
        route = self.routes.get(model)
        if route is not None and route.context_window is not None:
            return route.context_window
        return tokens.context_window(model)

    def tokenizer(self, model: str) -> Tokenizer:
        """The encoding that counts ``model``'s tokens: its route's ``tokenizer``, else
        o200k_base (the GPT-4o family's)."""
        route = self.routes.get(model)
        return route.tokenizer if route is not None and route.tokenizer else "o200k_base"

    def _named(self, name: str) -> OpenAIChatBackend:
        if name not in self._backends:
            deployments = {m: r.deployment for m, r in self.routes.items() if r.deployment}
            self._backends[name] = OpenAIChatBackend(self._client(self.specs[name]), deployments)
        return self._backends[name]

    def client_for(self, model: str) -> tuple[openai.AsyncOpenAI, str]:
        """The SDK client of the backend serving ``model`` and the model's name there, for a
        request passed on as it came (``/v1/chat/completions``); or ``NoBackendError``."""
        backend = self.backend_for(model)
        assert isinstance(backend, OpenAIChatBackend)  # the only kind ``_named`` builds
        return backend.client, backend.deployment_for.get(model, model)

    def default_client(self) -> openai.AsyncOpenAI | None:
        """The default backend's SDK client when it is OpenAI or a compatible server (its
        ``/models`` are names it serves; Azure's are not its deployments), else ``None``."""
        spec = self.specs.get(self.default or "")
        if spec is None or spec.kind != "openai":
            return None
        return self._named(spec.name).client


def router_from_environment(
    env: dict[str, str] | None = None,
    models_file: Path | None = None,
    *,
    max_retries: int = 3,
    timeout: float = 600.0,
) -> BackendRouter:
    """Build the router from the SDK's own variables and an optional TOML (or JSON) file.

    Default backend: Azure when ``AZURE_OPENAI_ENDPOINT`` is set (with
    ``AZURE_OPENAI_API_KEY`` and ``OPENAI_API_VERSION`` or, as Azure's own samples name it,
    ``AZURE_OPENAI_API_VERSION``), else OpenAI or a compatible server
    when ``OPENAI_API_KEY`` or ``OPENAI_BASE_URL`` is set. The file adds named backends and
    routes model names to them::

        [backends.local]
        kind = "openai"
        base_url = "http://127.0.0.1:11434/v1"
        api_key_env = "LOCAL_API_KEY"

        [models."gpt-4o"]
        backend = "azure"
        deployment = "gpt4o-prod"
    """
    env = dict(os.environ if env is None else env)
    specs: dict[str, BackendSpec] = {}
    routes: dict[str, ModelRoute] = {}
    default: str | None = None
    if env.get("AZURE_OPENAI_ENDPOINT"):
        specs["azure"] = BackendSpec(
            name="azure",
            kind="azure",
            azure_endpoint=env["AZURE_OPENAI_ENDPOINT"],
            api_key=env.get("AZURE_OPENAI_API_KEY"),
            api_version=env.get("OPENAI_API_VERSION") or env.get("AZURE_OPENAI_API_VERSION"),
        )
        default = "azure"
    if env.get("OPENAI_API_KEY") or env.get("OPENAI_BASE_URL"):
        specs["openai"] = BackendSpec(
            name="openai",
            base_url=env.get("OPENAI_BASE_URL") or None,
            api_key=env.get("OPENAI_API_KEY"),
        )
        default = "openai"
    if models_file is not None:
        text = models_file.read_text()
        doc: dict[str, Any] = (
            json.loads(text) if models_file.suffix == ".json" else tomllib.loads(text)
        )
        for name, raw in (doc.get("backends") or {}).items():
            key = raw.get("api_key") or (
                env.get(raw["api_key_env"]) if "api_key_env" in raw else None
            )
            specs[name] = BackendSpec(
                name=name,
                kind=raw.get("kind", "openai"),
                base_url=raw.get("base_url"),
                api_key=key,
                azure_endpoint=raw.get("azure_endpoint"),
                api_version=raw.get("api_version"),
            )
        for model, raw in (doc.get("models") or {}).items():
            routes[model] = _route(models_file, model, raw)
        default = doc.get("default_backend", default)
    return BackendRouter(specs, routes, default, max_retries=max_retries, timeout=timeout)


def _route(path: Path, model: str, raw: dict[str, Any]) -> ModelRoute:
    """The route of ``model`` in the models file, its optional fields checked so that a bad
    value stops the server at start-up, not a run later."""
    where = f"models file {path}: [models.{json.dumps(model)}]"
    if not isinstance(raw, dict):
        raise ModelsFileError(f"{where} must be a table, not {raw!r}")
    window = raw.get("context_window")
    if window is not None and (
        isinstance(window, bool) or not isinstance(window, int) or window < 1
    ):
        raise ModelsFileError(
            f"{where} context_window must be a positive integer (tokens), not {window!r}"
        )
    tokenizer = raw.get("tokenizer")
    if tokenizer is not None and tokenizer not in TOKENIZERS:
        raise ModelsFileError(
            f"{where} tokenizer must be one of {', '.join(TOKENIZERS)}, not {tokenizer!r}"
        )
    if "backend" not in raw:
        raise ModelsFileError(f"{where} has no backend")
    return ModelRoute(
        backend=raw["backend"],
        deployment=raw.get("deployment"),
        context_window=window,
        tokenizer=tokenizer,
    )
