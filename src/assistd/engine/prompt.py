"""Build the chat-completions request of a run turn from the run, its thread and its steps."""

from __future__ import annotations

import base64
import mimetypes
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from assistd.files.storage import FileStorage
from assistd.llm import tokens
from assistd.models import File, Message, Run, RunStep

IMAGE_TYPES = {
    "png": "image/png",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "gif": "image/gif",
    "webp": "image/webp",
}


@dataclass
class RunContext:
    """What a run turn needs, loaded in one transaction."""

    run: Run
    history: list[Message]
    steps: list[RunStep]
    own_messages: dict[str, Message]
    images: dict[str, str] = field(default_factory=dict)
    """file id → data URL for image_file parts."""


async def load_context(session: AsyncSession, storage: FileStorage, run_id: str) -> RunContext:
    """Load the run, the thread's messages before it, and the run's own steps."""
    run = await session.get_one(Run, run_id)
    messages = list(
        await session.scalars(
            select(Message).where(Message.thread_id == run.thread_id).order_by(Message.seq)
        )
    )
    history = [m for m in messages if m.run_id != run.id]
    own = {m.id: m for m in messages if m.run_id == run.id}
    steps = list(
        await session.scalars(select(RunStep).where(RunStep.run_id == run.id).order_by(RunStep.seq))
    )
    ctx = RunContext(run=run, history=history, steps=steps, own_messages=own)
    wanted = {
        part["image_file"]["file_id"]
        for m in history
        if m.role == "user"
        for part in m.content
        if part.get("type") == "image_file"
    }
    if wanted:
        files = await session.scalars(
            select(File).where(File.id.in_(wanted), File.project_id == run.project_id)
        )
        for f in files:
            ext = f.filename.rsplit(".", 1)[-1].lower() if "." in f.filename else ""
            mime = IMAGE_TYPES.get(ext) or mimetypes.guess_type(f.filename)[0] or "image/png"
            data = base64.b64encode(await storage.read(f.storage_key)).decode()
            ctx.images[f.id] = f"data:{mime};base64,{data}"
    return ctx


def _text_of(content: list[dict[str, Any]]) -> str:
    return "".join(part["text"]["value"] for part in content if part.get("type") == "text")


def _user_content(message: Message, images: dict[str, str]) -> str | list[dict[str, Any]]:
    if all(part.get("type") == "text" for part in message.content):
        return _text_of(message.content)
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
    """The thread's messages as chat messages, after the run's truncation strategy."""
    history = ctx.history
    strategy = ctx.run.truncation_strategy or {}
    if strategy.get("type") == "last_messages" and strategy.get("last_messages"):
        history = history[-int(strategy["last_messages"]) :]
    out: list[dict[str, Any]] = []
    for m in history:
        if m.role == "user":
            out.append({"role": "user", "content": _user_content(m, ctx.images)})
        else:
            out.append({"role": "assistant", "content": _text_of(m.content)})
    return out


def fit(
    head: list[dict[str, Any]],
    history: list[dict[str, Any]],
    tail: list[dict[str, Any]],
    budget: int | None,
    *,
    drop_oldest: bool,
) -> tuple[list[dict[str, Any]], int]:
    """Assemble the prompt, dropping the oldest history while it exceeds ``budget`` (with
    ``drop_oldest``, the ``auto`` truncation strategy). The newest history message is always
    kept. Returns the messages and their token count."""
    costs = [tokens.count_message(m) for m in history]
    fixed = sum(tokens.count_message(m) for m in head + tail)
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
    for step in ctx.steps:
        details = step.step_details
        if details.get("type") == "message_creation":
            message = ctx.own_messages.get(details["message_creation"]["message_id"])
            if message is not None and _text_of(message.content):
                out.append({"role": "assistant", "content": _text_of(message.content)})
        else:
            calls = [c for c in details.get("tool_calls", []) if c.get("type") == "function"]
            if not calls:
                continue
            out.append(
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": c["id"],
                            "type": "function",
                            "function": {
                                "name": c["function"]["name"],
                                "arguments": c["function"]["arguments"],
                            },
                        }
                        for c in calls
                    ],
                }
            )
            for c in calls:
                out.append(
                    {
                        "role": "tool",
                        "tool_call_id": c["id"],
                        "content": c["function"].get("output") or "",
                    }
                )
    return out


def system_message(run: Run) -> list[dict[str, Any]]:
    """The instructions as a system message (none when empty)."""
    return [{"role": "system", "content": run.instructions}] if run.instructions else []


def chat_tools(run: Run) -> list[dict[str, Any]]:
    """The run's function tools in chat-completions form."""
    tools = []
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
        return "required"
    return choice
