"""HTTP: ``/responses`` (create, retrieve, delete, cancel, input items, input tokens)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse

from assistd.core.config import Settings
from assistd.core.errors import InvalidRequestError
from assistd.core.schemas import Deleted
from assistd.llm import tokens
from assistd.projects.auth import ProjectDep
from assistd.responses import items as response_items
from assistd.responses import service, stream
from assistd.responses.schemas import CompactRequest, InputTokensRequest, ResponseCreate
from assistd.responses.wire import response_object
from assistd.runs.router import start_adopted, starter_of
from assistd.runs.wire import run_data
from assistd.web.deps import ListParamsDep, ReadSessionDep, SessionDep, request_transaction
from assistd.web.routing import ApiRoute
from assistd.web.sse import sse_response

router = APIRouter(tags=["responses"], route_class=ApiRoute)


def _include(request: Request) -> list[str]:
    query = request.query_params
    return service.check_include(query.getlist("include[]") + query.getlist("include"))


def _events(request: Request, row: Any, starting_after: int = -1) -> Any:
    state = request.app.state
    settings: Settings = state.settings
    return stream.events(
        state.read_sessionmaker,
        state.listener,
        row,
        starting_after,
        poll_seconds=settings.worker.poll_seconds,
    )


@router.post("/responses", response_model=None)
async def create_response(body: ResponseCreate, request: Request, project: ProjectDep) -> Response:
    """Create a response: streamed, waited for, or in the background."""
    state = request.app.state
    starter = starter_of(request)
    async with request_transaction(request) as session:
        row, run = await service.create(
            session,
            state.settings,
            state.storage,
            project,
            body,
            adopt=starter.id if starter else None,
        )
        created = response_object(row, {**run_data(run), "status": "queued"}, [])
        if starter is not None:
            await start_adopted(request, session, run.id, starter)
    if body.stream:
        return sse_response(_events(request, row), done=False)
    if row.background:
        return JSONResponse(created)
    async for _ in _events(request, row):
        pass  # waits for the end
    async with state.read_sessionmaker() as session:
        answer = await service.snapshot(session, row)
    error = answer.get("error") or {}
    if answer["status"] == "failed" and error.get("code") == "context_length_exceeded":
        raise InvalidRequestError(str(error.get("message")), param="input", code=error["code"])
    return JSONResponse(answer)


@router.get("/responses/{response_id}", response_model=None)
async def retrieve_response(
    response_id: str,
    request: Request,
    session: ReadSessionDep,
    project: ProjectDep,
    stream_: Annotated[bool, Query(alias="stream")] = False,
    starting_after: Annotated[int, Query(ge=-1)] = -1,
) -> Response:
    """Retrieve a response, or (``stream=true``) its events after ``starting_after``."""
    include = _include(request)
    if stream_:
        row = await service.get_stored(session, project, response_id)
        if not (row.background and row.params.get("stream")):
            raise InvalidRequestError(
                "Only responses created with 'background' and 'stream' set to true can be "
                "streamed again.",
                param="stream",
                code="invalid_value",
            )
        return sse_response(_events(request, row, starting_after), done=False)
    return JSONResponse(await service.retrieve(session, project, response_id, include))


@router.delete("/responses/{response_id}")
async def delete_response(response_id: str, session: SessionDep, project: ProjectDep) -> Deleted:
    """Delete a response."""
    await service.delete_response(session, project, response_id)
    return Deleted(id=response_id, object="response", deleted=True)


@router.post("/responses/{response_id}/cancel", response_model=None)
async def cancel_response(response_id: str, session: SessionDep, project: ProjectDep) -> Response:
    """Cancel a background response."""
    row = await service.cancel(session, project, response_id)
    return JSONResponse(await service.snapshot(session, row))


@router.get("/responses/{response_id}/input_items", response_model=None)
async def list_input_items(
    response_id: str,
    request: Request,
    session: ReadSessionDep,
    project: ProjectDep,
    params: ListParamsDep,
) -> Response:
    """List the items a response was given."""
    _include(request)
    page, has_more = await service.input_items(session, project, response_id, params)
    return JSONResponse(
        {
            "object": "list",
            "data": page,
            "first_id": page[0]["id"] if page else None,
            "last_id": page[-1]["id"] if page else None,
            "has_more": has_more,
        }
    )


@router.post("/responses/compact", response_model=None)
async def compact_response(
    body: CompactRequest, request: Request, session: ReadSessionDep, project: ProjectDep
) -> Response:
    """Compact a context: its user messages and a summary of the rest."""
    router_ = request.app.state.chat_router
    return JSONResponse(await service.compact(session, router_, project, body))


@router.post("/responses/input_tokens", response_model=None)
async def count_input_tokens(
    body: InputTokensRequest, request: Request, session: SessionDep, project: ProjectDep
) -> Response:
    """Count the tokens a response with this input would start from."""
    items: list[dict[str, Any]] = []
    if body.previous_response_id is not None:
        previous = await service.get_stored(
            session, project, body.previous_response_id, "previous_response_id"
        )
        items = await service.context_items_of(session, previous)
    create = ResponseCreate(model=body.model or "gpt-4o", input=body.input)
    items += await service.input_shapes(session, project, create)
    messages = response_items.chat_messages(items)
    if body.instructions:
        messages.insert(0, {"role": "system", "content": body.instructions})
    router_ = request.app.state.chat_router
    tokenizer = router_.tokenizer(body.model) if body.model else "o200k_base"
    counted = await tokens.count_messages(messages, tokenizer)
    return JSONResponse(service.input_tokens_object(sum(counted)))
