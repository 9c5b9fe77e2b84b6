"""``/models``, ``/chat/completions`` and ``/embeddings`` through the official SDK: the calls
an app makes beside its assistants, and the connection check of tools such as Open WebUI."""

from __future__ import annotations

import base64
import json

import httpx
import numpy as np
import openai
import pytest
from openai import AzureOpenAI, OpenAI
from openai.types.chat import ChatCompletionMessageParam, ChatCompletionToolParam

from tests.conftest import ServerProcess
from tests.support.scripted_chat import ScriptedChatServer

WEATHER_TOOL: ChatCompletionToolParam = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}
TOOL_SCRIPT = '#script {"tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}}]}'


def test_models_lists_routes_backend_models_and_embedding_models(client: OpenAI) -> None:
    models = {m.id: m for m in client.models.list()}
    # Routes of the models file, the default backend's own list, the local embedders.
    assert {"dead-model", "azure-gpt", "scripted-gpt", "local:wordllama"} <= set(models)
    assert models["azure-gpt"].owned_by == "azure-test"
    assert models["scripted-gpt"].owned_by == "tests"
    assert all(m.object == "model" and m.created > 0 for m in models.values())
    assert client.models.retrieve("azure-gpt").id == "azure-gpt"
    assert client.models.retrieve("local:wordllama").owned_by == "assistd"


def test_unknown_model_is_404(client: OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        client.models.retrieve("no-such-model")
    assert info.value.body["code"] == "model_not_found"  # type: ignore[index]


def test_models_need_a_key(server: ServerProcess) -> None:
    answer = httpx.get(server.api + "/models")
    assert answer.status_code == 401
    assert answer.json()["error"]["code"] == "missing_api_key"


def test_chat_completion_whole(client: OpenAI, chat: ScriptedChatServer) -> None:
    completion = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": '#script {"reply": "Bonjour tout le monde"}'}],
        temperature=0.2,
        seed=7,
    )
    assert completion.choices[0].message.content == "Bonjour tout le monde"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert completion.usage.completion_tokens > 0
    sent = next(r for r in reversed(chat.requests) if "Bonjour tout" in json.dumps(r))
    # Passed on as sent: a parameter assistd does not read (seed) reaches the backend.
    assert sent["temperature"] == 0.2
    assert sent["seed"] == 7
    assert not sent.get("stream")


def test_chat_completion_tool_call_whole_and_streamed(client: OpenAI) -> None:
    messages: list[ChatCompletionMessageParam] = [{"role": "user", "content": TOOL_SCRIPT}]
    whole = client.chat.completions.create(
        model="gpt-4o",
        messages=messages,
        tools=[WEATHER_TOOL],
    )
    calls = whole.choices[0].message.tool_calls or []
    assert whole.choices[0].finish_reason == "tool_calls"
    assert [(c.function.name, json.loads(c.function.arguments)) for c in calls] == [  # type: ignore[union-attr]
        ("get_weather", {"city": "Paris"})
    ]

    arguments = ""
    names = []
    finish = None
    with client.chat.completions.create(
        model="gpt-4o",
        messages=messages,
        tools=[WEATHER_TOOL],
        stream=True,
    ) as stream:
        for chunk in stream:
            for choice in chunk.choices:
                for delta in choice.delta.tool_calls or []:
                    if delta.function and delta.function.name:
                        names.append(delta.function.name)
                    arguments += (delta.function.arguments or "") if delta.function else ""
                finish = choice.finish_reason or finish
    assert names == ["get_weather"]
    assert json.loads(arguments) == {"city": "Paris"}
    assert finish == "tool_calls"


def test_streamed_chat_ends_with_done_and_carries_usage(http: httpx.Client) -> None:
    body = {
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": '#script {"reply": "one two three"}'}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    with http.stream("POST", "/chat/completions", json=body) as answer:
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in answer.iter_lines() if line]
    assert lines[-1] == "data: [DONE]"
    chunks = [json.loads(line.removeprefix("data: ")) for line in lines[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == "one two three"
    assert chunks[-1]["usage"]["completion_tokens"] == 3


def test_chat_through_a_route_and_the_azure_shape(
    server: ServerProcess, api_key: str, chat: ScriptedChatServer
) -> None:
    with OpenAI(base_url=server.api, api_key=api_key, max_retries=0) as sdk:
        routed = sdk.chat.completions.create(
            model="azure-gpt", messages=[{"role": "user", "content": "routed hello"}]
        )
    assert routed.choices[0].message.content == "You said: routed hello"
    call = next(c for c in reversed(chat.calls) if c["model"] == "dep-1")
    assert call["path"] == "/openai/deployments/dep-1/chat/completions"
    assert call["api-key"] == "azure-secret"  # the backend's key, never the caller's

    with AzureOpenAI(
        azure_endpoint=server.base_url, api_key=api_key, api_version="2024-10-21", max_retries=0
    ) as azure:
        answer = azure.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "azure shaped"}]
        )
        assert answer.choices[0].message.content == "You said: azure shaped"
        assert "scripted-gpt" in {m.id for m in azure.models.list()}
        # The Azure SDK puts the model in the path: /openai/deployments/<model>/embeddings.
        vectors = azure.embeddings.create(model="local:wordllama", input="azure shaped")
        assert len(vectors.data[0].embedding) == 256


def test_chat_bad_inputs_are_envelope_errors(client: OpenAI, http: httpx.Client) -> None:
    missing = http.post("/chat/completions", json={"model": "gpt-4o"})
    assert missing.status_code == 400
    assert missing.json()["error"]["param"] == "messages"
    assert missing.json()["error"]["code"] == "missing_required_parameter"
    empty = http.post("/chat/completions", json={"model": "gpt-4o", "messages": []})
    assert empty.status_code == 400
    assert empty.json()["error"]["param"] == "messages"
    not_json = http.post(
        "/chat/completions", content=b"{oops", headers={"content-type": "application/json"}
    )
    assert not_json.status_code == 400
    # The backend's 4xx comes back as itself.
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(
            model="gpt-4o",
            messages=[
                {"role": "user", "content": '#script {"fail": {"key": "bad-req", "status": 400}}'}
            ],
        )


def test_chat_backend_failures_map_to_statuses(client: OpenAI) -> None:
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(
            model="gpt-4o",
            messages=[
                {
                    "role": "user",
                    "content": '#script {"fail": {"key": "rl-pass", "times": 9, "status": 429}}',
                }
            ],
        )
    # Nobody listens behind the "dead" backend: a 502, streamed or not.
    for stream in (False, True):
        with pytest.raises(openai.APIStatusError) as info:
            client.chat.completions.create(
                model="dead-model",
                messages=[{"role": "user", "content": "hi"}],
                stream=stream,
            )
        assert info.value.status_code == 502
        assert info.value.body["code"] == "backend_unreachable"  # type: ignore[index]


def test_chat_error_mid_stream_reaches_the_sdk(client: OpenAI) -> None:
    stream = client.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": '#script {"reply": "a b c d", "error_after": 2}'}],
        stream=True,
    )
    text: list[str] = []

    def read() -> None:
        for chunk in stream:
            if chunk.choices:
                text.append(chunk.choices[0].delta.content or "")

    with pytest.raises(openai.APIError):
        read()
    assert "".join(text) == "a b "


def test_open_webui_connection_check(server: ServerProcess, api_key: str) -> None:
    """What Open WebUI does when a connection is added: list the models with the key, then
    stream a chat with one of them."""
    headers = {"Authorization": f"Bearer {api_key}"}
    with httpx.Client(base_url=server.api, headers=headers, timeout=30) as webui:
        listed = webui.get("/models")
        assert listed.status_code == 200
        body = listed.json()
        assert body["object"] == "list"
        model = next(m["id"] for m in body["data"] if m["id"] == "scripted-gpt")
        request = {
            "model": model,
            "messages": [{"role": "user", "content": "ping"}],
            "stream": True,
        }
        with webui.stream("POST", "/chat/completions", json=request) as answer:
            assert answer.status_code == 200
            lines = [line for line in answer.iter_lines() if line.startswith("data: ")]
    assert lines[-1] == "data: [DONE]"
    deltas = [json.loads(line[6:])["choices"][0]["delta"] for line in lines[:-1]]
    assert "".join(d.get("content") or "" for d in deltas) == "You said: ping"


def test_local_embeddings_float_and_base64(client: OpenAI) -> None:
    floats = client.embeddings.create(
        model="local:wordllama", input=["the cat sat", "a dog ran"], encoding_format="float"
    )
    assert [d.index for d in floats.data] == [0, 1]
    assert all(len(d.embedding) == 256 for d in floats.data)
    assert floats.usage.prompt_tokens > 0
    assert floats.usage.total_tokens == floats.usage.prompt_tokens
    # The SDK asks for base64 by default and decodes it.
    default = client.embeddings.create(model="local:wordllama", input="the cat sat")
    assert np.allclose(default.data[0].embedding, floats.data[0].embedding, atol=1e-6)
    vector = np.array(default.data[0].embedding)
    assert abs(float(np.linalg.norm(vector)) - 1.0) < 1e-4


def test_embeddings_raw_base64_and_token_arrays(http: httpx.Client) -> None:
    raw = http.post(
        "/embeddings",
        json={"model": "local:wordllama", "input": "hello world", "encoding_format": "base64"},
    )
    assert raw.status_code == 200, raw.text
    packed = raw.json()["data"][0]["embedding"]
    assert isinstance(packed, str)
    assert np.frombuffer(base64.b64decode(packed), dtype="<f4").shape == (256,)
    # cl100k_base tokens of "hello world" (what LangChain sends), embedded as that text.
    tokens = http.post(
        "/embeddings", json={"model": "local:wordllama", "input": [[15339, 1917]]}
    ).json()
    text = http.post("/embeddings", json={"model": "local:wordllama", "input": "hello world"})
    assert np.allclose(tokens["data"][0]["embedding"], text.json()["data"][0]["embedding"])
    assert tokens["usage"]["prompt_tokens"] == 2


def test_remote_embeddings_through_the_default_backend(client: OpenAI) -> None:
    made = client.embeddings.create(
        model="text-embedding-3-small", input=["alpha", "beta"], dimensions=16
    )
    assert [len(d.embedding) for d in made.data] == [16, 16]
    assert made.model == "text-embedding-3-small"
    again = client.embeddings.create(model="text-embedding-3-small", input="alpha", dimensions=16)
    assert np.allclose(again.data[0].embedding, made.data[0].embedding)


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        ({"model": "local:wordllama", "input": ""}, 400, "input"),
        ({"model": "local:wordllama", "input": []}, 400, "input"),
        ({"model": "local:wordllama"}, 400, "input"),
        ({"model": "local:wordllama", "input": "x", "dimensions": 12}, 400, "dimensions"),
        ({"model": "local:wordllama", "input": "x", "encoding_format": "hex"}, 400, None),
        ({"model": "local:wordllama", "input": [[999999999]]}, 400, "input"),
        ({"model": "local:wordllama", "input": "x", "colour": "red"}, 400, "colour"),
        ({"model": "no-such-embedder", "input": "x"}, 404, "model"),
        ({"model": "dead-model", "input": "x"}, 502, None),
    ],
)
def test_embeddings_bad_inputs(
    http: httpx.Client, body: dict[str, object], status: int, param: str | None
) -> None:
    answer = http.post("/embeddings", json=body)
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    if param is not None:
        assert error["param"] == param
