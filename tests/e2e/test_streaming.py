"""Streaming runs (server-sent events) with the official SDK's ``AssistantEventHandler`` and raw.

The session's API server runs with ``--no-worker``: every run here executes in the separate
worker process, which writes the stream events to the ``run_events`` table; the API process
that answers the streaming request tails them (LISTEN/NOTIFY). So every stream in this file
crosses a process boundary, which is the production setup.

Replies come from the scripted chat backend (``tests/support/scripted_chat.py``), which streams
a ``#script`` reply word by word: one word, one ``thread.message.delta``.
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import openai
import psycopg
import pytest
from openai import AssistantEventHandler, OpenAI
from openai.types.beta import AssistantStreamEvent
from openai.types.beta.threads import Text, TextDelta

from tests.conftest import Database
from tests.support.scripted_chat import script

# Part of the scenario CI repeats with every supported openai SDK generation.
pytestmark = pytest.mark.sdk_matrix

PREFIX = [
    "thread.run.created",
    "thread.run.queued",
    "thread.run.in_progress",
]
MESSAGE_OPEN = [
    "thread.run.step.created",
    "thread.run.step.in_progress",
    "thread.message.created",
    "thread.message.in_progress",
]
MESSAGE_CLOSE = [
    "thread.message.completed",
    "thread.run.step.completed",
    "thread.run.completed",
]
WEATHER_TOOL: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather of a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


def words(text: str) -> list[str]:
    """How the scripted backend splits a reply into deltas."""
    return re.findall(r"\S+\s*", text)


def text_answer(n_deltas: int) -> list[str]:
    """The canonical event sequence of a run that answers with one text message."""
    return PREFIX + MESSAGE_OPEN + ["thread.message.delta"] * n_deltas + MESSAGE_CLOSE


class Recorder(AssistantEventHandler):
    """Records every event (name, data, arrival time) and every text delta."""

    def __init__(self) -> None:
        super().__init__()
        self.names: list[str] = []
        self.datas: list[Any] = []
        self.times: list[float] = []
        self.deltas: list[str] = []
        self.texts_done: list[str] = []

    def on_event(self, event: AssistantStreamEvent) -> None:
        self.names.append(event.event)
        # A copy: the SDK accumulates deltas into the created message's object in place.
        self.datas.append(event.data.model_copy(deep=True))
        self.times.append(time.monotonic())

    def on_text_delta(self, delta: TextDelta, snapshot: Text) -> None:
        if delta.value:
            self.deltas.append(delta.value)

    def on_text_done(self, text: Text) -> None:
        self.texts_done.append(text.value)

    def of(self, name: str) -> list[Any]:
        """The data of every event called ``name``."""
        return [d for n, d in zip(self.names, self.datas, strict=True) if n == name]


def message_text(message: Any) -> str:
    """The text of a message's text parts."""
    return "".join(p.text.value for p in message.content if p.type == "text")


@pytest.fixture
def assistant_id(client: OpenAI) -> str:
    return client.beta.assistants.create(model="gpt-4o", instructions="Be brief.").id


@pytest.fixture
def tool_assistant_id(client: OpenAI) -> str:
    return client.beta.assistants.create(model="gpt-4o", tools=[WEATHER_TOOL]).id


def new_thread(client: OpenAI, content: str) -> str:
    return client.beta.threads.create(messages=[{"role": "user", "content": content}]).id


def wait_until_settled(client: OpenAI, thread_id: str, run_id: str, timeout: float = 15) -> Any:
    """Poll until the run leaves queued/in_progress/cancelling."""
    deadline = time.monotonic() + timeout
    while True:
        run = client.beta.threads.runs.retrieve(run_id, thread_id=thread_id)
        if run.status not in ("queued", "in_progress", "cancelling"):
            return run
        assert time.monotonic() < deadline, f"run {run_id} stuck in {run.status}"
        time.sleep(0.05)


# ---- raw SSE ------------------------------------------------------------------------------


def sse_frames(response: httpx.Response) -> Iterator[tuple[str, str]]:
    """Parse ``event:``/``data:`` frames strictly: one of each per frame, blank-line ended."""
    event: str | None = None
    data: str | None = None
    for line in response.iter_lines():
        if line.startswith(":"):
            continue  # comment (keep-alive)
        if line == "":
            if event is None and data is None:
                continue
            assert event is not None, f"frame without event: {data!r}"
            assert data is not None, f"frame without data: {event!r}"
            yield event, data
            event = data = None
            continue
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "event":
            assert event is None, f"two event lines in one frame: {event!r}, {value!r}"
            event = value
        elif field == "data":
            assert data is None, f"data split over lines in frame {event!r}"
            data = value
        else:
            raise AssertionError(f"unexpected SSE line {line!r}")
    assert event is None, f"stream ended inside a frame: {event!r}"
    assert data is None, f"stream ended inside a frame: {data!r}"


def expected_object(event: str) -> str:
    if event == "thread.created":
        return "thread"
    for prefix in ("thread.run.step", "thread.message", "thread.run"):
        if event.startswith(prefix + "."):
            return prefix + ".delta" if event.endswith(".delta") else prefix
    raise AssertionError(f"unexpected event {event!r}")


def raw_stream(http: httpx.Client, path: str, body: dict[str, Any]) -> list[tuple[str, Any]]:
    """POST a streaming request; return ``(event, parsed data)`` up to and including done."""
    frames: list[tuple[str, Any]] = []
    with http.stream("POST", path, json={**body, "stream": True}) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        for event, data in sse_frames(response):
            if frames and frames[-1][0] == "done":
                raise AssertionError(f"event {event!r} after done")
            if event == "done":
                assert data == "[DONE]"
                frames.append((event, data))
            else:
                frames.append((event, json.loads(data)))
    return frames


# ---- text answers -------------------------------------------------------------------------


def test_sdk_stream_text_answer_canonical_order(client: OpenAI, assistant_id: str) -> None:
    reply = "Streaming works one word at a time, exactly as promised."
    thread_id = new_thread(client, script(reply=reply, delay_ms=5))
    handler = Recorder()
    with client.beta.threads.runs.stream(
        thread_id=thread_id, assistant_id=assistant_id, event_handler=handler
    ) as stream:
        assert stream is handler
        final_run = stream.get_final_run()
        final_messages = stream.get_final_messages()
        final_steps = stream.get_final_run_steps()

    n = len(words(reply))
    assert n == 10
    assert handler.names == text_answer(n)
    # Token-level deltas: one per streamed word, in order.
    assert handler.deltas == words(reply)
    assert "".join(handler.deltas) == reply
    assert handler.texts_done == [reply]

    assert final_run.status == "completed"
    assert final_run.thread_id == thread_id
    assert final_run.usage is not None
    assert final_run.usage.completion_tokens == n
    assert final_run.usage.prompt_tokens > 0
    assert final_run.usage.total_tokens == n + final_run.usage.prompt_tokens
    run_events = [d for name, d in zip(handler.names, handler.datas, strict=True) if "run." in name]
    assert {d.id for d in run_events if d.object == "thread.run"} == {final_run.id}
    assert [d.status for d in handler.of("thread.run.created")] == ["queued"]
    assert [d.status for d in handler.of("thread.run.in_progress")] == ["in_progress"]

    # Message snapshots: created empty, completed with the full text.
    (created,) = handler.of("thread.message.created")
    assert created.status == "in_progress"
    assert created.content == []
    assert created.run_id == final_run.id
    assert [m.id for m in final_messages] == [created.id]
    assert final_messages[0].status == "completed"
    assert message_text(final_messages[0]) == reply
    assert {d.id for d in handler.of("thread.message.delta")} == {created.id}

    # The same text is stored.
    listed = client.beta.threads.messages.list(thread_id, run_id=final_run.id)
    assert [m.id for m in listed.data] == [created.id]
    assert listed.data[0].role == "assistant"
    assert message_text(listed.data[0]) == reply

    # Steps: one message_creation step, completed with usage.
    assert len(final_steps) == 1
    step = final_steps[0]
    assert step.type == "message_creation"
    assert step.step_details.type == "message_creation"
    assert step.step_details.message_creation.message_id == created.id
    assert step.run_id == final_run.id
    (step_done,) = handler.of("thread.run.step.completed")
    assert step_done.id == step.id
    assert step_done.status == "completed"
    assert step_done.usage is not None
    assert step_done.usage.completion_tokens == n
    stored = client.beta.threads.runs.steps.list(final_run.id, thread_id=thread_id)
    assert [s.id for s in stored.data] == [step.id]


def test_sdk_text_deltas_iterator(client: OpenAI, assistant_id: str) -> None:
    reply = "Iterating text deltas yields every word."
    thread_id = new_thread(client, script(reply=reply))
    with client.beta.threads.runs.stream(thread_id=thread_id, assistant_id=assistant_id) as stream:
        pieces = list(stream.text_deltas)
        run = stream.get_final_run()
    assert pieces == words(reply)
    assert run.status == "completed"
    listed = client.beta.threads.messages.list(thread_id, run_id=run.id)
    assert message_text(listed.data[0]) == "".join(pieces)


def test_raw_http_stream_framing(client: OpenAI, http: httpx.Client, assistant_id: str) -> None:
    reply = "Raw frames carry whole objects."
    thread_id = new_thread(client, script(reply=reply))
    frames = raw_stream(http, f"/threads/{thread_id}/runs", {"assistant_id": assistant_id})

    assert frames[-1] == ("done", "[DONE]")
    assert [e for e, _ in frames].count("done") == 1
    events = frames[:-1]
    n = len(words(reply))
    assert [e for e, _ in events] == text_answer(n)
    for event, data in events:
        assert isinstance(data, dict), event
        assert data["object"] == expected_object(event), (event, data)
    run_id = events[0][1]["id"]
    assert run_id.startswith("run_")
    for event, data in events:
        if data["object"] == "thread.run":
            assert data["id"] == run_id
            assert data["thread_id"] == thread_id
            expected_status = event.removeprefix("thread.run.").replace("created", "queued")
            assert data["status"] == expected_status
        elif data["object"] == "thread.run.step":
            assert data["run_id"] == run_id

    message = next(d for e, d in events if e == "thread.message.created")
    deltas = [d for e, d in events if e == "thread.message.delta"]
    for delta in deltas:
        assert delta["id"] == message["id"]
        assert set(delta) == {"id", "object", "delta"}
        (part,) = delta["delta"]["content"]
        assert part["index"] == 0
        assert part["type"] == "text"
        assert part["text"]["annotations"] == []
    assert "".join(d["delta"]["content"][0]["text"]["value"] for d in deltas) == reply

    completed_message = next(d for e, d in events if e == "thread.message.completed")
    assert completed_message["status"] == "completed"
    assert completed_message["content"] == [
        {"type": "text", "text": {"value": reply, "annotations": []}}
    ]
    completed_run = events[-1][1]
    assert completed_run["status"] == "completed"
    assert completed_run["usage"]["completion_tokens"] == n

    # The stream was a view: the stored run and message agree.
    run = client.beta.threads.runs.retrieve(run_id, thread_id=thread_id)
    assert run.status == "completed"
    listed = client.beta.threads.messages.list(thread_id, run_id=run_id)
    assert message_text(listed.data[0]) == reply


def test_create_and_run_stream_starts_with_thread_created(
    client: OpenAI, assistant_id: str
) -> None:
    reply = "A brand new thread."
    handler = Recorder()
    with client.beta.threads.create_and_run_stream(
        assistant_id=assistant_id,
        thread={"messages": [{"role": "user", "content": script(reply=reply)}]},
        event_handler=handler,
    ) as stream:
        run = stream.get_final_run()

    assert handler.names[0] == "thread.created"
    thread = handler.datas[0]
    assert thread.object == "thread"
    assert thread.id == run.thread_id
    assert handler.names[1:] == text_answer(len(words(reply)))
    assert run.status == "completed"
    assert "".join(handler.deltas) == reply
    listed = client.beta.threads.messages.list(thread.id, order="asc")
    assert [m.role for m in listed.data] == ["user", "assistant"]
    assert message_text(listed.data[1]) == reply


def test_raw_create_and_run_stream(http: httpx.Client, assistant_id: str) -> None:
    frames = raw_stream(
        http,
        "/threads/runs",
        {
            "assistant_id": assistant_id,
            "thread": {"messages": [{"role": "user", "content": script(reply="Hi there")}]},
        },
    )
    names = [e for e, _ in frames]
    assert names == ["thread.created", *text_answer(2), "done"]
    assert frames[0][1]["object"] == "thread"
    assert frames[1][1]["thread_id"] == frames[0][1]["id"]


def stored_events(database: Database, run_id: str) -> list[str]:
    """The stream events the run has recorded, in order."""
    with psycopg.connect(database.url, autocommit=True) as db:
        rows = db.execute(
            "SELECT event FROM run_events WHERE run_id = %s ORDER BY id", [run_id]
        ).fetchall()
    return [row[0] for row in rows]


def test_only_streamed_parts_of_a_run_record_events(
    client: OpenAI, tool_assistant_id: str, database: Database
) -> None:
    """A run created without ``stream`` records no stream events (no request could ever read
    them); submitting its tool outputs with a stream records and streams that part, in full."""
    thread_id = new_thread(
        client,
        script(
            tool_calls=[{"name": "get_weather", "arguments": {"city": "Oslo"}}],
            after_tools="It is {output0} in Oslo.",
        ),
    )
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread_id, assistant_id=tool_assistant_id, poll_interval_ms=50
    )
    assert run.status == "requires_action"
    assert run.required_action is not None
    (call,) = run.required_action.submit_tool_outputs.tool_calls
    steps = client.beta.threads.runs.steps.list(run.id, thread_id=thread_id)
    assert [(s.type, s.status) for s in steps.data] == [("tool_calls", "in_progress")]
    assert stored_events(database, run.id) == []

    handler = Recorder()
    with client.beta.threads.runs.submit_tool_outputs_stream(
        run_id=run.id,
        thread_id=thread_id,
        tool_outputs=[{"tool_call_id": call.id, "output": "cold"}],
        event_handler=handler,
    ) as stream:
        final = stream.get_final_run()
    reply = "It is cold in Oslo."
    part = (
        ["thread.run.step.completed", "thread.run.queued", "thread.run.in_progress"]
        + MESSAGE_OPEN
        + ["thread.message.delta"] * len(words(reply))
        + MESSAGE_CLOSE
    )
    assert handler.names == part
    assert "".join(handler.deltas) == reply
    assert final.status == "completed"
    assert stored_events(database, run.id) == part

    # The other way round: a streamed start records its events; a resumption without a
    # stream records none, and the run still completes with its message.
    second_thread = new_thread(
        client,
        script(
            tool_calls=[{"name": "get_weather", "arguments": {"city": "Rome"}}],
            after_tools="It is {output0} in Rome.",
        ),
    )
    with client.beta.threads.runs.stream(
        thread_id=second_thread, assistant_id=tool_assistant_id
    ) as stream:
        waiting = stream.get_final_run()
    assert waiting.status == "requires_action"
    assert waiting.required_action is not None
    (call,) = waiting.required_action.submit_tool_outputs.tool_calls
    recorded = stored_events(database, waiting.id)
    assert recorded[:3] == PREFIX
    assert recorded[-1] == "thread.run.requires_action"
    done = client.beta.threads.runs.submit_tool_outputs_and_poll(
        run_id=waiting.id,
        thread_id=second_thread,
        tool_outputs=[{"tool_call_id": call.id, "output": "warm"}],
        poll_interval_ms=50,
    )
    assert done.status == "completed"
    messages = client.beta.threads.messages.list(second_thread, run_id=waiting.id)
    assert [message_text(m) for m in messages.data] == ["It is warm in Rome."]
    assert stored_events(database, waiting.id) == recorded


# ---- function calling ---------------------------------------------------------------------


def test_function_call_round_trip_through_streams(client: OpenAI, tool_assistant_id: str) -> None:
    arguments = {"city": "Paris", "unit": "celsius"}
    thread_id = new_thread(
        client,
        script(
            tool_calls=[{"name": "get_weather", "arguments": arguments}],
            after_tools="It is {output0} in Paris today.",
        ),
    )
    first = Recorder()
    with client.beta.threads.runs.stream(
        thread_id=thread_id, assistant_id=tool_assistant_id, event_handler=first
    ) as stream:
        run = stream.get_final_run()
        steps = stream.get_final_run_steps()

    # Stream (2): … step.created (tool_calls, empty) → step.in_progress → deltas → requires_action.
    names = first.names
    assert names[:5] == [*PREFIX, "thread.run.step.created", "thread.run.step.in_progress"]
    assert names[-1] == "thread.run.requires_action"
    assert len(names) > 6
    assert set(names[5:-1]) == {"thread.run.step.delta"}, names
    (created_step,) = first.of("thread.run.step.created")
    assert created_step.type == "tool_calls"
    assert created_step.step_details.type == "tool_calls"
    assert created_step.step_details.tool_calls == []
    assert not first.deltas

    assert run.status == "requires_action"
    assert run.required_action is not None
    (call,) = run.required_action.submit_tool_outputs.tool_calls
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == arguments

    # Deltas are incremental: id and name exactly once, arguments concatenate to the JSON.
    tool_deltas = [
        tc
        for d in first.of("thread.run.step.delta")
        for tc in (d.delta.step_details.tool_calls or [])
    ]
    assert {d.id for d in first.of("thread.run.step.delta")} == {created_step.id}
    assert all(tc.index == 0 and tc.type == "function" for tc in tool_deltas)
    assert [tc.id for tc in tool_deltas if tc.id] == [call.id]
    assert [tc.function.name for tc in tool_deltas if tc.function and tc.function.name] == [
        "get_weather"
    ]
    streamed_args = "".join(
        tc.function.arguments for tc in tool_deltas if tc.function and tc.function.arguments
    )
    assert streamed_args == call.function.arguments

    # The SDK's accumulated snapshot is exactly the tool call (nothing doubled).
    (step,) = steps
    assert step.id == created_step.id
    assert step.step_details.type == "tool_calls"
    (snapshot_call,) = step.step_details.tool_calls
    assert snapshot_call.type == "function"
    assert snapshot_call.id == call.id
    assert snapshot_call.function.name == "get_weather"
    assert snapshot_call.function.arguments == call.function.arguments
    assert json.loads(snapshot_call.function.arguments) == arguments

    # Stream (3): submit the output with a new handler.
    second = Recorder()
    with client.beta.threads.runs.submit_tool_outputs_stream(
        run_id=run.id,
        thread_id=thread_id,
        tool_outputs=[{"tool_call_id": call.id, "output": "sunny"}],
        event_handler=second,
    ) as stream:
        final_run = stream.get_final_run()
        final_messages = stream.get_final_messages()

    reply = "It is sunny in Paris today."
    n = len(words(reply))
    assert second.names == (
        ["thread.run.step.completed", "thread.run.queued", "thread.run.in_progress"]
        + MESSAGE_OPEN
        + ["thread.message.delta"] * n
        + MESSAGE_CLOSE
    )
    tool_step_done = second.datas[0]
    assert tool_step_done.id == step.id
    assert tool_step_done.status == "completed"
    (done_call,) = tool_step_done.step_details.tool_calls
    assert done_call.id == call.id
    assert done_call.function.name == "get_weather"
    assert done_call.function.arguments == call.function.arguments
    assert done_call.function.output == "sunny"
    assert all(d.id == run.id for d in second.of("thread.run.queued"))

    assert final_run.id == run.id
    assert final_run.status == "completed"
    assert final_run.required_action is None
    assert final_run.usage is not None
    assert final_run.usage.total_tokens > 0
    assert "".join(second.deltas) == reply
    assert [message_text(m) for m in final_messages] == [reply]
    listed = client.beta.threads.messages.list(thread_id, run_id=run.id)
    assert [message_text(m) for m in listed.data] == [reply]
    stored_steps = client.beta.threads.runs.steps.list(run.id, thread_id=thread_id, order="asc")
    assert [s.type for s in stored_steps.data] == ["tool_calls", "message_creation"]
    assert all(s.status == "completed" for s in stored_steps.data)


def test_raw_requires_action_stream_ends_with_done(
    client: OpenAI, http: httpx.Client, tool_assistant_id: str
) -> None:
    thread_id = new_thread(
        client, script(tool_calls=[{"name": "get_weather", "arguments": {"city": "Oslo"}}])
    )
    frames = raw_stream(http, f"/threads/{thread_id}/runs", {"assistant_id": tool_assistant_id})
    names = [e for e, _ in frames]
    assert names[-2:] == ["thread.run.requires_action", "done"]
    requires = frames[-2][1]
    assert requires["status"] == "requires_action"
    (call,) = requires["required_action"]["submit_tool_outputs"]["tool_calls"]
    assert call["function"]["name"] == "get_weather"
    deltas = [d for e, d in frames if e == "thread.run.step.delta"]
    assert deltas
    for delta in deltas:
        assert delta["object"] == "thread.run.step.delta"
        for tc in delta["delta"]["step_details"]["tool_calls"]:
            assert tc["index"] == 0
            assert tc["type"] == "function"
    assert "id" in deltas[0]["delta"]["step_details"]["tool_calls"][0]
    assert all("id" not in d["delta"]["step_details"]["tool_calls"][0] for d in deltas[1:])
    # The run rests: it stays requires_action after the stream ended.
    run = client.beta.threads.runs.retrieve(requires["id"], thread_id=thread_id)
    assert run.status == "requires_action"
    assert run.required_action is not None
    assert run.required_action.submit_tool_outputs.tool_calls[0].id == call["id"]


# ---- cancellation -------------------------------------------------------------------------


def test_cancel_mid_stream(client: OpenAI, assistant_id: str) -> None:
    reply = " ".join(f"word{i}" for i in range(40))  # 40 words, 200 ms apart: 8 s in full
    thread_id = new_thread(client, script(reply=reply, delay_ms=200))
    handler = Recorder()
    before_cancel = ""
    cancelled_at: float | None = None
    cancel_index = -1
    with client.beta.threads.runs.stream(
        thread_id=thread_id, assistant_id=assistant_id, event_handler=handler
    ) as stream:
        for event in stream:
            if cancelled_at is None and len(handler.deltas) >= 3:
                assert event.event == "thread.message.delta"
                before_cancel = "".join(handler.deltas)
                run_id = handler.datas[0].id
                cancel_index = len(handler.names)
                cancelled_at = time.monotonic()
                answer = client.beta.threads.runs.cancel(run_id, thread_id=thread_id)
                assert answer.status in ("cancelling", "cancelled")
        ended_at = time.monotonic()
        final_run = stream.get_final_run()
        final_messages = stream.get_final_messages()

    assert cancelled_at is not None
    lag = ended_at - cancelled_at
    assert lag < 2.0, f"the stream ended {lag:.2f} s after the cancel"
    assert handler.names[: len(PREFIX) + len(MESSAGE_OPEN)] == PREFIX + MESSAGE_OPEN
    assert handler.names[-4:] == [
        "thread.message.incomplete",
        "thread.run.step.cancelled",
        "thread.run.cancelling",
        "thread.run.cancelled",
    ]
    # Between the cancel and the end only deltas already produced may arrive.
    assert set(handler.names[cancel_index:-4]) <= {"thread.message.delta"}

    assert final_run.status == "cancelled"
    assert final_run.cancelled_at is not None
    (message,) = final_messages
    assert message.status == "incomplete"
    assert message.incomplete_details is not None
    assert message.incomplete_details.reason == "run_cancelled"
    text = message_text(message)
    assert text == "".join(handler.deltas)
    assert text.startswith(before_cancel)
    assert len(before_cancel) > 0
    assert reply.startswith(text)
    assert len(text) < len(reply)
    (step,) = handler.of("thread.run.step.cancelled")
    assert step.status == "cancelled"
    assert step.cancelled_at is not None

    stored = client.beta.threads.messages.list(thread_id, run_id=final_run.id).data
    assert [m.id for m in stored] == [message.id]
    assert stored[0].status == "incomplete"
    assert stored[0].incomplete_details is not None
    assert stored[0].incomplete_details.reason == "run_cancelled"
    assert message_text(stored[0]) == text
    run = client.beta.threads.runs.retrieve(final_run.id, thread_id=thread_id)
    assert run.status == "cancelled"


# ---- concurrency, failures, errors --------------------------------------------------------


def test_concurrent_streams_do_not_mix(client: OpenAI, assistant_id: str) -> None:
    replies = [
        " ".join(f"alpha{i}" for i in range(12)),
        " ".join(f"beta{i}" for i in range(12)),
    ]
    threads = [new_thread(client, script(reply=r, delay_ms=30)) for r in replies]
    start = threading.Barrier(2)

    def run_one(thread_id: str) -> tuple[Recorder, Any]:
        handler = Recorder()
        start.wait(10)
        with client.beta.threads.runs.stream(
            thread_id=thread_id, assistant_id=assistant_id, event_handler=handler
        ) as stream:
            return handler, stream.get_final_run()

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(run_one, threads))

    (h1, r1), (h2, r2) = results
    assert r1.id != r2.id
    # The two streams were live at the same time.
    assert h1.times[0] < h2.times[-1]
    assert h2.times[0] < h1.times[-1]
    for (handler, run), thread_id, reply in zip(results, threads, replies, strict=True):
        assert run.status == "completed"
        assert run.thread_id == thread_id
        assert handler.names == text_answer(len(words(reply)))
        assert "".join(handler.deltas) == reply
        message_ids = {d.id for d in handler.of("thread.message.created")}
        assert len(message_ids) == 1
        for name, data in zip(handler.names, handler.datas, strict=True):
            if data.object == "thread.run":
                assert data.id == run.id, name
            elif data.object in ("thread.run.step", "thread.message"):
                assert data.run_id == run.id, name
            elif data.object == "thread.message.delta":
                assert data.id in message_ids


def test_backend_failure_ends_stream_with_run_failed(
    client: OpenAI, http: httpx.Client, assistant_id: str
) -> None:
    # The backend answers 500 ten times; the worker's client retries twice, then gives up.
    failing = script(fail={"key": uuid.uuid4().hex, "times": 10, "status": 500}, reply="never")
    thread_id = new_thread(client, failing)
    handler = Recorder()
    with client.beta.threads.runs.stream(
        thread_id=thread_id, assistant_id=assistant_id, event_handler=handler
    ) as stream:
        run = stream.get_final_run()  # does not raise

    assert handler.names[:3] == PREFIX
    assert handler.names[-1] == "thread.run.failed"
    assert "thread.message.delta" not in handler.names
    assert not handler.deltas
    assert run.status == "failed"
    assert run.failed_at is not None
    assert run.last_error is not None
    assert run.last_error.code == "server_error"
    assert run.last_error.message
    stored = client.beta.threads.runs.retrieve(run.id, thread_id=thread_id)
    assert stored.status == "failed"
    assert stored.last_error is not None
    assert stored.last_error.code == "server_error"

    # The same on the wire: thread.run.failed, then done, nothing else.
    other = new_thread(
        client, script(fail={"key": uuid.uuid4().hex, "times": 10, "status": 500}, reply="x")
    )
    frames = raw_stream(http, f"/threads/{other}/runs", {"assistant_id": assistant_id})
    assert [e for e, _ in frames][-2:] == ["thread.run.failed", "done"]
    assert frames[-2][1]["last_error"]["code"] == "server_error"
    assert "error" not in [e for e, _ in frames]


def test_errors_before_stream_are_json(
    client: OpenAI, http: httpx.Client, assistant_id: str
) -> None:
    thread_id = new_thread(client, script(reply="slow " * 20, delay_ms=100))

    # Unknown assistant → 404 JSON, with the SDK and raw.
    with (
        pytest.raises(openai.NotFoundError) as not_found,
        client.beta.threads.runs.stream(thread_id=thread_id, assistant_id="asst_missing"),
    ):
        pass
    assert "asst_missing" in not_found.value.message
    response = http.post(
        f"/threads/{thread_id}/runs", json={"assistant_id": "asst_missing", "stream": True}
    )
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["error"]["type"] == "invalid_request_error"

    # Unknown thread → 404 JSON.
    response = http.post(
        "/threads/thread_missing/runs", json={"assistant_id": assistant_id, "stream": True}
    )
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/json")

    # Active run on the thread → 400 JSON, not a stream.
    busy = client.beta.threads.runs.create(thread_id=thread_id, assistant_id=assistant_id)
    try:
        with (
            pytest.raises(openai.BadRequestError) as conflict,
            client.beta.threads.runs.stream(thread_id=thread_id, assistant_id=assistant_id),
        ):
            pass
        assert busy.id in conflict.value.message
        response = http.post(
            f"/threads/{thread_id}/runs", json={"assistant_id": assistant_id, "stream": True}
        )
        assert response.status_code == 400
        assert response.headers["content-type"].startswith("application/json")
        assert response.json()["error"]["type"] == "invalid_request_error"

        # Tool outputs for a run that does not wait for them → 400 JSON too.
        response = http.post(
            f"/threads/{thread_id}/runs/{busy.id}/submit_tool_outputs",
            json={"tool_outputs": [{"tool_call_id": "call_x", "output": "1"}], "stream": True},
        )
        assert response.status_code == 400
        assert response.headers["content-type"].startswith("application/json")
    finally:
        client.beta.threads.runs.cancel(busy.id, thread_id=thread_id)
    assert wait_until_settled(client, thread_id, busy.id).status == "cancelled"
