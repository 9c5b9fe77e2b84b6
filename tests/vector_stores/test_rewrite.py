"""rewrite_query falls back to the original query when the model fails or says nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from assistd.llm.chat import BackendError, ChatChunk, ChatRequest
from assistd.vector_stores.rewrite import rewrite


class Backend:
    def __init__(self, pieces: list[str], fail: bool = False) -> None:
        self.pieces, self.fail = pieces, fail
        self.requests: list[ChatRequest] = []

    async def stream(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        self.requests.append(request)
        if self.fail:
            raise BackendError("server_error", "down")
        for piece in self.pieces:
            yield ChatChunk(content=piece)


class Router:
    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    def backend_for(self, model: str) -> Any:
        return self.backend


async def test_rewrite_uses_the_model_answer() -> None:
    backend = Backend(['"pump fault', " E-4417", ' meaning"\n'])
    assert await rewrite(Router(backend), "m", "What does E-4417 mean?") == (  # type: ignore[arg-type]
        "pump fault E-4417 meaning"
    )
    [sent] = backend.requests
    assert sent.model == "m"
    assert sent.messages[-1] == {"role": "user", "content": "What does E-4417 mean?"}


async def test_rewrite_falls_back_on_failure_or_silence() -> None:
    query = "What does E-4417 mean?"
    assert await rewrite(Router(Backend([], fail=True)), "m", query) == query  # type: ignore[arg-type]
    assert await rewrite(Router(Backend(["  "])), "m", query) == query  # type: ignore[arg-type]
