"""Build the chat-completions request of a run turn from the run, its thread and its steps."""

from __future__ import annotations

import base64
import functools
import json
import mimetypes
import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from assistd.core.db import execute_alone
from assistd.files.storage import FileStorage
from assistd.llm import tokens
from assistd.models import (
    Assistant,
    File,
    Message,
    Run,
    RunStep,
    StoredResponse,
    Thread,
    VectorStore,
)
from assistd.models.rows import columns_of, loaded
from assistd.responses import items as response_items
from assistd.responses import service as responses_service
from assistd.sandbox.paths import data_path
from assistd.vector_stores.parser_process import ParserPool
from assistd.vector_stores.parsing import ParseError

FILE_TEXT_CHUNK_TOKENS = 4096

IMAGE_TYPES = {
    "png": "image/png",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "gif": "image/gif",
    "webp": "image/webp",
}


@dataclass
class SandboxFile:
    """A file the code_interpreter sandbox gets, and where."""

    file_id: str
    path: str
    storage_key: str


@dataclass
class RunContext:
    """What a run turn needs, loaded in one transaction."""

    run: Run
    history: list[Message]
    steps: list[RunStep]
    own_messages: dict[str, Message]
    images: dict[str, str] = field(default_factory=dict)
    """file id → data URL for image_file parts."""
    vector_stores: list[tuple[str, str, int]] = field(default_factory=list)
    """(id, embedding model, dimension) of the stores file_search may search."""
    sandbox_files: list[SandboxFile] = field(default_factory=list)
    """Files code_interpreter places under /mnt/data."""
    response: StoredResponse | None = None
    """The response the run executes (a Responses API run)."""
    prelude: list[dict[str, Any]] | None = None
    """A response's context before its own turns, as chat messages (instead of a thread's
    history)."""

    @property
    def code_interpreter(self) -> bool:
        """Whether the run has the code_interpreter tool."""
        return any(tool.get("type") == "code_interpreter" for tool in self.run.tools)

    def sandbox_paths(self) -> dict[str, str]:
        """/mnt/data path → file id of files the code wrote in this run's earlier calls."""
        out: dict[str, str] = {}
        for step in self.steps:
            for call in step.step_details.get("tool_calls", []):
                out.update(call.get("_files") or {})
        return out

    @property
    def file_search(self) -> dict[str, Any] | None:
        """The run's file_search tool settings, when it has the tool and stores to search."""
        for tool in self.run.tools:
            if tool.get("type") == "file_search" and self.vector_stores:
                settings: dict[str, Any] = tool.get("file_search") or {}
                return settings
        return None

    def search_calls(self) -> list[dict[str, Any]]:
        """The run's file_search calls so far, in order (their position is the citation
        marker's first number)."""
        return [
            call
            for step in self.steps
            if step.step_details.get("type") == "tool_calls"
            for call in step.step_details.get("tool_calls", [])
            if call.get("type") == "file_search"
        ]


async def load_context(
    session: AsyncSession,
    storage: FileStorage,
    run_id: str,
    *,
    fresh: bool = False,
    parsers: ParserPool | None = None,
) -> RunContext:
    """Load the run, the thread's messages before it, and the run's own steps (``fresh``: the
    run is being created in this transaction, so it has none yet); ``parsers`` read the
    files a response is given."""
    run = await session.get_one(Run, run_id)
    # (A new response's thread is its own and still empty.)
    messages = (
        []
        if fresh and run.api == "responses"
        else list(
            await session.scalars(
                select(Message).where(Message.thread_id == run.thread_id).order_by(Message.seq)
            )
        )
    )
    steps = (
        []
        if fresh
        else list(
            await session.scalars(
                select(RunStep).where(RunStep.run_id == run.id).order_by(RunStep.seq)
            )
        )
    )
    ctx = _context(run, messages, steps)
    await _complete(session, storage, ctx, messages)
    if run.api == "responses":
        ctx.response, items = await responses_service.context_items(session, run)
        extract = None if parsers is None else functools.partial(file_text, parsers)
        images, files = await responses_service.attachments(
            session, storage, run.project_id, items, extract
        )
        ctx.prelude = response_items.chat_messages(items, images, files)
    return ctx


async def load_new_context(
    engine: AsyncEngine,
    read_maker: async_sessionmaker[AsyncSession],
    storage: FileStorage,
    run: Run,
    thread: Thread,
    assistant: Assistant,
) -> RunContext:
    """``load_context`` for a run just inserted (no steps yet) whose rows the caller holds:
    the thread's messages in one statement on its own, then ``context_of``."""
    rows = await execute_alone(engine, _messages_sql(), {"thread_id": run.thread_id})
    messages = [loaded(Message, row) for row in rows]
    return await context_of(read_maker, storage, run, thread, assistant, messages)


async def context_of(
    read_maker: async_sessionmaker[AsyncSession],
    storage: FileStorage,
    run: Run,
    thread: Thread,
    assistant: Assistant,
    messages: list[Message],
) -> RunContext:
    """The context of a new run (no steps yet) from its thread's ``messages``; a session
    only when the run needs more (vector stores, sandbox files, images)."""
    ctx = _context(run, messages, [])
    if _wants_more(ctx, thread, assistant):
        async with read_maker() as session:
            for row in (thread, assistant, run, *messages):
                session.add(row)
            await _complete(session, storage, ctx, messages)
            session.expunge_all()
    return ctx


@functools.cache
def _messages_sql() -> str:
    return (
        f"SELECT {columns_of(Message, 'm')} FROM messages m "
        "WHERE m.thread_id = %(thread_id)s ORDER BY m.seq"
    )


async def file_text(parsers: ParserPool, filename: str, data: bytes) -> str:
    """A file's text, read in a parser process (what cannot be read says why)."""
    try:
        chunks = await parsers.chunk(filename, data, FILE_TEXT_CHUNK_TOKENS, 0)
    except ParseError as exc:
        return f"(the file could not be read: {exc})"
    return "".join(c.text for c in chunks)


def _context(run: Run, messages: list[Message], steps: list[RunStep]) -> RunContext:
    history = [m for m in messages if m.run_id != run.id]
    own = {m.id: m for m in messages if m.run_id == run.id}
    return RunContext(run=run, history=history, steps=steps, own_messages=own)


def _wanted_images(ctx: RunContext) -> set[str]:
    return {
        part["image_file"]["file_id"]
        for m in ctx.history
        if m.role == "user"
        for part in m.content
        if part.get("type") == "image_file"
    }


def _wants_more(ctx: RunContext, thread: Thread, assistant: Assistant) -> bool:
    """Whether ``_complete`` has anything to read for ``ctx``."""
    if ctx.code_interpreter or _wanted_images(ctx):
        return True
    return bool(_resource_ids((assistant, thread), "file_search", "vector_store_ids"))


def _resource_ids(owners: tuple[Assistant | None, Thread | None], tool: str, key: str) -> list[str]:
    """The ids ``tool_resources[tool][key]`` of the assistant's, then the thread's."""
    ids: list[str] = []
    for owner in owners:
        if owner is not None:
            ids.extend(((owner.tool_resources or {}).get(tool) or {}).get(key) or [])
    return ids


async def _complete(
    session: AsyncSession, storage: FileStorage, ctx: RunContext, messages: list[Message]
) -> None:
    """The rest of a run's context: its vector stores, sandbox files and images."""
    run = ctx.run
    ctx.vector_stores = await _vector_stores(session, run)
    if ctx.code_interpreter and run.api != "responses":  # (a response's files: its container's)
        ctx.sandbox_files = await _sandbox_files(session, run, messages)
    wanted = _wanted_images(ctx)
    if wanted:
        files = await session.scalars(
            select(File).where(File.id.in_(wanted), File.project_id == run.project_id)
        )
        for f in files:
            ext = f.filename.rsplit(".", 1)[-1].lower() if "." in f.filename else ""
            mime = IMAGE_TYPES.get(ext) or mimetypes.guess_type(f.filename)[0] or "image/png"
            data = base64.b64encode(await storage.read(f.storage_key)).decode()
            ctx.images[f.id] = f"data:{mime};base64,{data}"


async def _vector_stores(session: AsyncSession, run: Run) -> list[tuple[str, str, int]]:
    """The assistant's and the thread's vector stores that have not expired."""
    assistant = await session.get(Assistant, run.assistant_id) if run.assistant_id else None
    thread = await session.get(Thread, run.thread_id)
    wanted = _resource_ids((assistant, thread), "file_search", "vector_store_ids")
    if not wanted:
        return []
    stores = await session.scalars(
        select(VectorStore).where(
            VectorStore.id.in_(wanted), VectorStore.project_id == run.project_id
        )
    )
    stamp = int(time.time())
    return [
        (s.id, s.embedding_model, s.dimension)
        for s in stores
        if s.expires_at is None or s.expires_at > stamp
    ]


async def _sandbox_files(
    session: AsyncSession, run: Run, messages: list[Message]
) -> list[SandboxFile]:
    """The assistant's and thread's code_interpreter files and the thread's messages'
    attachments for code_interpreter, each with its path under /mnt/data (the filename;
    a clash gets the file id added)."""
    assistant = await session.get(Assistant, run.assistant_id)
    thread = await session.get(Thread, run.thread_id)
    wanted = _resource_ids((assistant, thread), "code_interpreter", "file_ids")
    for message in messages:
        for attachment in message.attachments or []:
            kinds = {t.get("type") for t in attachment.get("tools") or []}
            if "code_interpreter" in kinds:
                wanted.append(attachment["file_id"])
    wanted = list(dict.fromkeys(wanted))
    if not wanted:
        return []
    rows = {
        f.id: f
        for f in await session.scalars(
            select(File).where(File.id.in_(wanted), File.project_id == run.project_id)
        )
    }
    out: list[SandboxFile] = []
    taken: set[str] = set()
    for file_id in wanted:
        row = rows.get(file_id)
        if row is None:
            continue  # deleted since it was attached
        out.append(SandboxFile(file_id, data_path(row.filename, file_id, taken), row.storage_key))
    return out


CODE_INTERPRETER_TOOL = {
    "type": "function",
    "function": {
        "name": "code_interpreter",
        "description": (
            "Run Python code in a stateful Jupyter (IPython) kernel and get its output. "
            "Variables, imports and files persist between calls on this conversation."
        ),
        "parameters": {
            "type": "object",
            "properties": {"code": {"type": "string", "description": "The Python code to run."}},
            "required": ["code"],
        },
    },
}


def code_interpreter_note(ctx: RunContext, timeout: float) -> str:
    """How the sandbox works, and which files are in it."""
    lines = [
        "You can run Python with the code_interpreter tool: a stateful Jupyter notebook "
        f"environment. Each call times out after {timeout:g} seconds. Internet access is "
        "disabled. The drive at /mnt/data keeps files for this conversation: read the "
        "user's files there and save files for the user there, then link them in your "
        "answer as [name](sandbox:/mnt/data/name). Plots you show (matplotlib) are shown "
        "to the user."
    ]
    if ctx.sandbox_files:
        lines.append("Files in /mnt/data: " + ", ".join(f.path for f in ctx.sandbox_files))
    return "\n".join(lines)


FILE_SEARCH_TOOL = {
    "type": "function",
    "function": {
        "name": "file_search",
        "description": (
            "Search the files available to you (uploaded by the user or attached to you). "
            "Pass one to five search queries, each a self-contained rewrite of what you need "
            "to find. Results are numbered; cite the ones you use with their marker, for "
            "example 【0:2†report.pdf】."
        ),
        "parameters": {
            "type": "object",
            "properties": {"queries": {"type": "array", "items": {"type": "string"}}},
            "required": ["queries"],
        },
    },
}

FILE_SEARCH_NOTE = (
    "You can search the user's files with the file_search tool. When you use what it found, "
    "cite each source right after the claim with the marker shown in the results, exactly "
    "as written, e.g. 【0:1†guide.pdf】."
)


def format_results(ordinal: int, results: list[dict[str, Any]]) -> str:
    """Search results as the model sees them, each with its citation marker."""
    if not results:
        return "No results found."
    blocks = []
    for i, result in enumerate(results):
        text = "".join(part.get("text", "") for part in result.get("content") or [])
        blocks.append(f"【{ordinal}:{i}†{result['file_name']}】\n{text}")
    return "\n\n".join(blocks)


def text_of(content: list[dict[str, Any]]) -> str:
    return "".join(part["text"]["value"] for part in content if part.get("type") == "text")


def _user_content(message: Message, images: dict[str, str]) -> str | list[dict[str, Any]]:
    if all(part.get("type") == "text" for part in message.content):
        return text_of(message.content)
    parts: list[dict[str, Any]] = []
    for part in message.content:
        kind = part.get("type")
        if kind == "text":
            parts.append({"type": "text", "text": part["text"]["value"]})
        elif kind == "image_url":
            parts.append({"type": "image_url", "image_url": dict(part["image_url"])})
        elif kind == "image_file":
            url = images.get(part["image_file"]["file_id"])
            if url is not None:
                detail = part["image_file"].get("detail") or "auto"
                parts.append({"type": "image_url", "image_url": {"url": url, "detail": detail}})
    return parts


def history_messages(ctx: RunContext) -> list[dict[str, Any]]:
    """The thread's messages as chat messages, after the run's truncation strategy (a
    response's: its context items)."""
    if ctx.prelude is not None:
        return ctx.prelude
    history = ctx.history
    strategy = ctx.run.truncation_strategy or {}
    if strategy.get("type") == "last_messages" and strategy.get("last_messages"):
        history = history[-int(strategy["last_messages"]) :]
    out: list[dict[str, Any]] = []
    for m in history:
        if m.role == "user":
            out.append({"role": "user", "content": _user_content(m, ctx.images)})
        else:
            out.append({"role": "assistant", "content": text_of(m.content)})
    return out


async def fit(
    head: list[dict[str, Any]],
    history: list[dict[str, Any]],
    tail: list[dict[str, Any]],
    budget: int | None,
    *,
    drop_oldest: bool,
    tokenizer: str = "o200k_base",
) -> tuple[list[dict[str, Any]], int]:
    """Assemble the prompt, dropping the oldest history while it exceeds ``budget`` (with
    ``drop_oldest``, the ``auto`` truncation strategy). The newest history message is always
    kept. Returns the messages and their token count."""
    counted = await tokens.count_messages(history + head + tail, tokenizer)
    costs = counted[: len(history)]
    fixed = sum(counted[len(history) :])
    total = fixed + sum(costs)
    start = 0
    if drop_oldest and budget is not None:
        while total > budget and start < len(history) - 1:
            total -= costs[start]
            start += 1
    return head + history[start:] + tail, total


def used_tokens(ctx: RunContext) -> tuple[int, int]:
    """Prompt and completion tokens the run's earlier turns used."""
    prompt_tokens = completion_tokens = 0
    for step in ctx.steps:
        if step.usage:
            prompt_tokens += int(step.usage.get("prompt_tokens", 0))
            completion_tokens += int(step.usage.get("completion_tokens", 0))
    return prompt_tokens, completion_tokens


def run_messages(ctx: RunContext) -> list[dict[str, Any]]:
    """What the run itself added: its messages and tool-call turns, in step order."""
    out: list[dict[str, Any]] = []
    ordinal = 0
    for step in ctx.steps:
        details = step.step_details
        if details.get("type") == "message_creation":
            message = ctx.own_messages.get(details["message_creation"]["message_id"])
            if message is not None and text_of(message.content):
                out.append({"role": "assistant", "content": text_of(message.content)})
            continue
        calls: list[dict[str, Any]] = []
        replies: list[dict[str, Any]] = []
        for c in details.get("tool_calls", []):
            if c.get("type") == "function":
                name, arguments = c["function"]["name"], c["function"]["arguments"]
                output = c["function"].get("output") or ""
            elif c.get("type") == "code_interpreter":
                name = "code_interpreter"
                arguments = json.dumps({"code": c["code_interpreter"].get("input") or ""})
                output = c.get("_output") or ""
            elif c.get("type") == "file_search":
                name = "file_search"
                arguments = json.dumps({"queries": c.get("_queries") or []})
                output = format_results(ordinal, c["file_search"].get("results") or [])
                ordinal += 1
            else:
                continue
            calls.append(
                {
                    "id": c["id"],
                    "type": "function",
                    "function": {"name": name, "arguments": arguments},
                }
            )
            replies.append({"role": "tool", "tool_call_id": c["id"], "content": output})
        if calls:
            out.append({"role": "assistant", "content": None, "tool_calls": calls})
            out.extend(replies)
    return out


def system_message(ctx: RunContext, exec_timeout: float = 60.0) -> list[dict[str, Any]]:
    """The instructions (and how to use the built-in tools) as a system message."""
    parts = [ctx.run.instructions] if ctx.run.instructions else []
    if ctx.code_interpreter:
        parts.append(code_interpreter_note(ctx, exec_timeout))
    if ctx.file_search is not None:
        parts.append(FILE_SEARCH_NOTE)
    return [{"role": "system", "content": "\n\n".join(parts)}] if parts else []


def chat_tools(ctx: RunContext) -> list[dict[str, Any]]:
    """The run's tools in chat-completions form (built-in tools become functions)."""
    run = ctx.run
    tools: list[dict[str, Any]] = []
    if ctx.code_interpreter:
        tools.append(CODE_INTERPRETER_TOOL)
    if ctx.file_search is not None:
        tools.append(FILE_SEARCH_TOOL)
    for tool in run.tools:
        if tool.get("type") == "function":
            fn = dict(tool["function"])
            fn.setdefault("parameters", {"type": "object", "properties": {}})
            if not fn.get("strict"):
                fn.pop("strict", None)
            tools.append({"type": "function", "function": fn})
    return tools


def chat_tool_choice(run: Run, tools: list[dict[str, Any]]) -> Any:
    """``tool_choice`` for the backend (``None`` when no tools are offered)."""
    if not tools:
        return None
    choice = run.tool_choice
    if isinstance(choice, dict) and choice.get("type") != "function":
        names = {t["function"]["name"] for t in tools}
        if choice["type"] in names:
            return {"type": "function", "function": {"name": choice["type"]}}
        return "required"
    return choice
