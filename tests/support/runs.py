"""Helpers of the run tests driven with the official SDK: tools, polling, what the scripted
backend received."""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Collection
from typing import Any

from openai import OpenAI
from openai.types.beta import Assistant
from openai.types.beta.threads import Message, Run

from tests.support.scripted_chat import ScriptedChatServer, script
from tests.support.wait import bounded, wait_until

__all__ = ["bounded", "script", "wait_until"]

POLL_MS = 50
TERMINAL = {"completed", "failed", "cancelled", "expired", "incomplete"}
RESTING = TERMINAL | {"requires_action"}

WEATHER_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather of a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
TIME_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_time",
        "description": "Current time",
        "parameters": {"type": "object", "properties": {"tz": {"type": "string"}}},
    },
}

# A 1x1 transparent PNG.
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d4944415478da63f8ffff3f0005fe02fea7d6a4b20000000049454e44ae426082"
)


def tag() -> str:
    """A marker unique to one test's conversation."""
    return f"t{uuid.uuid4().hex[:12]}"


def sent(chat: ScriptedChatServer, marker: str) -> list[dict[str, Any]]:
    """The request bodies the backend received whose messages mention ``marker``."""
    return [r for r in list(chat.requests) if marker in json.dumps(r.get("messages", []))]


def wait_run(
    client: OpenAI, run: Run, statuses: Collection[str] = RESTING, timeout: float = 15.0
) -> Run:
    """Poll the run until its status is one of ``statuses``."""
    last: list[Run] = [run]

    def check() -> Run | None:
        last[0] = client.beta.threads.runs.retrieve(run.id, thread_id=run.thread_id)
        return last[0] if last[0].status in statuses else None

    try:
        return wait_until(check, timeout)
    except AssertionError:
        raise AssertionError(
            f"run {run.id} still {last[0].status!r}, wanted {sorted(statuses)}"
        ) from None


def make_assistant(client: OpenAI, **overrides: Any) -> Assistant:
    """An assistant with instructions and one function tool."""
    fields: dict[str, Any] = {
        "model": "gpt-4o",
        "instructions": "You are terse.",
        "tools": [WEATHER_TOOL],
        **overrides,
    }
    return client.beta.assistants.create(**fields)


def thread_with(client: OpenAI, *texts: str) -> str:
    """A thread holding one user message per text."""
    thread = client.beta.threads.create(
        messages=[{"role": "user", "content": text} for text in texts]
    )
    return thread.id


def messages_asc(client: OpenAI, thread_id: str) -> list[Message]:
    """Every message of the thread, oldest first."""
    return list(client.beta.threads.messages.list(thread_id, order="asc", limit=100))


def text_of(message: Message) -> str:
    """The text of a message's text parts."""
    return "".join(p.text.value for p in message.content if p.type == "text")


def create_and_poll(client: OpenAI, thread_id: str, assistant_id: str, **kw: Any) -> Run:
    """``runs.create_and_poll`` with a fast poll and a deadline."""
    return bounded(
        lambda: client.beta.threads.runs.create_and_poll(
            thread_id=thread_id, assistant_id=assistant_id, poll_interval_ms=POLL_MS, **kw
        )
    )


def upload_png(client: OpenAI, purpose: str = "vision") -> str:
    """Upload the tiny PNG; return its file id."""
    return client.files.create(file=("dot.png", io.BytesIO(PNG)), purpose=purpose).id  # type: ignore[arg-type]
