"""Wire types shared by several resources: metadata, list pages, deletion receipts, chunking
strategies (a vector store's, and the ``vector_stores`` helper's in ``tool_resources``)."""

from __future__ import annotations

from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

MAX_METADATA_PAIRS = 16
MAX_METADATA_KEY = 64
MAX_METADATA_VALUE = 512


def _check_metadata(value: dict[str, str] | None) -> dict[str, str] | None:
    if value is None:
        return None
    if len(value) > MAX_METADATA_PAIRS:
        raise PydanticCustomError(
            "object_above_max_properties",
            "Invalid 'metadata': too many properties. Expected an object with at most "
            "{max} properties, but got an object with {n} properties instead.",
            {"max": MAX_METADATA_PAIRS, "n": len(value)},
        )
    for key, item in value.items():
        if len(key) > MAX_METADATA_KEY:
            raise PydanticCustomError(
                "string_above_max_length",
                "Invalid 'metadata': key too long. Expected a key with maximum length "
                "{max}, but got a key with length {n} instead.",
                {"max": MAX_METADATA_KEY, "n": len(key), "metadata_key": key, "part": "key"},
            )
        if len(item) > MAX_METADATA_VALUE:
            raise PydanticCustomError(
                "string_above_max_length",
                "Invalid 'metadata.{key}': string too long. Expected a string with maximum "
                "length {max}, but got a string with length {n} instead.",
                {
                    "key": key,
                    "max": MAX_METADATA_VALUE,
                    "n": len(item),
                    "metadata_key": key,
                    "part": "value",
                },
            )
    return value


Metadata = Annotated[dict[str, str] | None, AfterValidator(_check_metadata)]
"""Up to 16 string pairs; keys ≤ 64 chars, values ≤ 512 chars; ``null`` allowed."""


class RequestModel(BaseModel):
    """Base of request bodies: an unknown field is a 400 ``unknown_parameter``, as OpenAI
    answers it, so a typo is noticed rather than silently dropped."""

    model_config = ConfigDict(extra="forbid")


class WireModel(BaseModel):
    """Base of response objects: exactly the fields declared."""

    model_config = ConfigDict(extra="forbid")


class StaticChunking(RequestModel):
    """Token window sizes."""

    max_chunk_size_tokens: Annotated[int, Field(ge=100, le=4096)]
    chunk_overlap_tokens: Annotated[int, Field(ge=0)]

    @model_validator(mode="after")
    def _overlap_at_most_half(self) -> StaticChunking:
        if self.chunk_overlap_tokens > self.max_chunk_size_tokens // 2:
            raise ValueError(
                "'chunk_overlap_tokens' must not exceed half of 'max_chunk_size_tokens'."
            )
        return self


class AutoChunkingStrategy(RequestModel):
    """OpenAI's default: 800-token chunks with 400 overlap."""

    type: Literal["auto"]


class StaticChunkingStrategy(RequestModel):
    """Explicit chunk sizes."""

    type: Literal["static"]
    static: StaticChunking


ChunkingStrategy = Annotated[
    AutoChunkingStrategy | StaticChunkingStrategy, Field(discriminator="type")
]


def chunking_to_wire(
    strategy: AutoChunkingStrategy | StaticChunkingStrategy | None,
) -> dict[str, Any]:
    """Stored/echoed form: always ``static`` (``auto`` is 800/400)."""
    if isinstance(strategy, StaticChunkingStrategy):
        return {"type": "static", "static": strategy.static.model_dump()}
    return {
        "type": "static",
        "static": {"max_chunk_size_tokens": 800, "chunk_overlap_tokens": 400},
    }


T = TypeVar("T")


class ListPage(WireModel, Generic[T]):
    """A cursor page, as every list endpoint returns it."""

    object: Literal["list"] = "list"
    data: list[T]
    first_id: str | None
    last_id: str | None
    has_more: bool


class Deleted(WireModel):
    """A deletion receipt (``assistant.deleted``, ``thread.deleted``, …)."""

    id: str
    object: str
    deleted: bool = True


def page_of(items: list[Any], has_more: bool) -> dict[str, Any]:
    """Build the fields of a list page from wire objects that carry an ``id``."""
    return {
        "object": "list",
        "data": items,
        "first_id": items[0].id if items else None,
        "last_id": items[-1].id if items else None,
        "has_more": has_more,
    }
