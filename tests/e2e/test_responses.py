"""The Responses API end to end through the SDK: plain answers streamed and not, memory
through previous_response_id and conversations, function calls, background responses,
store false, and bad input."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import openai
import pytest
from openai import OpenAI

from tests.support.scripted_chat import ScriptedChatServer, script

MODEL = "gpt-4o-mini"


def test_plain_answer_is_completed_with_usage(client: OpenAI) -> None:
    response = client.responses.create(model=MODEL, input="Say hi", instructions="Be kind.")
    assert response.status == "completed"
    assert response.output_text == "You said: Say hi"
    assert response.id.startswith("resp_")
    assert response.instructions == "Be kind."
    assert response.usage is not None and response.usage.total_tokens > 0
    message = response.output[0]
    assert message.type == "message" and message.role == "assistant"
    again = client.responses.retrieve(response.id)
    assert again.output_text == response.output_text
    assert again.status == "completed"


def test_stream_sends_the_documented_events_in_order(client: OpenAI) -> None:
    with client.responses.stream(
        model=MODEL, input=script(reply="one two three", delay_ms=5)
    ) as stream:
        events = list(stream)
        final = stream.get_final_response()
    kinds = [e.type for e in events]
    assert kinds[0] == "response.created" and kinds[1] == "response.in_progress"
    assert kinds[-1] == "response.completed"
    assert [e.sequence_number for e in events] == list(range(len(events)))
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    assert "".join(deltas) == "one two three"
    order = [
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    positions = [kinds.index(k) for k in order]
    assert positions == sorted(positions)
    assert final.output_text == "one two three"
    assert client.responses.retrieve(final.id).output_text == "one two three"


def test_previous_response_id_carries_the_history(
    client: OpenAI, chat: ScriptedChatServer
) -> None:
    first = client.responses.create(model=MODEL, input="My name is Ada.", instructions="FIRST")
    second = client.responses.create(
        model=MODEL, input="What is my name?", previous_response_id=first.id
    )
    assert second.previous_response_id == first.id
    sent = next(
        r for r in reversed(chat.requests) if "What is my name?" in json.dumps(r["messages"])
    )
    texts = [(m["role"], m.get("content")) for m in sent["messages"]]
    assert texts == [
        ("user", "My name is Ada."),
        ("assistant", "You said: My name is Ada."),
        ("user", "What is my name?"),
    ]  # the first response's instructions are not carried over


def test_function_call_round_trip(client: OpenAI) -> None:
    tools: Any = [
        {
            "type": "function",
            "name": "get_weather",
            "description": "Weather of a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        }
    ]
    plan = script(
        tool_calls=[{"name": "get_weather", "arguments": {"city": "Paris"}}],
        after_tools="It is {output0} in Paris.",
    )
    first = client.responses.create(model=MODEL, input=plan, tools=tools)
    assert first.status == "completed"
    calls = [o for o in first.output if o.type == "function_call"]
    assert len(calls) == 1 and calls[0].name == "get_weather"
    assert json.loads(calls[0].arguments) == {"city": "Paris"}
    second = client.responses.create(
        model=MODEL,
        previous_response_id=first.id,
        tools=tools,
        input=[{"type": "function_call_output", "call_id": calls[0].call_id, "output": "sunny"}],
    )
    assert second.output_text == "It is sunny in Paris."


def test_conversation_keeps_items_across_responses(client: OpenAI) -> None:
    conversation = client.conversations.create()
    client.responses.create(model=MODEL, input="Remember 42.", conversation=conversation.id)
    second = client.responses.create(
        model=MODEL, input="What number?", conversation={"id": conversation.id}
    )
    assert second.conversation is not None and second.conversation.id == conversation.id
    items = client.conversations.items.list(conversation.id, order="asc").data
    texts = [(i.type, getattr(i, "role", None)) for i in items]
    assert texts == [
        ("message", "user"),
        ("message", "assistant"),
        ("message", "user"),
        ("message", "assistant"),
    ]
    last: Any = items[-1]
    assert last.content[0].text == "You said: What number?"


def test_background_response_is_polled_and_cancelled(client: OpenAI) -> None:
    done = client.responses.create(model=MODEL, input="quick", background=True)
    assert done.status in ("queued", "in_progress")
    deadline = time.monotonic() + 10
    while done.status in ("queued", "in_progress") and time.monotonic() < deadline:
        time.sleep(0.05)
        done = client.responses.retrieve(done.id)
    assert done.status == "completed" and done.output_text == "You said: quick"
    slow = client.responses.create(
        model=MODEL, input=script(reply="a b c d e f g h", delay_ms=2000), background=True
    )
    time.sleep(0.3)
    cancelled = client.responses.cancel(slow.id)
    deadline = time.monotonic() + 10
    while cancelled.status != "cancelled" and time.monotonic() < deadline:
        time.sleep(0.05)
        cancelled = client.responses.retrieve(slow.id)
    assert cancelled.status == "cancelled"


def test_store_false_streams_but_keeps_nothing(client: OpenAI) -> None:
    response = client.responses.create(model=MODEL, input="secret", store=False)
    assert response.output_text == "You said: secret"
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(response.id)


def test_input_items_and_delete(client: OpenAI) -> None:
    response = client.responses.create(
        model=MODEL,
        input=[
            {"role": "developer", "content": "Be terse."},
            {"role": "user", "content": "hello"},
        ],
    )
    items = client.responses.input_items.list(response.id, order="asc").data
    assert [getattr(i, "role", None) for i in items] == ["developer", "user"]
    deleted = client.responses.delete(response.id)
    assert deleted is None or getattr(deleted, "deleted", True)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(response.id)


def test_bad_input_gets_the_error_envelope(
    client: OpenAI, other_client: OpenAI, http: httpx.Client
) -> None:
    first = client.responses.create(model=MODEL, input="hi")
    conversation = client.conversations.create()
    with pytest.raises(openai.BadRequestError) as both:
        client.responses.create(
            model=MODEL, input="x", previous_response_id=first.id, conversation=conversation.id
        )
    assert both.value.code == "mutually_exclusive_parameters"
    with pytest.raises(openai.BadRequestError) as tool:
        client.responses.create(model=MODEL, input="x", tools=[{"type": "web_search"}])
    assert "web_search" in str(tool.value.message)
    assert tool.value.param == "tools[0].type"
    with pytest.raises(openai.NotFoundError):
        client.responses.create(model=MODEL, input="x", previous_response_id="resp_nope")
    with pytest.raises(openai.NotFoundError):
        other_client.responses.retrieve(first.id)
    with pytest.raises(openai.NotFoundError):
        other_client.responses.create(model=MODEL, input="x", previous_response_id=first.id)
    with pytest.raises(openai.NotFoundError):
        other_client.responses.create(model=MODEL, input="x", conversation=conversation.id)
    raw = http.post("/responses", json={"model": MODEL, "input": "x", "bogus": 1})
    assert raw.status_code == 400 and raw.json()["error"]["code"] == "unknown_parameter"
