"""Responses: create (a run on a thread of the response's own), read, delete, cancel, and
the items a response's context is made of. Execution is the run engine's."""

from __future__ import annotations

import base64
import contextlib
import mimetypes
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import delete, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from assistd.containers import service as containers_service
from assistd.containers.schemas import ContainerCreate
from assistd.conversations import service as conversations_service
from assistd.core import ids
from assistd.core.clock import now
from assistd.core.config import Settings
from assistd.core.errors import InvalidRequestError, NotFoundError
from assistd.core.pagination import ListParams
from assistd.files.storage import FileStorage
from assistd.llm.chat import BackendRouter, ChatRequest, Usage
from assistd.models import File, Message, Run, RunStep, StoredResponse, Thread
from assistd.responses.items import call_item, chat_messages, compaction_item, message_item
from assistd.responses.schemas import (
    CodeInterpreterTool,
    CompactRequest,
    FileSearchTool,
    FunctionTool,
    ResponseCreate,
    Tool,
    ToolCallItem,
    parse_tools,
)
from assistd.responses.wire import response_object
from assistd.responses.wire import usage as response_usage
from assistd.runs import lifecycle, status
from assistd.runs import service as runs_service
from assistd.runs.schemas import FILE_SEARCH_CONTENT
from assistd.runs.wire import run_data
from assistd.vector_stores import service as vector_stores_service

IMAGE_TYPES = {"png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "gif": "image/gif"}
STEP_ITEM_STATUS = {"completed": "completed", "in_progress": "in_progress"}


CREATED = "assistd.responses_created"
"""``session.info`` key: run id → the response this transaction created for it (its run's
context is read in the same transaction without reading the row back)."""


def check_include(include: list[str]) -> list[str]:
    """Validate ``include`` values (the Responses API's list)."""
    return conversations_service.check_include(include)


# ---- create ----------------------------------------------------------------------------------


def _run_tools(tools: list[Tool]) -> list[dict[str, Any]]:
    """The tools in the run engine's (Assistants) shape."""
    out: list[dict[str, Any]] = []
    for tool in tools:
        if isinstance(tool, FunctionTool):
            fn = tool.model_dump(exclude={"type"}, exclude_none=True)
            out.append({"type": "function", "function": fn})
        elif isinstance(tool, FileSearchTool):
            settings: dict[str, Any] = {}
            if tool.max_num_results is not None:
                settings["max_num_results"] = tool.max_num_results
            if tool.filters is not None:
                settings["filters"] = tool.filters.model_dump(exclude_none=True)
            if tool.ranking_options is not None:
                ranker = tool.ranking_options.ranker
                settings["ranking_options"] = {
                    "ranker": "default_2024_08_21" if ranker == "auto" else ranker,
                    "score_threshold": tool.ranking_options.score_threshold,
                }
            out.append({"type": "file_search", "file_search": settings})
        else:
            out.append({"type": "code_interpreter"})
    return out


def _wire_tools(tools: list[Tool]) -> list[dict[str, Any]]:
    """The tools as the response echoes them (every field the SDK's types show)."""
    out: list[dict[str, Any]] = []
    for tool in tools:
        if isinstance(tool, FunctionTool):
            out.append(
                {
                    "type": "function",
                    "name": tool.name,
                    "description": tool.description,
                    "parameters": tool.parameters,
                    "strict": True if tool.strict is None else tool.strict,
                }
            )
        elif isinstance(tool, FileSearchTool):
            ranking = tool.ranking_options
            out.append(
                {
                    "type": "file_search",
                    "vector_store_ids": tool.vector_store_ids,
                    "filters": None if tool.filters is None else tool.filters.model_dump(),
                    "max_num_results": tool.max_num_results or 20,
                    "ranking_options": {
                        "ranker": ranking.ranker if ranking else "auto",
                        "score_threshold": ranking.score_threshold if ranking else 0.0,
                    },
                }
            )
        else:
            container = tool.container
            out.append(
                {
                    "type": "code_interpreter",
                    "container": container
                    if isinstance(container, str)
                    else container.model_dump(exclude_none=True),
                }
            )
    return out


def _tool_choice(value: str | dict[str, Any] | None, tools: list[Tool]) -> tuple[Any, Any]:
    """``tool_choice`` as echoed, and as the run engine takes it."""
    if value is None:
        return "auto", "auto"
    if isinstance(value, str):
        if value not in ("auto", "none", "required"):
            raise InvalidRequestError(
                f"Invalid value: '{value}'. Supported values are: 'auto', 'none' and 'required'.",
                param="tool_choice",
                code="invalid_value",
            )
        return value, value
    kind = value.get("type")
    if kind == "function":
        name = value.get("name")
        if name not in {t.name for t in tools if isinstance(t, FunctionTool)}:
            raise InvalidRequestError(
                f"Tool choice '{name}' not found in 'tools' parameter.",
                param="tool_choice",
                code="invalid_value",
            )
        return {"type": "function", "name": name}, {"type": "function", "function": {"name": name}}
    if kind in ("file_search", "code_interpreter"):
        if kind not in {t.type for t in tools}:
            raise InvalidRequestError(
                f"Tool choice '{kind}' not found in 'tools' parameter.",
                param="tool_choice",
                code="invalid_value",
            )
        return {"type": kind}, {"type": kind}
    if kind == "allowed_tools":
        mode = value.get("mode", "auto")
        if mode not in ("auto", "required"):
            raise InvalidRequestError(
                f"Invalid value: '{mode}'. Supported values are: 'auto' and 'required'.",
                param="tool_choice.mode",
                code="invalid_value",
            )
        return value, mode
    raise InvalidRequestError(
        f"Invalid value for 'tool_choice.type': '{kind}'.",
        param="tool_choice.type",
        code="invalid_value",
    )


def _response_format(req: ResponseCreate) -> tuple[dict[str, Any], Any]:
    """``text`` as echoed, and the backend's ``response_format``."""
    fmt = req.text.format if req.text and req.text.format else None
    verbosity = (req.text.verbosity if req.text else None) or "medium"
    if fmt is None or fmt.type == "text":
        return {"format": {"type": "text"}, "verbosity": verbosity}, "auto"
    if fmt.type == "json_object":
        return {"format": {"type": "json_object"}, "verbosity": verbosity}, {"type": "json_object"}
    schema = {"name": fmt.name, "schema": fmt.schema_, "strict": bool(fmt.strict)}
    if fmt.description is not None:
        schema["description"] = fmt.description
    echoed = {"type": "json_schema", **schema}
    return {"format": echoed, "verbosity": verbosity}, {
        "type": "json_schema",
        "json_schema": schema,
    }


async def input_shapes(
    session: AsyncSession, project_id: str, req: ResponseCreate
) -> list[dict[str, Any]]:
    """The request's input as stored items, each with a new id."""
    if req.input is None:
        return []
    if isinstance(req.input, str):
        shape = {
            "type": "message",
            "status": "completed",
            "role": "user",
            "content": [{"type": "input_text", "text": req.input}],
        }
        return [conversations_service.with_id(shape)]
    out: list[dict[str, Any]] = []
    for i, item in enumerate(req.input):
        if isinstance(item, ToolCallItem):
            if item.type != "reasoning":  # reasoning the backend cannot take back is dropped
                out.append(conversations_service.with_id(item.model_dump(exclude_none=True)))
            continue
        shape = await conversations_service.stored_shape(session, project_id, item, f"input[{i}]")
        out.append(conversations_service.with_id(shape))
    return out


async def get_stored(
    session: AsyncSession, project_id: str, response_id: str, param: str = "response_id"
) -> StoredResponse:
    """A stored response of the project, or 404."""
    row = await session.scalar(
        select(StoredResponse).where(
            StoredResponse.id == response_id,
            StoredResponse.project_id == project_id,
            StoredResponse.store.is_(True),
        )
    )
    if row is None:
        raise NotFoundError(f"Response with id '{response_id}' not found.", param=param)
    return row


async def create(
    session: AsyncSession,
    settings: Settings,
    storage: FileStorage,
    project_id: str,
    req: ResponseCreate,
    *,
    adopt: str | None = None,
) -> tuple[StoredResponse, Run]:
    """Store the response and queue its run (with ``adopt``, claimed by this process's worker
    at once); a streamed or waited-for response records its stream events."""
    if req.previous_response_id is not None and req.conversation is not None:
        raise InvalidRequestError(
            "Mutually exclusive parameters: Ensure you are only providing one of: "
            "'previous_response_id' or 'conversation'.",
            param="previous_response_id",
            code="mutually_exclusive_parameters",
        )
    include = check_include(list(req.include or []))
    tools = parse_tools(req.tools or [])
    echoed_choice, run_choice = _tool_choice(req.tool_choice, tools)
    text_config, response_format = _response_format(req)
    background = bool(req.background)
    store = True if req.store is None else req.store
    if background and not store:
        raise InvalidRequestError(
            "Background responses must be stored: 'background' needs 'store' true.",
            param="background",
            code="invalid_value",
        )
    previous = None
    if req.previous_response_id is not None:
        previous = await get_stored(
            session, project_id, req.previous_response_id, "previous_response_id"
        )
    conversation_id = None
    if req.conversation is not None:
        conversation_id = (
            req.conversation if isinstance(req.conversation, str) else req.conversation.id
        )
        await conversations_service.get(session, project_id, conversation_id, lock=True)
    stores: list[str] = []
    container_id: str | None = None
    for i, tool in enumerate(tools):
        if isinstance(tool, FileSearchTool):
            for j, store_id in enumerate(tool.vector_store_ids):
                try:
                    await vector_stores_service.get(session, project_id, store_id)
                except NotFoundError:
                    raise NotFoundError.for_object(
                        "vector store", store_id, param=f"tools[{i}].vector_store_ids[{j}]"
                    ) from None
                stores.append(store_id)
        elif isinstance(tool, CodeInterpreterTool):
            container_id = await _container(session, storage, project_id, tool, i)
    items = await input_shapes(session, project_id, req)
    _refuse_file_urls(items)
    response_id = ids.new_id(ids.RESPONSE)
    thread = Thread(
        id=ids.new_id(ids.THREAD),
        project_id=project_id,
        created_at=now(),
        metadata_={},
        tool_resources={"file_search": {"vector_store_ids": stores}} if stores else {},
    )
    session.add(thread)
    await session.flush()
    run = runs_service.run_row(
        settings,
        project_id,
        thread.id,
        "",
        api="responses",
        model=req.model,
        instructions=req.instructions or "",
        tools=_run_tools(tools),
        metadata_={},
        temperature=req.temperature,
        top_p=req.top_p,
        max_prompt_tokens=None,
        max_completion_tokens=req.max_output_tokens,
        truncation_strategy={"type": req.truncation or "disabled", "last_messages": None},
        tool_choice=run_choice,
        parallel_tool_calls=True if req.parallel_tool_calls is None else req.parallel_tool_calls,
        response_format=response_format,
        reasoning_effort=req.reasoning.effort if req.reasoning else None,
        include=[FILE_SEARCH_CONTENT],
        # Only a stream or a waiting request reads the events.
        streamed=bool(req.stream) or not background,
    )
    context_seq = None
    if conversation_id is not None:
        rows = await conversations_service.append(session, project_id, conversation_id, items)
        context_seq = rows[-1].seq if rows else await _last_seq(session, conversation_id)
    params: dict[str, Any] = {
        "model": req.model,
        "instructions": req.instructions,
        "tools": _wire_tools(tools),
        "tool_choice": echoed_choice,
        "parallel_tool_calls": run.parallel_tool_calls,
        "max_output_tokens": req.max_output_tokens,
        "max_tool_calls": req.max_tool_calls,
        "temperature": 1.0 if req.temperature is None else req.temperature,
        "top_p": 1.0 if req.top_p is None else req.top_p,
        "top_logprobs": req.top_logprobs or 0,
        "text": text_config,
        "reasoning": req.reasoning.model_dump() if req.reasoning else None,
        "truncation": req.truncation or "disabled",
        "metadata": req.metadata or {},
        "user": req.user,
        "safety_identifier": req.safety_identifier,
        "prompt_cache_key": req.prompt_cache_key,
        "service_tier": req.service_tier or "default",
        "include": include,
        "stream": bool(req.stream),
    }
    row = StoredResponse(
        id=response_id,
        project_id=project_id,
        created_at=run.created_at,
        thread_id=thread.id,
        run_id=run.id,
        previous_response_id=previous.id if previous is not None else None,
        conversation_id=conversation_id,
        container_id=container_id,
        context_seq=context_seq,
        input=items,
        params=params,
        store=store,
        background=background,
    )
    session.add(row)
    await session.flush()
    session.info.setdefault(CREATED, {})[run.id] = row
    produced, notify = runs_service.announce(run, None, adopt)
    await runs_service.insert(session, run, produced, notify)
    return row, run


def _refuse_file_urls(items: list[dict[str, Any]]) -> None:
    """This server does not fetch files from URLs (it would reach whatever the URL names,
    the hosts of its own network included)."""
    for i, item in enumerate(items):
        content = item.get("content")
        for j, part in enumerate(content if isinstance(content, list) else []):
            if part.get("type") == "input_file" and part.get("file_url"):
                raise InvalidRequestError(
                    "'file_url' is not supported by this server: upload the file and pass "
                    "'file_id', or pass its bytes as 'file_data'.",
                    param=f"input[{i}].content[{j}].file_url",
                    code="unsupported_value",
                )


async def _last_seq(session: AsyncSession, conversation_id: str) -> int:
    found = await session.scalar(
        text("SELECT coalesce(max(seq), 0) FROM conversation_items WHERE conversation_id = :c"),
        {"c": conversation_id},
    )
    return int(found or 0)


async def _container(
    session: AsyncSession, storage: FileStorage, project_id: str, tool: CodeInterpreterTool, i: int
) -> str:
    """The container a code_interpreter tool names, or a new one for ``auto``."""
    if isinstance(tool.container, str):
        try:
            found = await containers_service.get(session, project_id, tool.container)
        except NotFoundError:
            raise NotFoundError.for_object(
                "container", tool.container, param=f"tools[{i}].container"
            ) from None
        return found.id
    made = await containers_service.create(
        session,
        storage,
        project_id,
        ContainerCreate(
            name="response",
            file_ids=tool.container.file_ids,
            memory_limit=tool.container.memory_limit,
        ),
    )
    return made.id


# ---- read --------------------------------------------------------------------------------------


async def outputs_of(session: AsyncSession, run_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
    """Each run's output items, from its steps and messages."""
    if not run_ids:
        return {}
    steps = list(
        await session.scalars(
            select(RunStep).where(RunStep.run_id.in_(run_ids)).order_by(RunStep.seq)
        )
    )
    message_ids = [
        s.step_details["message_creation"]["message_id"]
        for s in steps
        if s.step_details.get("type") == "message_creation"
    ]
    messages = {
        m.id: m for m in await session.scalars(select(Message).where(Message.id.in_(message_ids)))
    }
    containers = dict(
        (
            await session.execute(
                select(StoredResponse.run_id, StoredResponse.container_id).where(
                    StoredResponse.run_id.in_(run_ids)
                )
            )
        ).all()
    )
    out: dict[str, list[dict[str, Any]]] = {run_id: [] for run_id in run_ids}
    for step in steps:
        container_id = containers.get(step.run_id)
        details = step.step_details
        if details.get("type") == "message_creation":
            message = messages.get(details["message_creation"]["message_id"])
            if message is not None:
                out[step.run_id].append(
                    message_item(message.id, message.status, message.content, container_id)
                )
            continue
        state = STEP_ITEM_STATUS.get(step.status, "incomplete")
        for call in details.get("tool_calls", []):
            out[step.run_id].append(call_item(call, state, container_id))
    return out


async def snapshot(
    session: AsyncSession, row: StoredResponse, include: list[str] | None = None
) -> dict[str, Any]:
    """The response object as it stands."""
    run = await session.get_one(Run, row.run_id)
    output = (await outputs_of(session, [row.run_id]))[row.run_id]
    return response_object(row, run_data(run), output, include)


async def retrieve(
    session: AsyncSession, project_id: str, response_id: str, include: list[str]
) -> dict[str, Any]:
    """A stored response (404 when unknown, another project's, or not stored)."""
    row = await get_stored(session, project_id, response_id)
    return await snapshot(session, row, include)


async def delete_response(session: AsyncSession, project_id: str, response_id: str) -> None:
    """Delete a response: its thread, and with it its run, messages and steps."""
    row = await get_stored(session, project_id, response_id)
    await session.execute(delete(Thread).where(Thread.id == row.thread_id))


async def cancel(session: AsyncSession, project_id: str, response_id: str) -> StoredResponse:
    """Cancel a background response (at once when queued, through its worker otherwise)."""
    row = await get_stored(session, project_id, response_id)
    if not row.background:
        raise InvalidRequestError(
            "Only responses created with 'background' set to true can be cancelled.",
            param="response_id",
            code="invalid_value",
        )
    run = await lifecycle.lock_run(session, row.run_id)
    if run.status in status.EXECUTING or run.status == "queued":
        await runs_service.cancel_locked(session, run)
    return row


async def input_items(
    session: AsyncSession, project_id: str, response_id: str, params: ListParams
) -> tuple[list[dict[str, Any]], bool]:
    """A page of the response's input items (newest first by default)."""
    row = await get_stored(session, project_id, response_id)
    items = list(row.input)
    if params.order == "desc":
        items.reverse()
    position = {item.get("id"): i for i, item in enumerate(items)}
    start, end = 0, len(items)
    if params.after is not None:
        start = position.get(params.after, len(items) - 1) + 1
    if params.before is not None:
        end = position.get(params.before, 0)
    page = items[start:end]
    if params.before is not None and params.after is None:
        chosen = page[-params.limit :]
        return chosen, len(page) > len(chosen)
    return page[: params.limit], len(page) > params.limit


# ---- the context of a response's run -----------------------------------------------------------

_CHAIN = text(
    "WITH RECURSIVE chain(id, previous_response_id, run_id, input, depth) AS ("
    " SELECT id, previous_response_id, run_id, input, 0 FROM responses WHERE id = :start"
    " UNION ALL SELECT r.id, r.previous_response_id, r.run_id, r.input, c.depth + 1"
    " FROM responses r JOIN chain c ON r.id = c.previous_response_id"
    " WHERE r.project_id = :project)"
    " SELECT run_id, input FROM chain ORDER BY depth DESC"
)


async def context_items(
    session: AsyncSession, run: Run
) -> tuple[StoredResponse, list[dict[str, Any]]]:
    """The response a run executes, and the items its model sees (``context_items_of``)."""
    row = session.info.get(CREATED, {}).get(run.id)
    if row is None:
        row = await session.scalar(select(StoredResponse).where(StoredResponse.run_id == run.id))
    if row is None:
        raise LookupError(f"run {run.id} executes no response")
    return row, await context_items_of(session, row)


async def context_items_of(session: AsyncSession, row: StoredResponse) -> list[dict[str, Any]]:
    """The items a response's model sees, in order: the conversation's (this input
    included), or the previous responses' inputs and outputs and then this input."""
    if row.conversation_id is not None and row.context_seq is not None:
        return await conversations_service.items_until(
            session, row.conversation_id, row.context_seq
        )
    items: list[dict[str, Any]] = []
    if row.previous_response_id is not None:
        chain = (
            await session.execute(
                _CHAIN, {"start": row.previous_response_id, "project": row.project_id}
            )
        ).all()
        outputs = await outputs_of(session, [r[0] for r in chain])
        for run_id, given in chain:
            items += list(given) + outputs.get(run_id, [])
    return items + list(row.input)


async def attachments(
    session: AsyncSession,
    storage: FileStorage,
    project_id: str,
    items: list[dict[str, Any]],
    extract: Callable[[str, bytes], Awaitable[str]] | None = None,
) -> tuple[dict[str, str], dict[str, str]]:
    """Images by file id as data URLs, and the text of ``input_file`` parts (headed by the
    file's name) by their file id or filename (read by ``extract``; UTF-8 without it)."""
    image_ids: set[str] = set()
    file_parts: list[dict[str, Any]] = []
    for item in items:
        content = item.get("content")
        if item.get("type") != "message" or not isinstance(content, list):
            continue
        for part in content:
            if part.get("type") == "input_image" and part.get("file_id"):
                image_ids.add(part["file_id"])
            elif part.get("type") == "input_file":
                file_parts.append(part)
    wanted = image_ids | {p["file_id"] for p in file_parts if p.get("file_id")}
    rows: dict[str, File] = {}
    if wanted:
        rows = {
            f.id: f
            for f in await session.scalars(
                select(File).where(File.id.in_(wanted), File.project_id == project_id)
            )
        }
    images: dict[str, str] = {}
    for file_id in image_ids:
        f = rows.get(file_id)
        if f is not None:
            ext = f.filename.rsplit(".", 1)[-1].lower() if "." in f.filename else ""
            mime = IMAGE_TYPES.get(ext) or mimetypes.guess_type(f.filename)[0] or "image/png"
            data = base64.b64encode(await storage.read(f.storage_key)).decode()
            images[file_id] = f"data:{mime};base64,{data}"

    async def text_of(filename: str, data: bytes) -> str:
        if extract is None:
            text = data.decode("utf-8", errors="replace")
        else:
            text = await extract(filename, data)
        return f"[file {filename}]\n" + text.replace("\x00", "")

    texts: dict[str, str] = {}
    for part in file_parts:
        if part.get("file_id") and part["file_id"] in rows:
            row = rows[part["file_id"]]
            texts[row.id] = await text_of(row.filename, await storage.read(row.storage_key))
        elif part.get("file_data"):
            name = str(part.get("filename") or "")
            texts[name] = await text_of(name or "file.txt", _decoded(str(part["file_data"])))
    return images, texts


def _decoded(data: str) -> bytes:
    """``file_data``: a data URL or bare base64, as bytes."""
    payload = data.split(",", 1)[1] if data.startswith("data:") else data
    try:
        return base64.b64decode(payload)
    except ValueError:
        return data.encode()


async def append_output(session: AsyncSession, run: Run) -> None:
    """Add a conversation response's output to its conversation."""
    row = await session.scalar(select(StoredResponse).where(StoredResponse.run_id == run.id))
    if row is None or row.conversation_id is None:
        return
    output = (await outputs_of(session, [run.id]))[run.id]
    if output:
        await conversations_service.append(session, row.project_id, row.conversation_id, output)


COMPACT_PROMPT = (
    "Summarize the conversation above for your own later use: the user's goals, the facts, "
    "decisions and results so far, and what is still open. Be complete but brief; write the "
    "summary only."
)


async def compact(
    session: AsyncSession, router: BackendRouter, project_id: str, req: CompactRequest
) -> dict[str, Any]:
    """The context compacted: the user's messages kept, everything else summarized by the
    model into one ``compaction`` item."""
    items: list[dict[str, Any]] = []
    if req.previous_response_id is not None:
        previous = await get_stored(
            session, project_id, req.previous_response_id, "previous_response_id"
        )
        items = await context_items_of(session, previous)
    items += await input_shapes(
        session, project_id, ResponseCreate(model=req.model, input=req.input)
    )
    messages = chat_messages(items)
    if req.instructions:
        messages.insert(0, {"role": "system", "content": req.instructions})
    messages.append({"role": "user", "content": COMPACT_PROMPT})
    summary, usage = "", Usage()
    backend = router.backend_for(req.model)
    async with contextlib.aclosing(
        backend.stream(ChatRequest(model=req.model, messages=messages))
    ) as chunks:
        async for chunk in chunks:
            summary += chunk.content or ""
            if chunk.usage is not None:
                usage = chunk.usage
    kept = [i for i in items if i.get("type", "message") == "message" and i.get("role") == "user"]
    return {
        "id": ids.new_id(ids.RESPONSE),
        "object": "response.compaction",
        "created_at": now(),
        "output": [*kept, compaction_item(summary)],
        "usage": response_usage(
            {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens}
        ),
    }


UNSTORED_GRACE_SECONDS = 60
"""An unstored response's rows outlive its end this long (a stream tail may still read)."""

_PRUNE = text(
    "DELETE FROM threads t USING responses r JOIN runs u ON u.id = r.run_id"
    " WHERE t.id = r.thread_id AND ("
    " (NOT r.store AND u.status IN ('completed', 'incomplete', 'failed', 'cancelled', 'expired')"
    "  AND coalesce(u.completed_at, u.failed_at, u.cancelled_at, u.started_at, u.created_at)"
    "  < :unstored)"
    " OR r.created_at < :stored)"
)


async def prune(session: AsyncSession, retention_days: int) -> int:
    """Delete responses kept past their time: unstored ones once ended, stored ones after
    the retention; how many went."""
    stamp = now()
    result = await session.execute(
        _PRUNE,
        {"unstored": stamp - UNSTORED_GRACE_SECONDS, "stored": stamp - retention_days * 86400},
    )
    return int(getattr(result, "rowcount", 0) or 0)


def input_tokens_object(count: int) -> dict[str, Any]:
    """The answer of ``POST /responses/input_tokens``."""
    return {"object": "response.input_tokens", "input_tokens": count}
