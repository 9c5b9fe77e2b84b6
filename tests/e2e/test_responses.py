"""The Responses API end to end through the SDK: plain answers streamed and not, memory
through previous_response_id and conversations, function calls, background responses,
store false, and bad input."""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from typing import Any

import httpx
import openai
import psycopg
import pytest
from openai import OpenAI
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from assistd.core.db import async_url
from assistd.responses import service as responses_service
from tests.conftest import Database
from tests.e2e.test_vector_stores import make_docx
from tests.support.runs import upload_png
from tests.support.scripted_chat import ScriptedChatServer, script

MODEL = "gpt-4o-mini"


@pytest.mark.sdk_matrix
def test_plain_answer_is_completed_with_usage(client: OpenAI) -> None:
    response = client.responses.create(model=MODEL, input="Say hi", instructions="Be kind.")
    assert response.status == "completed"
    assert response.output_text == "You said: Say hi"
    assert response.id.startswith("resp_")
    assert response.instructions == "Be kind."
    assert response.usage is not None
    assert response.usage.total_tokens > 0
    message = response.output[0]
    assert message.type == "message"
    assert message.role == "assistant"
    again = client.responses.retrieve(response.id)
    assert again.output_text == response.output_text
    assert again.status == "completed"


@pytest.mark.sdk_matrix
def test_stream_sends_the_documented_events_in_order(client: OpenAI) -> None:
    with client.responses.stream(
        model=MODEL, input=script(reply="one two three", delay_ms=5)
    ) as stream:
        events = list(stream)
        final = stream.get_final_response()
    kinds: list[str] = [e.type for e in events]
    assert kinds[0] == "response.created"
    assert kinds[1] == "response.in_progress"
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


@pytest.mark.sdk_matrix
def test_previous_response_id_carries_the_history(client: OpenAI, chat: ScriptedChatServer) -> None:
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


@pytest.mark.sdk_matrix
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
    assert len(calls) == 1
    assert calls[0].name == "get_weather"
    assert json.loads(calls[0].arguments) == {"city": "Paris"}
    second = client.responses.create(
        model=MODEL,
        previous_response_id=first.id,
        tools=tools,
        input=[{"type": "function_call_output", "call_id": calls[0].call_id, "output": "sunny"}],
    )
    assert second.output_text == "It is sunny in Paris."


@pytest.mark.sdk_matrix
def test_conversation_keeps_items_across_responses(client: OpenAI) -> None:
    conversation = client.conversations.create()
    client.responses.create(model=MODEL, input="Remember 42.", conversation=conversation.id)
    second = client.responses.create(
        model=MODEL, input="What number?", conversation={"id": conversation.id}
    )
    assert second.conversation is not None
    assert second.conversation.id == conversation.id
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


@pytest.mark.sdk_matrix
def test_background_response_is_polled_and_cancelled(client: OpenAI) -> None:
    done = client.responses.create(model=MODEL, input="quick", background=True)
    assert done.status in ("queued", "in_progress")
    deadline = time.monotonic() + 10
    while done.status in ("queued", "in_progress") and time.monotonic() < deadline:
        time.sleep(0.05)
        done = client.responses.retrieve(done.id)
    assert done.status == "completed"
    assert done.output_text == "You said: quick"
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


async def _prune(url: str, retention_days: int) -> int:
    engine = create_async_engine(async_url(url))
    try:
        async with AsyncSession(engine) as session, session.begin():
            return await responses_service.prune(session, retention_days)
    finally:
        await engine.dispose()


@pytest.mark.sdk_matrix
def test_store_false_streams_but_keeps_nothing(
    client: OpenAI, database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    response = client.responses.create(model=MODEL, input="secret", store=False)
    assert response.output_text == "You said: secret"
    with client.responses.stream(model=MODEL, input="also secret", store=False) as stream:
        streamed = stream.get_final_response()
    assert streamed.output_text == "You said: also secret"
    for gone in (response.id, streamed.id):
        with pytest.raises(openai.NotFoundError):
            client.responses.retrieve(gone)
    kept = client.responses.create(model=MODEL, input="keep me")
    # The worker's maintenance deletes unstored responses once they ended (a minute later).
    monkeypatch.setattr(responses_service, "UNSTORED_GRACE_SECONDS", -5)
    with psycopg.connect(database.url) as conn:
        before = conn.execute("SELECT count(*) FROM responses WHERE NOT store").fetchone()
        assert before is not None
        assert before[0] >= 2
        asyncio.run(_prune(database.url, 30))
        after = conn.execute(
            "SELECT count(*) FROM responses WHERE id = ANY(%s)", [[response.id, streamed.id]]
        ).fetchone()
        assert after == (0,)
        messages = conn.execute(
            "SELECT count(*) FROM messages m JOIN runs r ON r.id = m.run_id"
            " WHERE r.api = 'responses' AND m.content::text LIKE '%%secret%%'"
        ).fetchone()
        assert messages == (0,)
    assert client.responses.retrieve(kept.id).output_text == "You said: keep me"


@pytest.mark.sdk_matrix
def test_background_stream_resumes_after_a_sequence_number(client: OpenAI) -> None:
    stream = client.responses.create(
        model=MODEL, input=script(reply="a b c d e", delay_ms=50), background=True, stream=True
    )
    first = []
    for event in stream:
        first.append(event)
        if len(first) == 5:
            break
    stream.close()
    assert first[0].type == "response.created"
    assert first[0].response.status == "queued"
    assert first[1].type == "response.queued"
    response_id = first[0].response.id
    rest = list(client.responses.retrieve(response_id, stream=True, starting_after=4))
    assert [e.sequence_number for e in rest] == list(range(5, 5 + len(rest)))
    assert rest[-1].type == "response.completed"
    deltas = [e.delta for e in first + rest if e.type == "response.output_text.delta"]
    assert "".join(deltas) == "a b c d e"
    whole = list(client.responses.retrieve(response_id, stream=True))
    assert [e.type for e in whole[:5]] == [e.type for e in first]
    plain = client.responses.create(model=MODEL, input="x", background=True)
    with pytest.raises(openai.BadRequestError):
        list(client.responses.retrieve(plain.id, stream=True))


@pytest.mark.sdk_matrix
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
    raw = client.responses.with_raw_response.delete(response.id)
    assert raw.http_response.json() == {"id": response.id, "object": "response", "deleted": True}
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(response.id)


@pytest.mark.sdk_matrix
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
    assert raw.status_code == 400
    assert raw.json()["error"]["code"] == "unknown_parameter"


@pytest.mark.sdk_matrix
def test_request_settings_reach_the_backend(client: OpenAI, chat: ScriptedChatServer) -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    tools: Any = [{"type": "function", "name": "lookup", "parameters": {"type": "object"}}]
    marker = f"settings {uuid.uuid4().hex[:8]}"
    response = client.responses.create(
        model=MODEL,
        input=marker,
        text={"format": {"type": "json_schema", "name": "count", "schema": schema, "strict": True}},
        reasoning={"effort": "low"},
        temperature=0.2,
        top_p=0.9,
        tools=tools,
        tool_choice={"type": "function", "name": "lookup"},
        parallel_tool_calls=False,
        metadata={"team": "a"},
        max_output_tokens=500,
    )
    sent = next(r for r in reversed(chat.requests) if marker in json.dumps(r["messages"]))
    assert sent["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "count", "schema": schema, "strict": True},
    }
    assert sent["reasoning_effort"] == "low"
    assert sent["temperature"] == 0.2
    assert sent["top_p"] == 0.9
    assert sent["tool_choice"] == {"type": "function", "function": {"name": "lookup"}}
    assert sent["parallel_tool_calls"] is False
    assert sent["max_completion_tokens"] == 500
    assert response.text.format.type == "json_schema"
    assert response.tool_choice.type == "function"
    assert response.metadata == {"team": "a"}
    assert response.temperature == 0.2
    assert response.max_output_tokens == 500


@pytest.mark.sdk_matrix
def test_max_output_tokens_ends_incomplete(client: OpenAI) -> None:
    response = client.responses.create(
        model=MODEL,
        input=script(reply=" ".join(["word"] * 40)),
        max_output_tokens=16,
    )
    assert response.status == "incomplete"
    assert response.incomplete_details is not None
    assert response.incomplete_details.reason == "max_output_tokens"
    assert response.output[0].type == "message"
    assert response.output[0].status == "incomplete"


@pytest.mark.sdk_matrix
def test_truncation_disabled_overflow_is_a_400_and_auto_drops_history(
    client: OpenAI, chat: ScriptedChatServer
) -> None:
    huge = "lorem " * 150_000  # over the 128k-token window of the default models
    with pytest.raises(openai.BadRequestError) as overflow:
        client.responses.create(model=MODEL, input=huge)
    assert overflow.value.code == "context_length_exceeded"
    first = client.responses.create(model=MODEL, input=huge[:400_000], truncation="auto")
    second = client.responses.create(
        model=MODEL,
        input=f"short {uuid.uuid4().hex[:8]}",
        previous_response_id=first.id,
        truncation="auto",
    )
    assert second.status == "completed"


# (Not in the SDK matrix: openai 1.x has no input_tokens or compact.)
def test_input_tokens_counts_what_a_response_would_send(client: OpenAI) -> None:
    small = client.responses.input_tokens.count(model=MODEL, input="hello there")
    big = client.responses.input_tokens.count(
        model=MODEL, input="hello there " * 100, instructions="Be brief."
    )
    assert small.object == "response.input_tokens"
    assert 0 < small.input_tokens < big.input_tokens
    first = client.responses.create(model=MODEL, input="hello there " * 50)
    chained = client.responses.input_tokens.count(
        model=MODEL, input="more", previous_response_id=first.id
    )
    assert chained.input_tokens > small.input_tokens


@pytest.mark.sdk_matrix
def test_unknown_tool_resources_are_404(client: OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as store:
        client.responses.create(
            model=MODEL, input="x", tools=[{"type": "file_search", "vector_store_ids": ["vs_x"]}]
        )
    assert store.value.param == "tools[0].vector_store_ids[0]"
    with pytest.raises(openai.NotFoundError):
        client.responses.create(
            model=MODEL, input="x", tools=[{"type": "code_interpreter", "container": "cntr_x"}]
        )
    with pytest.raises(openai.BadRequestError):
        client.responses.create(
            model=MODEL, input="x", tool_choice={"type": "function", "name": "nope"}
        )
    with pytest.raises(openai.BadRequestError):
        client.responses.cancel(client.responses.create(model=MODEL, input="x").id)


def test_compact_keeps_user_messages_and_summarizes_the_rest(
    client: OpenAI, chat: ScriptedChatServer
) -> None:
    first = client.responses.create(model=MODEL, input="The code word is heron.")
    raw = client.responses.with_raw_response.compact(
        model=MODEL, previous_response_id=first.id, input="Anything else?"
    )
    compacted = raw.parse()
    output = raw.http_response.json()["output"]
    assert compacted.object == "response.compaction"
    kinds = [item.type for item in compacted.output]
    assert kinds == ["message", "message", "compaction"]
    summary_request = chat.requests[-1]["messages"]
    assert summary_request[-1]["role"] == "user"
    assert "Summarize the conversation" in summary_request[-1]["content"]
    assert any("heron" in json.dumps(m) for m in summary_request)
    marker = f"after compaction {uuid.uuid4().hex[:8]}"
    follow = client.responses.create(
        model=MODEL,
        input=[
            *output,
            {"role": "user", "content": marker},
        ],
    )
    assert follow.status == "completed"
    sent = next(r for r in reversed(chat.requests) if marker in json.dumps(r["messages"]))
    system = [m for m in sent["messages"] if m["role"] == "system"]
    assert system
    assert system[0]["content"].startswith("Summary of the earlier conversation:")
    assert "Summarize the conversation" in system[0]["content"]  # the scripted model echoes


@pytest.mark.sdk_matrix
def test_input_files_and_images_reach_the_model(client: OpenAI, chat: ScriptedChatServer) -> None:
    document = make_docx(["The launch code is PELICAN-7."])
    uploaded = client.files.create(file=("brief.docx", document), purpose="user_data")
    image_id = upload_png(client)
    inline = base64.b64encode(b"Second note: bring snacks.").decode()
    marker = f"files {uuid.uuid4().hex[:8]}"
    response = client.responses.create(
        model=MODEL,
        input=[
            {
                "role": "user",
                "content": [
                    {"type": "input_text", "text": marker},
                    {"type": "input_file", "file_id": uploaded.id},
                    {
                        "type": "input_file",
                        "filename": "note.txt",
                        "file_data": f"data:text/plain;base64,{inline}",
                    },
                    {"type": "input_image", "file_id": image_id},
                    {"type": "input_image", "image_url": "https://example.com/a.png"},
                ],
            }
        ],
    )
    assert response.status == "completed"
    sent = next(r for r in reversed(chat.requests) if marker in json.dumps(r["messages"]))
    parts = sent["messages"][-1]["content"]
    texts = [p["text"] for p in parts if p["type"] == "text"]
    assert any("PELICAN-7" in t and "brief.docx" in t for t in texts)
    assert any("bring snacks" in t for t in texts)
    urls = [p["image_url"]["url"] for p in parts if p["type"] == "image_url"]
    assert urls[0].startswith("data:image/png;base64,")
    assert urls[1] == "https://example.com/a.png"
    with pytest.raises(openai.BadRequestError) as by_url:
        client.responses.create(
            model=MODEL,
            input=[
                {
                    "role": "user",
                    "content": [{"type": "input_file", "file_url": "http://10.0.0.1/x.pdf"}],
                }
            ],
        )
    assert by_url.value.param == "input[0].content[0].file_url"


def test_nul_characters_are_refused_not_a_500(http: httpx.Client) -> None:
    raw = http.post("/responses", json={"model": MODEL, "input": "a\u0000b"})
    assert raw.status_code == 400
    assert raw.json()["error"]["type"] == "invalid_request_error"


@pytest.mark.sdk_matrix
def test_backend_reasoning_streams_as_a_reasoning_summary(client: OpenAI) -> None:
    with client.responses.stream(
        model=MODEL, input=script(reasoning="First think it over.", reply="Done.")
    ) as stream:
        events = list(stream)
        final = stream.get_final_response()
    kinds = [e.type for e in events]
    order = [
        "response.output_item.added",
        "response.reasoning_summary_part.added",
        "response.reasoning_summary_text.delta",
        "response.reasoning_summary_text.done",
        "response.reasoning_summary_part.done",
        "response.output_item.done",
        "response.content_part.added",
    ]
    positions = [kinds.index(k) for k in order]
    assert positions == sorted(positions)
    summary = "".join(e.delta for e in events if e.type == "response.reasoning_summary_text.delta")
    assert summary == "First think it over."
    reasoning, message = final.output
    assert reasoning.type == "reasoning"
    assert reasoning.summary[0].text == "First think it over."
    assert message.type == "message"
    assert final.output_text == "Done."
