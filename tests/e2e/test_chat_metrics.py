"""``/chat/completions`` counts its tokens in ``/metrics`` as runs do: the backend's usage,
whole and streamed (asked for even when the client did not, and then kept from it), or a
local count when the backend reports none; by project too when asked."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from openai import OpenAI
from openai.types.chat import ChatCompletionMessageParam

from assistd.llm import tokens
from tests.conftest import ServerProcess, own_server, stop_server
from tests.e2e.test_metrics import sample
from tests.support.scripted_chat import ScriptedChatServer, script

Metered = tuple[ServerProcess, OpenAI]


@pytest.fixture(scope="module")
def metered(
    pg_root: str, server_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Metered]:
    """A server of its own that counts tokens per project too."""
    data = tmp_path_factory.mktemp("chat-metrics")
    env = {**server_env, "ASSISTD_DATA_DIR": str(data), "ASSISTD_METRICS__PER_PROJECT": "true"}
    proc, client = own_server(pg_root, env, Path(data) / "log", "--no-worker")
    yield proc, client
    client.close()
    stop_server(proc)


def _counted(server: ServerProcess, model: str) -> dict[str, float]:
    """Tokens ``/metrics`` counts for ``model``, in all and by its one project."""
    body = httpx.get(server.base_url + "/metrics", timeout=10).text
    projects = {
        line.split('project="')[1].split('"')[0]
        for line in body.splitlines()
        if line.startswith("assistd_project_tokens_total{") and f'model="{model}"' in line
    }
    assert len(projects) <= 1, projects
    project = projects.pop() if projects else ""
    out = {}
    for kind in ("prompt", "completion"):
        out[kind] = sample(body, "assistd_tokens_total", model=model, type=kind)
        name = "assistd_project_tokens_total"
        out["project_" + kind] = sample(body, name, project=project, model=model, type=kind)
    return out


def _expect(prompt: float, completion: float) -> dict[str, float]:
    return {
        "prompt": prompt,
        "completion": completion,
        "project_prompt": prompt,
        "project_completion": completion,
    }


def test_chat_tokens_are_counted_whole_and_streamed(
    metered: Metered, chat: ScriptedChatServer
) -> None:
    server, client = metered
    model = f"metered-{uuid.uuid4().hex[:8]}"
    messages: list[ChatCompletionMessageParam] = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": script(reply="one two three four")},
    ]
    whole = client.chat.completions.create(model=model, messages=messages)
    assert whole.usage is not None
    assert whole.usage.completion_tokens == 4
    assert _counted(server, model) == _expect(
        whole.usage.prompt_tokens, whole.usage.completion_tokens
    )

    # Streamed, with the usage the client asks for.
    with client.chat.completions.create(
        model=model, messages=messages, stream=True, stream_options={"include_usage": True}
    ) as stream:
        usage = [chunk.usage for chunk in stream if chunk.usage is not None]
    assert len(usage) == 1
    prompt, completion = usage[0].prompt_tokens, usage[0].completion_tokens
    total = (whole.usage.prompt_tokens + prompt, whole.usage.completion_tokens + completion)
    assert _counted(server, model) == _expect(*total)

    # Streamed without: the backend is asked for it all the same, and the client never sees it.
    key = client.api_key
    body = {"model": model, "messages": messages, "stream": True}
    with (
        httpx.Client(base_url=server.api, timeout=30) as http,
        http.stream(
            "POST", "/chat/completions", json=body, headers={"authorization": f"Bearer {key}"}
        ) as answer,
    ):
        assert answer.status_code == 200
        lines = [line for line in answer.iter_lines() if line]
    assert lines[-1] == "data: [DONE]"
    chunks = [json.loads(line.removeprefix("data: ")) for line in lines[:-1]]
    assert all("usage" not in c and c["choices"] for c in chunks), chunks
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    assert text == "one two three four"
    sent = chat.requests[-1]
    assert sent["model"] == model
    assert "stream_options" not in body
    assert sent["stream_options"] == {"include_usage": True}
    assert _counted(server, model) == _expect(total[0] + prompt, total[1] + completion)


def test_chat_tokens_are_counted_when_the_backend_reports_none(metered: Metered) -> None:
    server, client = metered
    model = f"unmetered-{uuid.uuid4().hex[:8]}"
    reply = "Ceci est une réponse comptée ici, sans aide du serveur."
    messages: list[ChatCompletionMessageParam] = [
        {"role": "user", "content": script(reply=reply, no_usage=True)},
    ]
    calls = [{"name": "get_weather", "arguments": {"city": "Paris"}}]
    tool_messages: list[ChatCompletionMessageParam] = [
        {"role": "user", "content": script(tool_calls=calls, no_usage=True)},
    ]
    # What the run code counts without usage: the messages sent, the text and calls received.
    prompt = sum(asyncio.run(tokens.count_messages(list(messages))))  # type: ignore[arg-type]
    tool_prompt = sum(asyncio.run(tokens.count_messages(list(tool_messages))))  # type: ignore[arg-type]
    completion = tokens.count_text(reply)
    tool_completion = tokens.count_text("get_weather" + json.dumps({"city": "Paris"}))

    whole = client.chat.completions.create(model=model, messages=messages)
    assert whole.usage is None
    assert whole.choices[0].message.content == reply
    assert _counted(server, model) == _expect(prompt, completion)

    with client.chat.completions.create(
        model=model, messages=messages, stream=True, stream_options={"include_usage": True}
    ) as stream:
        got = [c for c in stream]
    assert all(c.usage is None for c in got)
    assert _counted(server, model) == _expect(2 * prompt, 2 * completion)

    with client.chat.completions.create(
        model=model,
        messages=tool_messages,
        stream=True,
        tools=[{"type": "function", "function": {"name": "get_weather", "parameters": {}}}],
    ) as stream:
        finish = [c.choices[0].finish_reason for c in stream if c.choices]
    assert finish[-1] == "tool_calls"
    assert _counted(server, model) == _expect(
        2 * prompt + tool_prompt, 2 * completion + tool_completion
    )
