"""HTTP: runs (``/threads/runs``, ``/threads/{id}/runs…``) and run steps."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import StreamingResponse

from assistd.core.config import Settings
from assistd.core.schemas import ListPage, page_of
from assistd.models import Run
from assistd.projects.auth import ProjectDep
from assistd.runs import service, stream
from assistd.runs.schemas import (
    RunCreate,
    RunModify,
    RunObject,
    RunStepObject,
    SubmitToolOutputs,
    ThreadAndRunCreate,
)
from assistd.runs.starter import RunDiscarded, Starter
from assistd.runs.wire import run_to_wire, step_to_wire
from assistd.web.deps import (
    ListParamsDep,
    ReadSessionDep,
    SessionDep,
    after_commit,
    request_transaction,
)
from assistd.web.routing import ApiRoute
from assistd.web.sse import sse_response

router = APIRouter(tags=["runs"], route_class=ApiRoute)

IncludeQuery = Annotated[list[str], Query(alias="include[]")]


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _stream(request: Request, run_id: str, after_id: int) -> StreamingResponse:
    state = request.app.state
    return sse_response(
        stream.tail(
            # Reads only: the autocommit engine saves a BEGIN/ROLLBACK per poll.
            state.read_sessionmaker,
            state.listener,
            run_id,
            after_id,
            poll_seconds=state.settings.worker.poll_seconds,
        )
    )


def _json(run: RunObject) -> Response:
    """The run as the response body (serialized by pydantic directly: endpoints that may
    also stream declare no response model, and FastAPI would walk the object field by
    field)."""
    return Response(run.model_dump_json(), media_type="application/json")


def starter_of(request: Request) -> Starter | None:
    """This process's own worker (``app.state.starter``), when it can take one more run now."""
    starter: Starter | None = getattr(request.app.state, "starter", None)
    return starter if starter is not None and starter.can_start() else None


async def _answer(
    request: Request, session: AsyncSession, run: Run, starter: Starter | None
) -> RunObject:
    """Start an adopted run on the local worker (its writes wait for the commit); the run as
    created."""
    if starter is None:
        return run_to_wire(run)
    created = _as_created(run, adopted=True)  # before the executor can change the run
    await start_adopted(request, session, run.id, starter)
    return created


async def start_adopted(
    request: Request, session: AsyncSession, run_id: str, starter: Starter
) -> None:
    """Start a run the request's open transaction created on this process's worker: its
    writes wait for the commit, and it is dropped if the transaction rolls back."""
    gate = await starter.adopt(session, run_id)

    def committed() -> None:
        if not gate.done():
            gate.set_result(None)

    def rolled_back() -> None:
        if not gate.done():
            gate.set_exception(RunDiscarded(run_id))

    after_commit(request, committed, rolled_back)


def _as_created(run: Run, *, adopted: bool) -> RunObject:
    """The run as its creation answers: ``queued``, even when this process's worker took it
    at once (its row already says ``in_progress``)."""
    wire = run_to_wire(run)
    return wire.model_copy(update={"status": "queued", "started_at": None}) if adopted else wire


@router.post("/threads/runs", response_model=None)
async def create_thread_and_run(
    body: ThreadAndRunCreate, request: Request, session: SessionDep, project: ProjectDep
) -> Response:
    """Create a thread and run it (``stream: true`` answers with server-sent events)."""
    starter = starter_of(request)
    run = await service.create_thread_and_run(
        session, _settings(request), project, body, adopt=starter.id if starter else None
    )
    created = await _answer(request, session, run, starter)
    if body.stream:
        return _stream(request, run.id, 0)
    return _json(created)


@router.post("/threads/{thread_id}/runs", response_model=None)
async def create_run(
    thread_id: str,
    body: RunCreate,
    request: Request,
    project: ProjectDep,
    include: IncludeQuery = [],  # noqa: B006 - FastAPI copies defaults
) -> Response:
    """Create a run (``stream: true`` answers with server-sent events)."""
    starter = starter_of(request)
    include = service.check_include(include)
    if not body.additional_messages:
        # No transaction, two statements; this process's worker starts the run between them
        # or after them (service.create_run_direct).
        created: list[RunObject] = []
        run = await service.create_run_direct(
            request.app.state.engine,
            _settings(request),
            project,
            thread_id,
            body,
            include,
            starter,
            # The answer is taken before the executor holds the run.
            on_start=lambda run: created.append(_as_created(run, adopted=True)),
        )
        answer = created[0] if created else _as_created(run, adopted=False)
    else:
        # A transaction (as SessionDep's) only here: the path above needs none.
        adopt = starter.id if starter else None
        async with request_transaction(request) as session:
            run = await service.create_run(
                session, _settings(request), project, thread_id, body, include, adopt=adopt
            )
            answer = await _answer(request, session, run, starter)
    if body.stream:
        return _stream(request, run.id, 0)
    return _json(answer)


@router.get("/threads/{thread_id}/runs")
async def list_runs(
    thread_id: str, session: ReadSessionDep, project: ProjectDep, params: ListParamsDep
) -> ListPage[RunObject]:
    """List a thread's runs."""
    rows, has_more = await service.list_runs(session, project, thread_id, params)
    return ListPage[RunObject](**page_of([run_to_wire(r) for r in rows], has_more))


@router.get("/threads/{thread_id}/runs/{run_id}")
async def retrieve_run(
    thread_id: str,
    run_id: str,
    request: Request,
    response: Response,
    session: ReadSessionDep,
    project: ProjectDep,
) -> RunObject:
    """Retrieve a run (with a poll hint for the SDK's ``*_and_poll`` helpers)."""
    run = await service.get_run(session, project, thread_id, run_id)
    response.headers["openai-poll-after-ms"] = str(_settings(request).poll_after_ms)
    return run_to_wire(run)


@router.post("/threads/{thread_id}/runs/{run_id}")
async def modify_run(
    thread_id: str, run_id: str, body: RunModify, session: SessionDep, project: ProjectDep
) -> RunObject:
    """Modify a run's metadata."""
    return run_to_wire(await service.modify_run(session, project, thread_id, run_id, body))


@router.post("/threads/{thread_id}/runs/{run_id}/cancel")
async def cancel_run(
    thread_id: str, run_id: str, session: SessionDep, project: ProjectDep
) -> RunObject:
    """Cancel a run."""
    return run_to_wire(await service.cancel_run(session, project, thread_id, run_id))


@router.post("/threads/{thread_id}/runs/{run_id}/submit_tool_outputs", response_model=None)
async def submit_tool_outputs(
    thread_id: str,
    run_id: str,
    body: SubmitToolOutputs,
    request: Request,
    session: SessionDep,
    project: ProjectDep,
) -> Response:
    """Submit function results; the run resumes."""
    run, cursor = await service.submit_tool_outputs(
        session, _settings(request), project, thread_id, run_id, body
    )
    if body.stream:
        return _stream(request, run.id, cursor)
    return _json(run_to_wire(run))


@router.get("/threads/{thread_id}/runs/{run_id}/steps")
async def list_run_steps(
    thread_id: str,
    run_id: str,
    session: ReadSessionDep,
    project: ProjectDep,
    params: ListParamsDep,
    include: IncludeQuery = [],  # noqa: B006
) -> ListPage[RunStepObject]:
    """List a run's steps."""
    service.check_include(include)
    rows, has_more = await service.list_steps(session, project, thread_id, run_id, params)
    return ListPage[RunStepObject](**page_of([step_to_wire(s, include) for s in rows], has_more))


@router.get("/threads/{thread_id}/runs/{run_id}/steps/{step_id}")
async def retrieve_run_step(
    thread_id: str,
    run_id: str,
    step_id: str,
    session: ReadSessionDep,
    project: ProjectDep,
    include: IncludeQuery = [],  # noqa: B006
) -> RunStepObject:
    """Retrieve a run step."""
    service.check_include(include)
    step = await service.get_step(session, project, thread_id, run_id, step_id)
    return step_to_wire(step, include)
