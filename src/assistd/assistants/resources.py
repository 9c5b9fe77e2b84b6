"""``tool_resources`` as assistants and threads store them: validated and normalised."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from assistd.assistants.schemas import ModifyToolResources, ToolResources
from assistd.core.config import EmbeddingSettings
from assistd.core.errors import InvalidRequestError
from assistd.files import service as files_service
from assistd.vector_stores import service as vector_stores_service


async def for_create(
    session: AsyncSession,
    project_id: str,
    resources: ToolResources | None,
    embeddings: EmbeddingSettings,
    *,
    for_thread: bool,
) -> dict[str, Any]:
    """The stored form of ``tool_resources`` given on create (the ``vector_stores`` helper
    creates the store; a thread's expires after a week without activity)."""
    out: dict[str, Any] = {}
    if resources is None:
        return out
    if resources.code_interpreter is not None:
        file_ids = resources.code_interpreter.file_ids or []
        await files_service.require_files(
            session, project_id, file_ids, "tool_resources.code_interpreter.file_ids[{i}]"
        )
        out["code_interpreter"] = {"file_ids": file_ids}
    fs = resources.file_search
    if fs is not None:
        if fs.vector_stores and fs.vector_store_ids:
            raise InvalidRequestError(
                "Provide either 'vector_store_ids' or 'vector_stores', not both.",
                param="tool_resources.file_search",
                code="invalid_value",
            )
        if fs.vector_stores:
            store = await vector_stores_service.create_from_helper(
                session, project_id, fs.vector_stores[0], embeddings, expire=for_thread
            )
            out["file_search"] = {"vector_store_ids": [store.id]}
            return out
        await vector_stores_service.require_stores(
            session,
            project_id,
            fs.vector_store_ids or [],
            "tool_resources.file_search.vector_store_ids[{i}]",
        )
        out["file_search"] = {"vector_store_ids": fs.vector_store_ids or []}
    return out


async def for_modify(
    session: AsyncSession,
    project_id: str,
    current: dict[str, Any],
    resources: ModifyToolResources | None,
) -> dict[str, Any]:
    """Apply a modify request: each given tool's lists replace the stored ones."""
    if resources is None:
        return {}
    out = dict(current)
    if resources.code_interpreter is not None:
        file_ids = resources.code_interpreter.file_ids or []
        await files_service.require_files(
            session, project_id, file_ids, "tool_resources.code_interpreter.file_ids[{i}]"
        )
        out["code_interpreter"] = {"file_ids": file_ids}
    if resources.file_search is not None:
        store_ids = resources.file_search.vector_store_ids or []
        await vector_stores_service.require_stores(
            session, project_id, store_ids, "tool_resources.file_search.vector_store_ids[{i}]"
        )
        out["file_search"] = {"vector_store_ids": store_ids}
    return out
