"""Runs as the API sees them: create (enqueue), read, list, modify, cancel, submit tool
outputs, and steps. Execution happens in a worker (``assistd.engine``)."""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable
from typing import Any

from psycopg.errors import UniqueViolation
from sqlalchemy import and_, bindparam, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.orm import make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value

from assistd.assistants import service as assistants_service
from assistd.assistants.schemas import response_format_to_wire, tool_to_wire
from assistd.core import ids
from assistd.core.channels import Wake, queue_notification, wake_workers
from assistd.core.clock import now
from assistd.core.config import Settings
from assistd.core.db import execute_alone
from assistd.core.errors import ConflictingStateError, InvalidRequestError, NotFoundError
from assistd.core.pagination import ListParams, paginate
from assistd.messages import service as messages_service
from assistd.models import Assistant, Message, Run, RunStep, Thread
from assistd.models.rows import columns_of, loaded, plain_row, width
from assistd.models.run import ACTIVE_STATUSES
from assistd.runs import events, lifecycle, status
from assistd.runs.schemas import (
    FILE_SEARCH_CONTENT,
    RunCreate,
    RunModify,
    SubmitToolOutputs,
    ThreadAndRunCreate,
)
from assistd.runs.starter import EarlyStart, Starter
from assistd.runs.status import recorded
from assistd.runs.wire import run_data, step_data
from assistd.threads import service as threads_service
from assistd.threads.schemas import ThreadCreate
from assistd.vector_stores import service as vector_stores_service

INCLUDE_VALUES = (FILE_SEARCH_CONTENT,)


def check_include(include: list[str]) -> list[str]:
    """Validate ``include[]`` query values."""
    for value in include:
        if value not in INCLUDE_VALUES:
            raise InvalidRequestError(
                f"Invalid value for 'include': {value!r}. Supported values are: "
                f"'{FILE_SEARCH_CONTENT}'.",
                param="include",
                code="invalid_value",
            )
    return include


_ACTIVE_RUN = (
    select(Run.id)
    .where(Run.thread_id == Thread.id, Run.status.in_(ACTIVE_STATUSES))
    .limit(1)
    .scalar_subquery()
)
_LOCK_IDLE_THREAD = (
    select(Thread, _ACTIVE_RUN)
    .where(Thread.id == bindparam("thread_id"), Thread.project_id == bindparam("project_id"))
    .with_for_update(of=Thread)
)
_IDLE_THREAD_WITH_ASSISTANT = (
    select(Thread, _ACTIVE_RUN, Assistant)
    .outerjoin(
        Assistant,
        and_(
            Assistant.id == bindparam("assistant_id"),
            Assistant.project_id == bindparam("project_id"),
        ),
    )
    .where(Thread.id == bindparam("thread_id"), Thread.project_id == bindparam("project_id"))
)
_LOCK_IDLE_THREAD_WITH_ASSISTANT = _IDLE_THREAD_WITH_ASSISTANT.with_for_update(of=Thread)


@functools.cache
def _idle_thread_with_assistant_sql(messages: bool) -> str:
    """``_IDLE_THREAD_WITH_ASSISTANT`` by hand, for ``execute_alone``: the thread's columns
    (``columns_of``), the id of its active run (or NULL), the assistant's columns (NULLs
    when the project has no such assistant); with ``messages``, then the thread's messages
    (a JSON array of their columns, in order)."""
    active = ", ".join(f"'{s}'" for s in ACTIVE_STATUSES)
    thread_messages = (
        f", COALESCE((SELECT json_agg(json_build_array({columns_of(Message, 'm')})"
        " ORDER BY m.seq) FROM messages m WHERE m.thread_id = t.id), '[]'::json)"
        if messages
        else ""
    )
    return (
        f"SELECT {columns_of(Thread, 't')}, "
        f"(SELECT r.id FROM runs r WHERE r.thread_id = t.id AND r.status IN ({active}) LIMIT 1), "
        f"{columns_of(Assistant, 'a')}{thread_messages} "
        "FROM threads t LEFT JOIN assistants a "
        "ON a.id = %(assistant_id)s AND a.project_id = %(project_id)s "
        "WHERE t.id = %(thread_id)s AND t.project_id = %(project_id)s"
    )


async def lock_idle_thread(
    session: AsyncSession, project_id: str, thread_id: str, assistant_id: str | None = None
) -> tuple[Thread, Assistant | None]:
    """The thread, locked against concurrent run creation and message adds, in one round
    trip with the check that no run is active on it (404 when not the caller's,
    ``ActiveRunError`` while a run is active); with ``assistant_id``, the same round trip
    also reads the project's assistant (None when it has none with that id)."""
    params = {"thread_id": thread_id, "project_id": project_id}
    statement = _LOCK_IDLE_THREAD
    if assistant_id is not None:
        params["assistant_id"] = assistant_id
        statement = _LOCK_IDLE_THREAD_WITH_ASSISTANT
    row = (await session.execute(statement, params)).first()
    if row is None:
        raise NotFoundError.for_object("thread", thread_id, param="thread_id")
    thread: Thread = row[0]
    if row[1] is not None:
        raise ActiveRunError(thread_id, row[1])
    return thread, (row[2] if assistant_id is not None else None)


class ActiveRunError(ConflictingStateError):
    """The thread has an active run."""

    def __init__(self, thread_id: str, run_id: str) -> None:
        super().__init__(
            f"Thread {thread_id} already has an active run {run_id}.", param="thread_id"
        )
        self.thread_id, self.run_id = thread_id, run_id


def _tool_choice(value: Any, tools: list[dict[str, Any]]) -> Any:
    if value is None:
        return "auto"
    if isinstance(value, str):
        return value
    choice = value.model_dump(exclude_none=True)
    if choice["type"] == "function":
        names = {t["function"]["name"] for t in tools if t["type"] == "function"}
        if choice["function"]["name"] not in names:
            raise InvalidRequestError(
                f"Invalid 'tool_choice': no function named '{choice['function']['name']}' is "
                "among the run's tools.",
                param="tool_choice",
                code="invalid_value",
            )
    elif choice["type"] not in {t["type"] for t in tools}:
        raise InvalidRequestError(
            f"Invalid 'tool_choice': the tool '{choice['type']}' is not enabled for this run.",
            param="tool_choice",
            code="invalid_value",
        )
    return choice


def _keep(session: AsyncSession, *rows: object) -> None:
    """Hold ``rows`` for the rest of the session: its identity map references objects only
    weakly, and the run's context, read later in the same transaction (``Starter.adopt``),
    then finds the thread and the assistant there instead of reading them again."""
    session.info.setdefault("assistd.keep", []).extend(rows)


def _build_run(
    settings: Settings,
    project_id: str,
    thread_id: str,
    req: RunCreate | ThreadAndRunCreate,
    include: list[str],
    assistant: Assistant,
    *,
    prelude: list[tuple[str, dict[str, Any]]] | None = None,
    adopt: str | None = None,
) -> tuple[Run, list[tuple[str, dict[str, Any]]], tuple[str, str] | None]:
    """A new run (not yet inserted) from the request and the assistant, with what
    ``announce`` gives for it."""
    given = req.model_fields_set
    tools = (
        [tool_to_wire(t) for t in req.tools or []]
        if "tools" in given and req.tools is not None
        else assistant.tools
    )
    instructions = (
        req.instructions if req.instructions is not None else assistant.instructions or ""
    )
    extra = getattr(req, "additional_instructions", None)
    if extra:
        instructions = f"{instructions}\n\n{extra}" if instructions else extra
    run = run_row(
        settings,
        project_id,
        thread_id,
        assistant.id,
        model=req.model or assistant.model,
        instructions=instructions,
        tools=tools,
        metadata_=req.metadata or {},
        temperature=req.temperature if req.temperature is not None else assistant.temperature,
        top_p=req.top_p if req.top_p is not None else assistant.top_p,
        max_prompt_tokens=req.max_prompt_tokens,
        max_completion_tokens=req.max_completion_tokens,
        truncation_strategy=(
            req.truncation_strategy.model_dump()
            if req.truncation_strategy is not None
            else {"type": "auto", "last_messages": None}
        ),
        tool_choice=_tool_choice(req.tool_choice, tools),
        parallel_tool_calls=True if req.parallel_tool_calls is None else req.parallel_tool_calls,
        response_format=(
            response_format_to_wire(req.response_format)
            if req.response_format is not None
            else assistant.response_format
        ),
        reasoning_effort=getattr(req, "reasoning_effort", None) or assistant.reasoning_effort,
        include=include,
        streamed=bool(req.stream),
    )
    produced, notify = announce(run, prelude, adopt)
    return run, produced, notify


def run_row(
    settings: Settings,
    project_id: str,
    thread_id: str,
    assistant_id: str,
    *,
    api: str = "assistants",
    **fields: Any,
) -> Run:
    """A new queued run (not yet inserted); ``fields``: the columns its request decides."""
    created = now()
    return Run(
        id=ids.new_id(ids.RUN),
        project_id=project_id,
        thread_id=thread_id,
        assistant_id=assistant_id,
        created_at=created,
        status="queued",
        started_at=None,
        expires_at=created + settings.runs.expires_seconds,
        cancelled_at=None,
        failed_at=None,
        completed_at=None,
        required_action=None,
        last_error=None,
        incomplete_details=None,
        usage=None,
        worker_id=None,
        heartbeat_at=None,
        attempts=0,
        api=api,
        **fields,
    )


def announce(
    run: Run, prelude: list[tuple[str, dict[str, Any]]] | None, adopt: str | None
) -> tuple[list[tuple[str, dict[str, Any]]], tuple[str, str] | None]:
    """The stream events announcing a new run (only for a streamed one) and the queue
    notification to send with its insert (none when this process's worker ``adopt`` claims
    it at once: the row is then inserted already claimed)."""
    produced = list(prelude or [])
    if run.streamed:
        queued = run_data(run)
        produced += [("thread.run.created", queued), ("thread.run.queued", queued)]
    if adopt is not None:
        produced += recorded(
            run, "in_progress", worker_id=adopt, heartbeat_at=time.time(), attempts=1
        )
    notify = None if adopt is not None else queue_notification(Wake.QUEUED, run.id)
    return produced, notify


async def insert(
    session: AsyncSession,
    run: Run,
    produced: list[tuple[str, dict[str, Any]]],
    notify: tuple[str, str] | None,
) -> Run:
    """Insert a built run with its events and notification in the session's transaction."""
    try:
        (run.seq,) = await events.insert_with_events(
            session, plain_row(run), run.id, produced, returning=("seq",), notify=notify
        )
    except UniqueViolation as exc:
        _raise_if_active_run(run.thread_id, exc)
        raise
    # Inserted: the session holds it as a loaded row (no flush would insert it again).
    make_transient_to_detached(run)
    session.add(run)
    return run


def _raise_if_active_run(thread_id: str, exc: UniqueViolation) -> None:
    """A run insert that broke the one-active-run index: the 400 OpenAI answers."""
    if exc.diag.constraint_name == "uq_runs_one_active_per_thread":
        raise ConflictingStateError(
            f"Thread {thread_id} already has an active run.", param="thread_id"
        ) from None


async def _new_run(
    session: AsyncSession,
    settings: Settings,
    project_id: str,
    thread_id: str,
    req: RunCreate | ThreadAndRunCreate,
    include: list[str],
    *,
    prelude: list[tuple[str, dict[str, Any]]] | None = None,
    adopt: str | None = None,
    assistant: Assistant | None = None,
) -> Run:
    if assistant is None:
        assistant = await assistants_service.get(session, project_id, req.assistant_id)
    run, produced, notify = _build_run(
        settings, project_id, thread_id, req, include, assistant, prelude=prelude, adopt=adopt
    )
    return await insert(session, run, produced, notify)


async def create_run(
    session: AsyncSession,
    settings: Settings,
    project_id: str,
    thread_id: str,
    req: RunCreate,
    include: list[str],
    adopt: str | None = None,
) -> Run:
    """Enqueue a run on a thread (one active run per thread); with ``adopt``, claim it for
    that worker of this process right away."""
    thread, assistant = await lock_idle_thread(session, project_id, thread_id, req.assistant_id)
    if assistant is None:
        raise NotFoundError.for_object("assistant", req.assistant_id, param="assistant_id")
    # A run (and its additional messages) changes what the thread's next run is to read
    # (create_run_direct compares versions).
    thread.version = thread.version + 1
    _keep(session, thread, assistant)
    for i, message in enumerate(req.additional_messages or []):
        await messages_service.create(
            session, project_id, thread_id, message, param_prefix=f"additional_messages[{i}]."
        )
    await vector_stores_service.attach_to_thread(
        session,
        thread,
        messages_service.file_search_attachments(req.additional_messages or []),
        settings.embeddings,
    )
    return await _new_run(
        session, settings, project_id, thread_id, req, include, adopt=adopt, assistant=assistant
    )


async def create_run_direct(
    engine: AsyncEngine,
    settings: Settings,
    project_id: str,
    thread_id: str,
    req: RunCreate,
    include: list[str],
    local: Starter | None = None,
    on_start: Callable[[Run], None] | None = None,
) -> Run:
    """``create_run`` for a request without additional messages, without a transaction, in
    two hand-written statements (``execute_alone``: no ORM session; objects are built from
    the rows), each on a connection held only for it.

    The first reads the thread (with whether a run is active on it), the assistant and,
    when this process's worker executes the run (``local``), the thread's messages. The
    second locks the thread and inserts the run (``events.insert_run_locked``); the
    one-active-run index decides races. The run goes to ``local`` with the messages read:
    a streamed run before the insert (``local.early``: the model is called while the insert
    is on its way; the first token is what a stream waits for), any other once inserted (a
    burst of them answers its requests sooner); ``on_start`` sees the run just before it
    starts. A message added or deleted in between, or
    another run created (which may have ended, adding its answer, before this insert), is
    ordered by the thread lock and bumps the thread's ``version``, as this insert does: the
    version it leaves is not the one read plus one, and the run's context is read anew
    after the insert. Returns the run (detached)."""
    if req.additional_messages:
        raise ValueError("create_run_direct takes requests without additional messages")
    params = {"thread_id": thread_id, "project_id": project_id, "assistant_id": req.assistant_id}
    sql = _idle_thread_with_assistant_sql(local is not None)
    rows = await execute_alone(engine, sql, params)
    if not rows:
        raise NotFoundError.for_object("thread", thread_id, param="thread_id")
    row = rows[0]
    n, k = width(Thread), width(Assistant)
    thread = loaded(Thread, row[:n])
    active = row[n]
    assistant = None if row[n + 1] is None else loaded(Assistant, row[n + 1 : n + 1 + k])
    if active is not None:
        raise ActiveRunError(thread_id, active)
    if assistant is None:
        raise NotFoundError.for_object("assistant", req.assistant_id, param="assistant_id")
    run, produced, notify = _build_run(
        settings,
        project_id,
        thread_id,
        req,
        include,
        assistant,
        adopt=None if local is None else local.id,
    )
    make_transient_to_detached(run)
    messages = [] if local is None else [loaded(Message, values) for values in row[n + 1 + k]]
    early = None
    if local is not None and req.stream:
        if on_start is not None:
            on_start(run)
        early = local.start_early(run, thread, assistant, messages)
    insert = _insert_and_start(
        engine, run, thread, assistant, messages, produced, notify, local, early, on_start
    )
    try:
        # Shielded: a request cancelled meanwhile (a server shutting down) still starts the run
        # its insert made (claimed by this worker, it would otherwise wait for nobody).
        await asyncio.shield(insert)
    except UniqueViolation as exc:
        _raise_if_active_run(thread_id, exc)
        raise
    return run


async def _insert_and_start(
    engine: AsyncEngine,
    run: Run,
    thread: Thread,
    assistant: Assistant,
    messages: list[Message],
    produced: list[tuple[str, dict[str, Any]]],
    notify: tuple[str, str] | None,
    local: Starter | None,
    early: EarlyStart | None,
    on_start: Callable[[Run], None] | None,
) -> None:
    """``create_run_direct``'s insert, and then the start of the run (or the end of its
    early start)."""
    try:
        found = await events.insert_run_locked(
            engine, plain_row(run), run.project_id, run.thread_id, produced, notify
        )
    except BaseException:
        if early is not None:
            early.dropped()
        raise
    if found is None:  # deleted since it was read
        if early is not None:
            early.dropped()
        raise NotFoundError.for_object("thread", run.thread_id, param="thread_id")
    seq, version = found
    set_committed_value(run, "seq", seq)
    fresh = version == thread.version + 1  # (the insert counted itself)
    if early is not None:
        early.inserted(fresh)
    elif local is not None:
        if on_start is not None:
            on_start(run)
        local.start_inserted(run, thread, assistant, messages if fresh else None)


async def create_thread_and_run(
    session: AsyncSession,
    settings: Settings,
    project_id: str,
    req: ThreadAndRunCreate,
    adopt: str | None = None,
) -> Run:
    """Create a thread (with its messages) and enqueue a run on it."""
    assistant = await assistants_service.get(session, project_id, req.assistant_id)
    thread_req = req.thread or ThreadCreate()
    if req.tool_resources is not None and thread_req.tool_resources is None:
        thread_req = thread_req.model_copy(update={"tool_resources": req.tool_resources})
    thread = await threads_service.create(
        session, project_id, thread_req, settings.embeddings, param_prefix="thread."
    )
    prelude = (
        [("thread.created", threads_service.to_wire(thread).model_dump(mode="json"))]
        if req.stream
        else []
    )
    _keep(session, thread, assistant)
    return await _new_run(
        session,
        settings,
        project_id,
        thread.id,
        req,
        [],
        prelude=prelude,
        adopt=adopt,
        assistant=assistant,
    )


async def get_run(session: AsyncSession, project_id: str, thread_id: str, run_id: str) -> Run:
    """A run of the caller's thread, or 404."""
    run = await session.scalar(
        select(Run).where(
            Run.id == run_id, Run.thread_id == thread_id, Run.project_id == project_id
        )
    )
    if run is None:
        raise NotFoundError.for_object("run", run_id, param="run_id")
    return run


async def list_runs(
    session: AsyncSession, project_id: str, thread_id: str, params: ListParams
) -> tuple[list[Run], bool]:
    """A page of the thread's runs."""
    await messages_service.require_thread(session, project_id, thread_id)
    return await paginate(session, Run, [Run.thread_id == thread_id], params)


async def modify_run(
    session: AsyncSession, project_id: str, thread_id: str, run_id: str, req: RunModify
) -> Run:
    """Replace a run's metadata."""
    run = await get_run(session, project_id, thread_id, run_id)
    if "metadata" in req.model_fields_set:
        run.metadata_ = req.metadata or {}
    await session.flush()
    return run


async def _lock_own_run(session: AsyncSession, project_id: str, thread_id: str, run_id: str) -> Run:
    await get_run(session, project_id, thread_id, run_id)
    return await lifecycle.lock_run(session, run_id)


async def cancel_run(session: AsyncSession, project_id: str, thread_id: str, run_id: str) -> Run:
    """Cancel: at once when nobody executes the run, through its worker otherwise."""
    run = await _lock_own_run(session, project_id, thread_id, run_id)
    await cancel_locked(session, run)
    return run


async def cancel_locked(session: AsyncSession, run: Run) -> None:
    """Cancel a run this transaction has locked (``status.cancel``), record its events and
    wake its worker when it executes somewhere."""
    produced, wake = await status.cancel(session, run)
    await events.append(session, run.id, produced)
    if wake:
        await wake_workers(session, Wake.CANCEL, run.id)
    await session.flush()


async def submit_tool_outputs(
    session: AsyncSession,
    settings: Settings,
    project_id: str,
    thread_id: str,
    run_id: str,
    req: SubmitToolOutputs,
) -> tuple[Run, int]:
    """Record the function results and requeue the run; returns the run and the stream
    cursor (the last event before this submission)."""
    run = await _lock_own_run(session, project_id, thread_id, run_id)
    if run.status != "requires_action" or not run.required_action:
        raise ConflictingStateError(
            f'Runs in status "{run.status}" do not accept tool outputs.', param="run_id"
        )
    pending = [c["id"] for c in run.required_action["submit_tool_outputs"]["tool_calls"]]
    outputs: dict[str, str] = {}
    for i, item in enumerate(req.tool_outputs):
        if not item.tool_call_id:
            raise InvalidRequestError(
                f"Missing required parameter: 'tool_outputs[{i}].tool_call_id'.",
                param=f"tool_outputs[{i}].tool_call_id",
                code="missing_required_parameter",
            )
        if item.tool_call_id not in pending:
            raise InvalidRequestError(
                f"Invalid 'tool_outputs[{i}].tool_call_id': no pending tool call has id "
                f"'{item.tool_call_id}'.",
                param=f"tool_outputs[{i}].tool_call_id",
                code="invalid_value",
            )
        if item.tool_call_id in outputs:
            raise InvalidRequestError(
                f"Duplicate output for tool call '{item.tool_call_id}'.",
                param=f"tool_outputs[{i}].tool_call_id",
                code="invalid_value",
            )
        outputs[item.tool_call_id] = item.output or ""
    missing = [cid for cid in pending if cid not in outputs]
    if missing:
        raise InvalidRequestError(
            f"Expected tool outputs for call_ids {pending}, got {list(outputs)}; missing "
            f"{missing}.",
            param="tool_outputs",
            code="invalid_value",
        )
    # Only a streamed resumption records (and reads from) the run's events.
    run.streamed = bool(req.stream)
    cursor = await events.last_event_id(session, run.id) if run.streamed else 0
    step = await session.scalar(
        select(RunStep)
        .where(
            RunStep.run_id == run.id, RunStep.type == "tool_calls", RunStep.status == "in_progress"
        )
        .order_by(RunStep.seq.desc())
        .limit(1)
    )
    produced: list[tuple[str, dict[str, Any]]] = []
    if step is not None:
        details = dict(step.step_details)
        calls = []
        for call in details.get("tool_calls", []):
            call = dict(call)
            if call.get("type") == "function" and call["id"] in outputs:
                call["function"] = {**call["function"], "output": outputs[call["id"]]}
            calls.append(call)
        step.step_details = {**details, "tool_calls": calls}
        step.status = "completed"
        step.completed_at = now()
        if run.streamed:
            produced.append(("thread.run.step.completed", step_data(step, run.include)))
    produced += recorded(run, "queued", expires_at=now() + settings.runs.expires_seconds)
    await events.append(session, run.id, produced)
    await wake_workers(session, Wake.QUEUED, run.id)
    await session.flush()
    return run, cursor


async def list_steps(
    session: AsyncSession, project_id: str, thread_id: str, run_id: str, params: ListParams
) -> tuple[list[RunStep], bool]:
    """A page of the run's steps."""
    await get_run(session, project_id, thread_id, run_id)
    return await paginate(session, RunStep, [RunStep.run_id == run_id], params)


async def get_step(
    session: AsyncSession, project_id: str, thread_id: str, run_id: str, step_id: str
) -> RunStep:
    """A step of the caller's run, or 404."""
    await get_run(session, project_id, thread_id, run_id)
    step = await session.scalar(
        select(RunStep).where(RunStep.id == step_id, RunStep.run_id == run_id)
    )
    if step is None:
        raise NotFoundError.for_object("run step", step_id, param="step_id")
    return step
