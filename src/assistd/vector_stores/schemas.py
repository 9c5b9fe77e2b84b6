"""Vector store wire types."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, SerializerFunctionWrapHandler, model_serializer

from assistd.core.schemas import (
    AutoChunkingStrategy,
    ChunkingStrategy,
    Metadata,
    RequestModel,
    StaticChunking,
    StaticChunkingStrategy,
    WireModel,
    chunking_to_wire,
)

__all__ = [
    "AutoChunkingStrategy",
    "ChunkingStrategy",
    "StaticChunking",
    "StaticChunkingStrategy",
    "chunking_to_wire",
]


class VectorStoreHelper(RequestModel):
    """``tool_resources.file_search.vector_stores[]`` of an assistant or a thread: a store
    created on the fly."""

    file_ids: Annotated[list[str], Field(max_length=10000)] | None = None
    chunking_strategy: ChunkingStrategy | None = None
    metadata: Metadata = None


class ExpiresAfter(RequestModel):
    """Expiry relative to the store's last activity."""

    anchor: Literal["last_active_at"]
    days: Annotated[int, Field(ge=1, le=365)]


# ``int`` before ``float``: whole numbers are echoed as given (2024, not 2024.0).
AttributeValue = Annotated[str, Field(max_length=512)] | bool | int | float
Attributes = Annotated[
    dict[Annotated[str, Field(max_length=64)], AttributeValue], Field(max_length=16)
]


class VectorStoreCreate(RequestModel):
    """Body of ``POST /vector_stores``."""

    file_ids: Annotated[list[str], Field(max_length=500)] | None = None
    name: str | None = None
    description: str | None = None
    expires_after: ExpiresAfter | None = None
    chunking_strategy: ChunkingStrategy | None = None
    metadata: Metadata = None


class VectorStoreModify(RequestModel):
    """Body of ``POST /vector_stores/{id}`` (``expires_after: null`` removes the expiry)."""

    name: str | None = None
    expires_after: ExpiresAfter | None = None
    metadata: Metadata = None


class VectorStoreFileCreate(RequestModel):
    """Body of ``POST /vector_stores/{id}/files``."""

    file_id: str
    chunking_strategy: ChunkingStrategy | None = None
    attributes: Attributes | None = None


class VectorStoreFileModify(RequestModel):
    """Body of ``POST /vector_stores/{id}/files/{file_id}``."""

    attributes: Attributes | None


class BatchFile(RequestModel):
    """One entry of a batch's ``files``."""

    file_id: str
    attributes: Attributes | None = None
    chunking_strategy: ChunkingStrategy | None = None


class FileBatchCreate(RequestModel):
    """Body of ``POST /vector_stores/{id}/file_batches``: ``file_ids`` or ``files``."""

    file_ids: Annotated[list[str], Field(min_length=1, max_length=2000)] | None = None
    files: Annotated[list[BatchFile], Field(min_length=1, max_length=2000)] | None = None
    chunking_strategy: ChunkingStrategy | None = None
    attributes: Attributes | None = None


class FileCounts(WireModel):
    """Files of a store or batch by status."""

    in_progress: int = 0
    completed: int = 0
    failed: int = 0
    cancelled: int = 0
    total: int = 0


class VectorStoreObject(WireModel):
    """``object: "vector_store"``."""

    id: str
    object: Literal["vector_store"] = "vector_store"
    created_at: int
    name: str
    usage_bytes: int
    file_counts: FileCounts
    status: str
    expires_after: dict[str, Any] | None
    expires_at: int | None
    last_active_at: int | None
    metadata: dict[str, str]

    @model_serializer(mode="wrap")
    def _without_unset_expiry(self, handler: SerializerFunctionWrapHandler) -> Any:
        # The spec's expires_after is optional but not nullable: absent when there is none.
        data = handler(self)
        if isinstance(data, dict) and data.get("expires_after") is None:
            data.pop("expires_after", None)
        return data


class VectorStoreFileObject(WireModel):
    """``object: "vector_store.file"`` (its id is the File's id)."""

    id: str
    object: Literal["vector_store.file"] = "vector_store.file"
    usage_bytes: int
    created_at: int
    vector_store_id: str
    status: str
    last_error: dict[str, Any] | None
    chunking_strategy: dict[str, Any]
    attributes: dict[str, Any]


class FileBatchObject(WireModel):
    """``object: "vector_store.files_batch"``."""

    id: str
    object: Literal["vector_store.files_batch"] = "vector_store.files_batch"
    created_at: int
    vector_store_id: str
    status: str
    file_counts: FileCounts


class ComparisonFilter(RequestModel):
    """``{"type": "eq", "key": "author", "value": "x"}``."""

    type: Literal["eq", "ne", "gt", "gte", "lt", "lte", "in", "nin"]
    key: str
    value: str | float | bool | list[str | float]


class CompoundFilter(RequestModel):
    """``{"type": "and", "filters": [...]}``."""

    type: Literal["and", "or"]
    filters: list[ComparisonFilter | CompoundFilter]


class SearchRankingOptions(RequestModel):
    """Ranking options of the search endpoint (hyphenated vocabulary)."""

    ranker: Literal["none", "auto", "default-2024-11-15"] = "auto"
    score_threshold: Annotated[float, Field(ge=0, le=1)] = 0.0


class SearchRequest(RequestModel):
    """Body of ``POST /vector_stores/{id}/search``."""

    query: str | Annotated[list[str], Field(min_length=1)]
    rewrite_query: bool = False
    max_num_results: Annotated[int, Field(ge=1, le=50)] = 10
    filters: ComparisonFilter | CompoundFilter | None = None
    ranking_options: SearchRankingOptions | None = None
