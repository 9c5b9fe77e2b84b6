"""HTTP: ``/conversations`` and their ``/items``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Request

from assistd.conversations import service
from assistd.conversations.schemas import (
    ConversationCreate,
    ConversationObject,
    ConversationUpdate,
    ItemList,
    ItemsCreate,
    MovedConversation,
)
from assistd.core.schemas import Deleted
from assistd.projects.auth import ProjectDep
from assistd.web.deps import ListParamsDep, ReadSessionDep, SessionDep
from assistd.web.routing import ApiRoute

router = APIRouter(tags=["conversations"], route_class=ApiRoute)


def _include(request: Request) -> list[str]:
    """``include`` as the SDK sends it (``include[]=…``) or repeated plainly."""
    query = request.query_params
    return service.check_include(query.getlist("include[]") + query.getlist("include"))


@router.post("/conversations")
async def create_conversation(
    session: SessionDep,
    project: ProjectDep,
    body: ConversationCreate = Body(default_factory=ConversationCreate),
) -> MovedConversation | ConversationObject:
    """Create a conversation, optionally with up to 20 items, or move a thread in place
    (``from_thread``, sent as ``extra_body``: the SDK's own call, answered by its type)."""
    if body.from_thread is not None:
        return await service.create_from_thread(session, project, body, body.from_thread)
    return service.to_wire(await service.create(session, project, body))


@router.get("/conversations/{conversation_id}")
async def retrieve_conversation(
    conversation_id: str, session: ReadSessionDep, project: ProjectDep
) -> ConversationObject:
    """Retrieve a conversation."""
    return service.to_wire(await service.get(session, project, conversation_id))


@router.post("/conversations/{conversation_id}")
async def update_conversation(
    conversation_id: str, body: ConversationUpdate, session: SessionDep, project: ProjectDep
) -> ConversationObject:
    """Replace a conversation's metadata."""
    return service.to_wire(await service.update(session, project, conversation_id, body.metadata))


@router.delete("/conversations/{conversation_id}")
async def delete_conversation(
    conversation_id: str, session: SessionDep, project: ProjectDep
) -> Deleted:
    """Delete a conversation and its items."""
    await service.delete_conversation(session, project, conversation_id)
    return Deleted(id=conversation_id, object="conversation.deleted")


@router.post("/conversations/{conversation_id}/items")
async def create_items(
    conversation_id: str,
    body: ItemsCreate,
    request: Request,
    session: SessionDep,
    project: ProjectDep,
) -> ItemList:
    """Append up to 20 items."""
    _include(request)
    rows = await service.add_items(session, project, conversation_id, body.items)
    return service.item_list(rows, False)


@router.get("/conversations/{conversation_id}/items")
async def list_items(
    conversation_id: str,
    request: Request,
    session: ReadSessionDep,
    project: ProjectDep,
    params: ListParamsDep,
) -> ItemList:
    """A page of items, newest first unless ``order=asc``."""
    _include(request)
    rows, has_more = await service.list_items(session, project, conversation_id, params)
    return service.item_list(rows, has_more)


@router.get("/conversations/{conversation_id}/items/{item_id}")
async def retrieve_item(
    conversation_id: str,
    item_id: str,
    request: Request,
    session: ReadSessionDep,
    project: ProjectDep,
) -> dict[str, Any]:
    """One item."""
    _include(request)
    row = await service.get_item(session, project, conversation_id, item_id)
    return row.data


@router.delete("/conversations/{conversation_id}/items/{item_id}")
async def delete_item(
    conversation_id: str, item_id: str, session: SessionDep, project: ProjectDep
) -> ConversationObject:
    """Delete an item; answers with the conversation."""
    return service.to_wire(await service.delete_item(session, project, conversation_id, item_id))
