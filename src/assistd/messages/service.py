"""Messages: create (from request parts), read, list, modify, delete."""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from assistd.core import ids
from assistd.core.clock import now
from assistd.core.config import EmbeddingSettings
from assistd.core.errors import ConflictingStateError, InvalidRequestError, NotFoundError
from assistd.core.pagination import ListParams
from assistd.core.repository import Repository
from assistd.files import service as files_service
from assistd.messages.schemas import (
    ImageFilePart,
    ImageUrlPart,
    MessageCreate,
    MessageModify,
    MessageObject,
)
from assistd.models import Message, Run, Thread
from assistd.models.run import ACTIVE_STATUSES
from assistd.vector_stores import service as vector_stores_service

_IMAGE_URL_SCHEMES = ("http://", "https://", "data:image/")


def to_wire(m: Message) -> MessageObject:
    """The API shape of a message."""
    return MessageObject(
        id=m.id,
        created_at=m.created_at,
        thread_id=m.thread_id,
        status=m.status,
        incomplete_details=m.incomplete_details,
        completed_at=m.completed_at,
        incomplete_at=m.incomplete_at,
        role=m.role,
        content=m.content,
        assistant_id=m.assistant_id,
        run_id=m.run_id,
        attachments=m.attachments,
        metadata=m.metadata_,
    )


async def _content(
    session: AsyncSession, project_id: str, req: MessageCreate, param: str
) -> list[dict[str, Any]]:
    """Request content → stored (response-shaped) content parts."""
    if isinstance(req.content, str):
        return [{"type": "text", "text": {"value": req.content, "annotations": []}}]
    parts: list[dict[str, Any]] = []
    for i, part in enumerate(req.content):
        if isinstance(part, ImageFilePart):
            await files_service.require_files(
                session,
                project_id,
                [part.image_file.file_id],
                f"{param}content[{i}].image_file.file_id",
            )
            parts.append(
                {
                    "type": "image_file",
                    "image_file": {
                        "file_id": part.image_file.file_id,
                        "detail": part.image_file.detail or "auto",
                    },
                }
            )
        elif isinstance(part, ImageUrlPart):
            if not part.image_url.url.startswith(_IMAGE_URL_SCHEMES):
                raise InvalidRequestError(
                    "Invalid image URL: expected an http(s) URL or a data:image/ URL.",
                    param=f"{param}content[{i}].image_url.url",
                    code="invalid_value",
                )
            parts.append(
                {
                    "type": "image_url",
                    "image_url": {
                        "url": part.image_url.url,
                        "detail": part.image_url.detail or "auto",
                    },
                }
            )
        else:
            parts.append({"type": "text", "text": {"value": part.text, "annotations": []}})
    return parts


async def _attachments(
    session: AsyncSession, project_id: str, req: MessageCreate, param: str
) -> list[dict[str, Any]]:
    if not req.attachments:
        return []
    file_ids = [a.file_id for a in req.attachments]
    await files_service.require_files(
        session, project_id, file_ids, param + "attachments[{i}].file_id"
    )
    return [
        {"file_id": a.file_id, "tools": [{"type": t.type} for t in a.tools or []]}
        for a in req.attachments
    ]


async def create(
    session: AsyncSession,
    project_id: str,
    thread_id: str,
    req: MessageCreate,
    *,
    param_prefix: str = "",
    run_id: str | None = None,
    assistant_id: str | None = None,
) -> Message:
    """Add a message to a thread the caller has already resolved."""
    created = now()
    row = Message(
        id=ids.new_id(ids.MESSAGE),
        project_id=project_id,
        thread_id=thread_id,
        created_at=created,
        role=req.role,
        content=await _content(session, project_id, req, param_prefix),
        attachments=await _attachments(session, project_id, req, param_prefix),
        metadata_=req.metadata or {},
        status="completed",
        assistant_id=assistant_id,
        run_id=run_id,
        completed_at=created,
        incomplete_at=None,
        incomplete_details=None,
    )
    session.add(row)
    return row


async def require_thread(session: AsyncSession, project_id: str, thread_id: str) -> None:
    """404 unless the thread exists in the project (no row loaded)."""
    found = await session.scalar(
        select(Thread.id).where(Thread.id == thread_id, Thread.project_id == project_id)
    )
    if found is None:
        raise NotFoundError.for_object("thread", thread_id, param="thread_id")


async def bump_version(session: AsyncSession, project_id: str, thread_id: str) -> Thread:
    """Lock the thread (404 when not the project's) and count a change to its messages
    (``Thread.version``, bumped by adding or deleting one): a run being created without a
    transaction sees it (``runs.service.create_run_direct``)."""
    thread: Thread | None = await session.scalar(
        update(Thread)
        .where(Thread.id == thread_id, Thread.project_id == project_id)
        .values(version=Thread.version + 1)
        .returning(Thread)
    )
    if thread is None:
        raise NotFoundError.for_object("thread", thread_id, param="thread_id")
    return thread


_ACTIVE_RUN_OF = (
    select(Run.id)
    .where(Run.thread_id == bindparam("thread_id"), Run.status.in_(ACTIVE_STATUSES))
    .limit(1)
)


async def add(
    session: AsyncSession,
    project_id: str,
    thread_id: str,
    req: MessageCreate,
    embeddings: EmbeddingSettings,
) -> Message:
    """``POST /messages``: create a message unless a run is active on the thread (OpenAI
    answers 400); files attached for file_search go into the thread's vector store."""
    thread = await bump_version(session, project_id, thread_id)
    # Checked by a statement of its own: it sees every run inserted before the lock was
    # taken (the statement taking it reads the rows as they were when it started).
    active = await session.scalar(_ACTIVE_RUN_OF, {"thread_id": thread_id})
    if active is not None:
        raise ConflictingStateError(
            f"Can't add messages to {thread_id} while a run {active} is active.",
            param="thread_id",
        )
    row = await create(session, project_id, thread_id, req)
    await vector_stores_service.attach_to_thread(
        session, thread, file_search_attachments([req]), embeddings
    )
    await session.flush()
    return row


def file_search_attachments(requests: list[MessageCreate]) -> list[str]:
    """Ids of files attached for the file_search tool."""
    return [
        a.file_id
        for req in requests
        for a in req.attachments or []
        if any(t.type == "file_search" for t in a.tools or [])
    ]


_REPO = Repository(Message, "message", "message_id", scope="thread_id")


async def get(session: AsyncSession, thread_id: str, message_id: str) -> Message:
    """A message of the (already authorised) thread, or 404."""
    return await _REPO.get(session, thread_id, message_id)


async def list_messages(
    session: AsyncSession, thread_id: str, params: ListParams, run_id: str | None
) -> tuple[list[Message], bool]:
    """A page of the thread's messages, optionally of one run."""
    extra = [] if run_id is None else [Message.run_id == run_id]
    return await _REPO.page(session, thread_id, params, *extra)


async def modify(
    session: AsyncSession, thread_id: str, message_id: str, req: MessageModify
) -> Message:
    """Replace a message's metadata."""
    row = await get(session, thread_id, message_id)
    return await _REPO.modify(
        session, row, req.model_dump(include={"metadata"}, exclude_unset=True)
    )


async def delete_message(session: AsyncSession, thread_id: str, message_id: str) -> None:
    """Delete a message."""
    await _REPO.delete(session, thread_id, message_id)
