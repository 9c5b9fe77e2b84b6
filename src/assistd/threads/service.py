"""Threads: create (with initial messages), read, modify, delete."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from assistd.assistants import resources
from assistd.core import ids
from assistd.core.channels import Wake, wake_workers
from assistd.core.clock import now
from assistd.core.config import EmbeddingSettings
from assistd.core.repository import Repository
from assistd.messages import service as messages_service
from assistd.models import Thread
from assistd.threads.schemas import ThreadCreate, ThreadModify, ThreadObject
from assistd.vector_stores import service as vector_stores_service


def to_wire(t: Thread) -> ThreadObject:
    """The API shape of a thread."""
    return ThreadObject(
        id=t.id, created_at=t.created_at, metadata=t.metadata_, tool_resources=t.tool_resources
    )


async def create(
    session: AsyncSession,
    project_id: str,
    req: ThreadCreate,
    embeddings: EmbeddingSettings,
    *,
    param_prefix: str = "",
) -> Thread:
    """Create a thread and its initial messages in one transaction; files attached for
    file_search go into the thread's vector store."""
    row = Thread(
        id=ids.new_id(ids.THREAD),
        project_id=project_id,
        created_at=now(),
        metadata_=req.metadata or {},
        tool_resources=await resources.for_create(
            session, project_id, req.tool_resources, embeddings, for_thread=True
        ),
    )
    session.add(row)
    await session.flush()
    for i, message in enumerate(req.messages or []):
        await messages_service.create(
            session, project_id, row.id, message, param_prefix=f"{param_prefix}messages[{i}]."
        )
    await vector_stores_service.attach_to_thread(
        session, row, messages_service.file_search_attachments(req.messages or []), embeddings
    )
    await session.flush()
    return row


_REPO = Repository(Thread, "thread", "thread_id")


async def get(session: AsyncSession, project_id: str, thread_id: str) -> Thread:
    """A thread of the project, or 404."""
    return await _REPO.get(session, project_id, thread_id)


async def modify(
    session: AsyncSession, project_id: str, thread_id: str, req: ThreadModify
) -> Thread:
    """Apply the fields present in ``req``."""
    row = await get(session, project_id, thread_id)
    changes = req.model_dump(include={"metadata"}, exclude_unset=True)
    if "tool_resources" in req.model_fields_set:
        changes["tool_resources"] = await resources.for_modify(
            session, project_id, row.tool_resources, req.tool_resources
        )
    return await _REPO.modify(session, row, changes)


async def delete_thread(session: AsyncSession, project_id: str, thread_id: str) -> None:
    """Delete a thread and (by cascade) its messages."""
    await _REPO.delete(session, project_id, thread_id)
    # Workers remove the thread's code_interpreter sandbox (after this commits).
    await wake_workers(session, Wake.THREAD_DELETED, thread_id)
