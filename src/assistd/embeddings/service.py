"""Embeddings from the server's local models (the ones vector stores use, loaded once for
both) or from a model backend, reached through the chat routing (same keys and routes)."""

from __future__ import annotations

import base64
import importlib.util
from collections.abc import Callable

import numpy as np
import openai

from assistd.chat.service import backend_error, model_not_found, route
from assistd.core.config import EmbeddingSettings
from assistd.core.errors import AssistdError, BackendUnavailableError, InvalidRequestError
from assistd.embeddings.schemas import CreateEmbedding, Embedding, EmbeddingList, EmbeddingUsage
from assistd.llm import tokens
from assistd.llm.chat import BackendRouter
from assistd.llm.embeddings import (
    Embedder,
    EmbeddingError,
    local_embedder_available,
    make_embedder,
)

MINILM = "local:all-MiniLM-L6-v2"
WORDLLAMA = "local:wordllama"
_LOCAL = {
    "local": MINILM,
    MINILM: MINILM,
    "all-MiniLM-L6-v2": MINILM,
    WORDLLAMA: WORDLLAMA,
    "wordllama": WORDLLAMA,
}


def _installed(spec: str) -> bool:
    if spec == WORDLLAMA:
        return importlib.util.find_spec("wordllama") is not None
    return local_embedder_available()


def served_models(settings: EmbeddingSettings) -> list[str]:
    """The embedding model names ``/models`` lists: the local models installed here and the
    one new vector stores use."""
    names = [spec for spec in (WORDLLAMA, MINILM) if _installed(spec)]
    configured = _LOCAL.get(settings.model, settings.model)
    if configured not in names:
        names.append(configured)
    return names


class EmbeddingModels:
    """A request's model name to an embedder: ``local…`` names and ``openai:``/``azure:``
    specs as vector stores name them, any other name through the chat routing."""

    def __init__(self, local: Callable[[str], Embedder], backends: BackendRouter) -> None:
        self._local = local
        self._backends = backends
        self._made: dict[tuple[str, int | None], Embedder] = {}

    def resolve(self, model: str, dimensions: int | None) -> Embedder:
        """The embedder for ``model`` (404 when nothing serves it)."""
        spec = _LOCAL.get(model)
        if spec is not None:
            if not _installed(spec):
                raise model_not_found(model)
            embedder = self._local(spec)
            if dimensions is not None and dimensions != embedder.dimension:
                raise InvalidRequestError(
                    f"The model '{model}' makes {embedder.dimension}-dimensional embeddings "
                    f"only; 'dimensions' cannot be {dimensions}.",
                    param="dimensions",
                    code="invalid_value",
                )
            return embedder
        key = (model, dimensions)
        if key not in self._made:
            if model.startswith(("openai:", "azure:")):
                try:
                    if dimensions is None:
                        return self._local(model)
                    self._made[key] = make_embedder(model, dimensions=dimensions)
                except (ValueError, openai.OpenAIError):
                    # An empty name after the prefix, or no credentials for that provider
                    # here: nothing serves the model.
                    raise model_not_found(model) from None
            else:
                client, name = route(self._backends, model)
                self._made[key] = make_embedder(
                    f"openai:{name}", client=client, dimensions=dimensions
                )
        return self._made[key]


def _texts(value: str | list[str] | list[int] | list[list[int]]) -> tuple[list[str], list[int]]:
    """The inputs as texts, and the token count of those given as cl100k_base tokens (``-1``
    for those given as text)."""
    if isinstance(value, str):
        return [value], [-1]
    strings = [v for v in value if isinstance(v, str)]
    if len(strings) == len(value):
        return strings, [-1] * len(strings)
    numbers = [v for v in value if isinstance(v, int)]
    arrays = [numbers] if len(numbers) == len(value) else [v for v in value if isinstance(v, list)]
    enc = tokens.encoding("cl100k_base")
    texts: list[str] = []
    for i, ids in enumerate(arrays):
        bad = next((t for t in ids if t > enc.max_token_value), None)
        try:
            if bad is not None:
                raise KeyError(bad)
            texts.append(enc.decode(ids))
        except KeyError:
            raise InvalidRequestError(
                f"Invalid 'input': {bad if bad is not None else 'a token'} is no cl100k_base "
                "token.",
                param=f"input[{i}]" if len(arrays) > 1 else "input",
                code="invalid_value",
            ) from None
    return texts, [len(ids) for ids in arrays]


async def create(models: EmbeddingModels, body: CreateEmbedding) -> EmbeddingList:
    """Embed ``body.input``; vectors as floats or base64 (little-endian float32)."""
    embedder = models.resolve(body.model, body.dimensions)
    texts, counted = _texts(body.input)
    try:
        vectors = await embedder.embed(texts)
    except EmbeddingError as exc:
        cause = exc.__cause__
        error: AssistdError = (
            backend_error(cause, body.model)
            if isinstance(cause, openai.APIError)
            else BackendUnavailableError(str(exc), code="backend_error")
        )
        raise error from exc
    prompt_tokens = sum(
        n if n >= 0 else embedder.count_tokens(text) for text, n in zip(texts, counted, strict=True)
    )
    data = [
        Embedding(
            index=i,
            embedding=(
                base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode()
                if body.encoding_format == "base64"
                else vector
            ),
        )
        for i, vector in enumerate(vectors)
    ]
    return EmbeddingList(
        data=data,
        model=body.model,
        usage=EmbeddingUsage(prompt_tokens=prompt_tokens, total_tokens=prompt_tokens),
    )
