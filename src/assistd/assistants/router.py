"""HTTP: ``/assistants``."""

from __future__ import annotations

from fastapi import APIRouter

from assistd.assistants import service
from assistd.assistants.schemas import AssistantCreate, AssistantModify, AssistantObject
from assistd.core.schemas import Deleted, ListPage, page_of
from assistd.projects.auth import ProjectDep
from assistd.web.deps import ListParamsDep, ReadSessionDep, SessionDep, SettingsDep
from assistd.web.routing import ApiRoute

router = APIRouter(tags=["assistants"], route_class=ApiRoute)


@router.post("/assistants")
async def create_assistant(
    body: AssistantCreate, session: SessionDep, project: ProjectDep, settings: SettingsDep
) -> AssistantObject:
    """Create an assistant."""
    return service.to_wire(await service.create(session, project, body, settings.embeddings))


@router.get("/assistants")
async def list_assistants(
    session: ReadSessionDep, project: ProjectDep, params: ListParamsDep
) -> ListPage[AssistantObject]:
    """List assistants."""
    rows, has_more = await service.list_assistants(session, project, params)
    return ListPage[AssistantObject](**page_of([service.to_wire(r) for r in rows], has_more))


@router.get("/assistants/{assistant_id}")
async def retrieve_assistant(
    assistant_id: str, session: ReadSessionDep, project: ProjectDep
) -> AssistantObject:
    """Retrieve an assistant."""
    return service.to_wire(await service.get(session, project, assistant_id))


@router.post("/assistants/{assistant_id}")
async def modify_assistant(
    assistant_id: str, body: AssistantModify, session: SessionDep, project: ProjectDep
) -> AssistantObject:
    """Modify an assistant."""
    return service.to_wire(await service.modify(session, project, assistant_id, body))


@router.delete("/assistants/{assistant_id}")
async def delete_assistant(assistant_id: str, session: SessionDep, project: ProjectDep) -> Deleted:
    """Delete an assistant."""
    await service.delete_assistant(session, project, assistant_id)
    return Deleted(id=assistant_id, object="assistant.deleted")
