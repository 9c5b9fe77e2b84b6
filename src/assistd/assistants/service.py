"""Assistants: create, read, list, modify, delete."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from assistd.assistants import resources
from assistd.assistants.schemas import (
    AssistantCreate,
    AssistantModify,
    AssistantObject,
    response_format_to_wire,
    tool_to_wire,
)
from assistd.core import ids
from assistd.core.clock import now
from assistd.core.config import EmbeddingSettings
from assistd.core.pagination import ListParams
from assistd.core.repository import Repository
from assistd.models import Assistant


def to_wire(a: Assistant) -> AssistantObject:
    """The API shape of an assistant."""
    return AssistantObject(
        id=a.id,
        created_at=a.created_at,
        name=a.name,
        description=a.description,
        model=a.model,
        instructions=a.instructions,
        tools=a.tools,
        tool_resources=a.tool_resources,
        metadata=a.metadata_,
        temperature=1.0 if a.temperature is None else a.temperature,
        top_p=1.0 if a.top_p is None else a.top_p,
        response_format=a.response_format,
    )


async def create(
    session: AsyncSession, project_id: str, req: AssistantCreate, embeddings: EmbeddingSettings
) -> Assistant:
    """Create an assistant (``embeddings``: the model of a store the helper creates)."""
    row = Assistant(
        id=ids.new_id(ids.ASSISTANT),
        project_id=project_id,
        created_at=now(),
        name=req.name,
        description=req.description,
        model=req.model,
        instructions=req.instructions,
        tools=[tool_to_wire(t) for t in req.tools or []],
        tool_resources=await resources.for_create(
            session, project_id, req.tool_resources, embeddings, for_thread=False
        ),
        metadata_=req.metadata or {},
        temperature=req.temperature,
        top_p=req.top_p,
        response_format=response_format_to_wire(req.response_format),
        reasoning_effort=req.reasoning_effort,
    )
    session.add(row)
    await session.flush()
    return row


_REPO = Repository(Assistant, "assistant", "assistant_id")
# Modify stores these fields as the request gives them.
_STORED_AS_GIVEN = {
    "name",
    "description",
    "instructions",
    "temperature",
    "top_p",
    "reasoning_effort",
    "metadata",
}


async def get(session: AsyncSession, project_id: str, assistant_id: str) -> Assistant:
    """An assistant of the project, or 404."""
    return await _REPO.get(session, project_id, assistant_id)


async def list_assistants(
    session: AsyncSession, project_id: str, params: ListParams
) -> tuple[list[Assistant], bool]:
    """A page of the project's assistants."""
    return await _REPO.page(session, project_id, params)


async def modify(
    session: AsyncSession, project_id: str, assistant_id: str, req: AssistantModify
) -> Assistant:
    """Apply the fields present in ``req``; explicit nulls clear."""
    row = await get(session, project_id, assistant_id)
    given = req.model_fields_set
    changes = req.model_dump(include=_STORED_AS_GIVEN, exclude_unset=True)
    if "model" in given and req.model is not None:
        changes["model"] = req.model
    if "tools" in given:
        changes["tools"] = [tool_to_wire(t) for t in req.tools or []]
    if "tool_resources" in given:
        changes["tool_resources"] = await resources.for_modify(
            session, project_id, row.tool_resources, req.tool_resources
        )
    if "response_format" in given:
        changes["response_format"] = response_format_to_wire(req.response_format)
    return await _REPO.modify(session, row, changes)


async def delete_assistant(session: AsyncSession, project_id: str, assistant_id: str) -> None:
    """Delete an assistant (its threads and messages stay)."""
    await _REPO.delete(session, project_id, assistant_id)
