"""Embedding wire types (the SDK's ``EmbeddingCreateParams`` and ``CreateEmbeddingResponse``)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from assistd.core.schemas import RequestModel, WireModel

MAX_INPUTS = 2048

Text = Annotated[str, Field(min_length=1)]
Tokens = Annotated[list[Annotated[int, Field(ge=0)]], Field(min_length=1)]
Texts = Annotated[list[Text], Field(min_length=1, max_length=MAX_INPUTS)]
TokenArrays = Annotated[list[Tokens], Field(min_length=1, max_length=MAX_INPUTS)]


class CreateEmbedding(RequestModel):
    """``POST /embeddings``: a string, strings, or (cl100k_base) token arrays."""

    input: Text | Texts | Tokens | TokenArrays
    model: Annotated[str, Field(min_length=1)]
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: Annotated[int, Field(ge=1)] | None = None
    user: str | None = None


class Embedding(WireModel):
    """``object: "embedding"``; ``embedding`` is a base64 string of float32s when asked."""

    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str


class EmbeddingUsage(WireModel):
    """Tokens read."""

    prompt_tokens: int
    total_tokens: int


class EmbeddingList(WireModel):
    """``object: "list"`` of embeddings."""

    object: Literal["list"] = "list"
    data: list[Embedding]
    model: str
    usage: EmbeddingUsage
