"""HTTP: ``/threads/{thread_id}/messages``."""

from __future__ import annotations

from fastapi import APIRouter

from assistd.core.schemas import Deleted, ListPage, page_of
from assistd.messages import service
from assistd.messages.schemas import MessageCreate, MessageModify, MessageObject
from assistd.projects.auth import ProjectDep
from assistd.web.deps import ListParamsDep, ReadSessionDep, SessionDep, SettingsDep
from assistd.web.routing import ApiRoute

router = APIRouter(tags=["messages"], route_class=ApiRoute)


@router.post("/threads/{thread_id}/messages")
async def create_message(
    thread_id: str,
    body: MessageCreate,
    session: SessionDep,
    project: ProjectDep,
    settings: SettingsDep,
) -> MessageObject:
    """Add a message to a thread (refused while a run is active on it)."""
    row = await service.add(session, project, thread_id, body, settings.embeddings)
    return service.to_wire(row)


@router.get("/threads/{thread_id}/messages")
async def list_messages(
    thread_id: str,
    session: ReadSessionDep,
    project: ProjectDep,
    params: ListParamsDep,
    run_id: str | None = None,
) -> ListPage[MessageObject]:
    """List a thread's messages."""
    await service.require_thread(session, project, thread_id)
    rows, has_more = await service.list_messages(session, thread_id, params, run_id)
    return ListPage[MessageObject](**page_of([service.to_wire(r) for r in rows], has_more))


@router.get("/threads/{thread_id}/messages/{message_id}")
async def retrieve_message(
    thread_id: str, message_id: str, session: ReadSessionDep, project: ProjectDep
) -> MessageObject:
    """Retrieve a message."""
    await service.require_thread(session, project, thread_id)
    return service.to_wire(await service.get(session, thread_id, message_id))


@router.post("/threads/{thread_id}/messages/{message_id}")
async def modify_message(
    thread_id: str, message_id: str, body: MessageModify, session: SessionDep, project: ProjectDep
) -> MessageObject:
    """Modify a message's metadata."""
    await service.require_thread(session, project, thread_id)
    return service.to_wire(await service.modify(session, thread_id, message_id, body))


@router.delete("/threads/{thread_id}/messages/{message_id}")
async def delete_message(
    thread_id: str, message_id: str, session: SessionDep, project: ProjectDep
) -> Deleted:
    """Delete a message."""
    await service.bump_version(session, project, thread_id)
    await service.delete_message(session, thread_id, message_id)
    return Deleted(id=message_id, object="thread.message.deleted")
