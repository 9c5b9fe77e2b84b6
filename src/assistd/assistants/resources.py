"""``tool_resources`` as assistants and threads store them: validated and normalised."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from assistd.assistants.schemas import ModifyToolResources, ToolResources
from assistd.core.errors import InvalidRequestError
from assistd.files import service as files_service


async def for_create(
    session: AsyncSession, project_id: str, resources: ToolResources | None
) -> dict[str, Any]:
    """The stored form of ``tool_resources`` given on create."""
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
        if fs.vector_stores:
            # The helper needs vector stores, which arrive with file_search ingestion.
            raise InvalidRequestError(
                "Creating vector stores through 'tool_resources.file_search.vector_stores' "
                "is not available on this server yet; create the vector store first and pass "
                "'vector_store_ids'.",
                param="tool_resources.file_search.vector_stores",
                code="unsupported_parameter",
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
        out["file_search"] = {"vector_store_ids": resources.file_search.vector_store_ids or []}
    return out
