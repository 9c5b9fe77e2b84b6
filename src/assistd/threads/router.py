"""HTTP: ``/threads``."""

from __future__ import annotations

from fastapi import APIRouter, Body

from assistd.core.schemas import Deleted
from assistd.projects.auth import ProjectDep
from assistd.threads import service
from assistd.threads.schemas import ThreadCreate, ThreadModify, ThreadObject
from assistd.web.deps import ReadSessionDep, SessionDep, SettingsDep
from assistd.web.routing import ApiRoute

router = APIRouter(tags=["threads"], route_class=ApiRoute)


@router.post("/threads")
async def create_thread(
    session: SessionDep,
    project: ProjectDep,
    settings: SettingsDep,
    body: ThreadCreate = Body(default_factory=ThreadCreate),
) -> ThreadObject:
    """Create a thread, optionally with messages."""
    return service.to_wire(await service.create(session, project, body, settings.embeddings))


@router.get("/threads/{thread_id}")
async def retrieve_thread(
    thread_id: str, session: ReadSessionDep, project: ProjectDep
) -> ThreadObject:
    """Retrieve a thread."""
    return service.to_wire(await service.get(session, project, thread_id))


@router.post("/threads/{thread_id}")
async def modify_thread(
    thread_id: str, body: ThreadModify, session: SessionDep, project: ProjectDep
) -> ThreadObject:
    """Modify a thread."""
    return service.to_wire(await service.modify(session, project, thread_id, body))


@router.delete("/threads/{thread_id}")
async def delete_thread(thread_id: str, session: SessionDep, project: ProjectDep) -> Deleted:
    """Delete a thread and its messages."""
    await service.delete_thread(session, project, thread_id)
    return Deleted(id=thread_id, object="thread.deleted")
