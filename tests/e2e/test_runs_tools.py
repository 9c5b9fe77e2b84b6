"""Function calling end to end: requires_action, submitting outputs, steps, tool_choice and
parallel_tool_calls on the wire, and the 400s of submit_tool_outputs."""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest
from openai import OpenAI
from openai.types.beta.threads import Run

from tests.support.runs import (
    POLL_MS,
    TERMINAL,
    TIME_TOOL,
    WEATHER_TOOL,
    bounded,
    create_and_poll,
    make_assistant,
    messages_asc,
    script,
    sent,
    tag,
    text_of,
    thread_with,
    wait_run,
)
from tests.support.scripted_chat import ScriptedChatServer

# Part of the scenario CI repeats with every supported openai SDK generation.
pytestmark = pytest.mark.sdk_matrix


def submit_and_poll(client: OpenAI, run: Run, outputs: list[dict[str, str]]) -> Run:
    return bounded(
        lambda: client.beta.threads.runs.submit_tool_outputs_and_poll(
            tool_outputs=outputs,  # type: ignore[arg-type]
            run_id=run.id,
            thread_id=run.thread_id,
            poll_interval_ms=POLL_MS,
        )
    )


def pending_calls(run: Run) -> list[Any]:
    assert run.status == "requires_action", (run.status, run.last_error)
    assert run.required_action is not None
    assert run.required_action.type == "submit_tool_outputs"
    return list(run.required_action.submit_tool_outputs.tool_calls)


def test_single_tool_call_round_trip(client: OpenAI, chat: ScriptedChatServer) -> None:
    marker = tag()
    assistant = make_assistant(client)
    thread_id = thread_with(
        client,
        f"weather? {marker} "
        + script(
            tool_calls=[{"name": "get_weather", "arguments": {"city": "Paris"}}],
            after_tools="It is {output0} in Paris.",
        ),
    )

    run = create_and_poll(client, thread_id, assistant.id)

    (call,) = pending_calls(run)
    assert call.type == "function"
    assert call.id
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris"}
    assert run.usage is None  # not terminal yet
    assert run.expires_at is not None
    assert run.completed_at is None
    # While waiting, the tool step is in progress and has no output yet.
    (waiting,) = client.beta.threads.runs.steps.list(run.id, thread_id=thread_id).data
    assert waiting.type == "tool_calls"
    assert waiting.status == "in_progress"
    assert waiting.step_details.type == "tool_calls"
    (waiting_call,) = waiting.step_details.tool_calls
    assert waiting_call.id == call.id
    assert waiting_call.function.output is None  # type: ignore[union-attr]

    done = submit_and_poll(client, run, [{"tool_call_id": call.id, "output": "22C"}])

    assert done.status == "completed", done.last_error
    assert done.id == run.id
    assert done.required_action is None
    assert done.usage is not None
    assert done.usage.total_tokens == done.usage.prompt_tokens + done.usage.completion_tokens
    messages = messages_asc(client, thread_id)
    assert [m.role for m in messages] == ["user", "assistant"]
    assert text_of(messages[-1]) == "It is 22C in Paris."
    assert messages[-1].run_id == run.id

    steps = list(client.beta.threads.runs.steps.list(run.id, thread_id=thread_id, order="asc"))
    assert [s.type for s in steps] == ["tool_calls", "message_creation"]
    tool_step, message_step = steps
    assert tool_step.status == "completed"
    assert tool_step.completed_at is not None
    (step_call,) = tool_step.step_details.tool_calls  # type: ignore[union-attr]
    assert step_call.id == call.id
    assert step_call.type == "function"
    assert step_call.function.name == "get_weather"  # type: ignore[union-attr]
    assert json.loads(step_call.function.arguments) == {"city": "Paris"}  # type: ignore[union-attr]
    assert step_call.function.output == "22C"  # type: ignore[union-attr]
    assert message_step.status == "completed"
    assert message_step.step_details.message_creation.message_id == messages[-1].id  # type: ignore[union-attr]
    for step in steps:
        assert step.run_id == run.id
        assert step.thread_id == thread_id
        assert step.assistant_id == assistant.id
        assert step.usage is not None
    # The run's usage is the sum of its steps'.
    step_tokens = [s.usage.total_tokens for s in steps if s.usage is not None]
    assert done.usage.total_tokens == sum(step_tokens)
    desc = client.beta.threads.runs.steps.list(run.id, thread_id=thread_id)
    assert [s.id for s in desc.data] == [message_step.id, tool_step.id]

    got = client.beta.threads.runs.steps.retrieve(tool_step.id, thread_id=thread_id, run_id=run.id)
    assert got.id == tool_step.id
    assert got.object == "thread.run.step"
    assert got.step_details.tool_calls[0].function.output == "22C"  # type: ignore[union-attr]

    # The second model turn carried the call and its result.
    first, second = sent(chat, marker)
    assert first["messages"][-1]["role"] == "user"
    assistant_turn, tool_turn = second["messages"][-2:]
    assert assistant_turn["role"] == "assistant"
    assert [c["id"] for c in assistant_turn["tool_calls"]] == [call.id]
    assert assistant_turn["tool_calls"][0]["function"]["name"] == "get_weather"
    assert tool_turn == {"role": "tool", "tool_call_id": call.id, "content": "22C"}


def test_parallel_tool_calls_are_all_required_at_once(
    client: OpenAI, chat: ScriptedChatServer
) -> None:
    marker = tag()
    assistant = make_assistant(client, tools=[WEATHER_TOOL, TIME_TOOL])
    thread_id = thread_with(
        client,
        f"both {marker} "
        + script(
            tool_calls=[
                {"name": "get_weather", "arguments": {"city": "Oslo"}},
                {"name": "get_time", "arguments": {"tz": "CET"}},
            ],
            after_tools="{output0} and {output1}",
        ),
    )

    run = create_and_poll(client, thread_id, assistant.id)

    calls = pending_calls(run)
    assert [c.function.name for c in calls] == ["get_weather", "get_time"]
    assert [json.loads(c.function.arguments) for c in calls] == [{"city": "Oslo"}, {"tz": "CET"}]
    assert len({c.id for c in calls}) == 2

    done = submit_and_poll(
        client,
        run,
        [
            {"tool_call_id": calls[1].id, "output": "noon"},
            {"tool_call_id": calls[0].id, "output": "snow"},
        ],
    )

    assert done.status == "completed", done.last_error
    # Outputs are matched by id, not by submission order.
    assert text_of(messages_asc(client, thread_id)[-1]) == "snow and noon"
    (tool_step,) = [
        s
        for s in client.beta.threads.runs.steps.list(run.id, thread_id=thread_id)
        if s.type == "tool_calls"
    ]
    assert tool_step.status == "completed"
    outputs = {c.id: c.function.output for c in tool_step.step_details.tool_calls}  # type: ignore[union-attr]
    assert outputs == {calls[0].id: "snow", calls[1].id: "noon"}
    (_, second) = sent(chat, marker)
    assert [m["tool_call_id"] for m in second["messages"] if m["role"] == "tool"] == [
        calls[0].id,
        calls[1].id,
    ]


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        (
            {"type": "function", "function": {"name": "get_weather"}},
            {"type": "function", "function": {"name": "get_weather"}},
        ),
        ("none", "none"),
        ("required", "required"),
        ("auto", "auto"),
    ],
)
def test_tool_choice_reaches_the_backend(
    client: OpenAI, chat: ScriptedChatServer, choice: Any, expected: Any
) -> None:
    marker = tag()
    assistant = make_assistant(client)
    thread_id = thread_with(client, f"choose {marker} " + script(reply="chosen"))

    run = create_and_poll(client, thread_id, assistant.id, tool_choice=choice)

    assert run.status == "completed", run.last_error
    echoed = run.tool_choice if isinstance(run.tool_choice, str) else run.tool_choice.to_dict()  # type: ignore[union-attr]
    assert echoed == expected
    (body,) = sent(chat, marker)
    assert body["tool_choice"] == expected
    assert body["parallel_tool_calls"] is True


def test_parallel_tool_calls_false_reaches_the_backend(
    client: OpenAI, chat: ScriptedChatServer
) -> None:
    marker = tag()
    assistant = make_assistant(client)
    thread_id = thread_with(
        client,
        f"serial {marker} "
        + script(tool_calls=[{"name": "get_weather", "arguments": {"city": "Rome"}}]),
    )

    run = create_and_poll(client, thread_id, assistant.id, parallel_tool_calls=False)

    assert run.parallel_tool_calls is False
    (call,) = pending_calls(run)
    (body,) = sent(chat, marker)
    assert body["parallel_tool_calls"] is False
    done = submit_and_poll(client, run, [{"tool_call_id": call.id, "output": "sun"}])
    assert done.status == "completed", done.last_error
    assert text_of(messages_asc(client, thread_id)[-1]) == "Tool results: sun"
    assert [b["parallel_tool_calls"] for b in sent(chat, marker)] == [False, False]


def test_tool_choice_naming_an_unknown_function_is_rejected(client: OpenAI) -> None:
    assistant = make_assistant(client)
    thread_id = thread_with(client, "hi")
    with pytest.raises(openai.BadRequestError) as exc:
        client.beta.threads.runs.create(
            thread_id=thread_id,
            assistant_id=assistant.id,
            tool_choice={"type": "function", "function": {"name": "no_such_function"}},
        )
    assert exc.value.param == "tool_choice"
    # Nothing was started: the thread accepts a new run.
    assert client.beta.threads.runs.list(thread_id).data == []


def test_submit_tool_outputs_errors(client: OpenAI) -> None:
    assistant = make_assistant(client, tools=[WEATHER_TOOL, TIME_TOOL])
    thread_id = thread_with(
        client,
        "two calls "
        + script(
            tool_calls=[
                {"name": "get_weather", "arguments": {"city": "Lima"}},
                {"name": "get_time", "arguments": {}},
            ],
            after_tools="{outputs}",
        ),
    )
    run = create_and_poll(client, thread_id, assistant.id)
    first, second = (c.id for c in pending_calls(run))
    runs = client.beta.threads.runs

    def rejected(outputs: list[dict[str, str]]) -> openai.BadRequestError:
        with pytest.raises(openai.BadRequestError) as exc:
            runs.submit_tool_outputs(run.id, thread_id=thread_id, tool_outputs=outputs)  # type: ignore[arg-type]
        assert exc.value.status_code == 400
        assert exc.value.type == "invalid_request_error"
        assert exc.value.param
        return exc.value

    unknown = rejected(
        [{"tool_call_id": "call_unknown", "output": "x"}, {"tool_call_id": second, "output": "y"}]
    )
    assert "call_unknown" in unknown.message
    assert unknown.param == "tool_outputs[0].tool_call_id"

    missing = rejected([{"tool_call_id": first, "output": "x"}])
    assert second in missing.message
    assert missing.param == "tool_outputs"

    duplicate = rejected(
        [
            {"tool_call_id": first, "output": "x"},
            {"tool_call_id": first, "output": "x"},
            {"tool_call_id": second, "output": "y"},
        ]
    )
    assert duplicate.param == "tool_outputs[1].tool_call_id"

    # The rejected submissions changed nothing.
    still = runs.retrieve(run.id, thread_id=thread_id)
    assert still.status == "requires_action"
    assert [c.id for c in pending_calls(still)] == [first, second]

    # The plain (non-polling) submit answers with the run, queued again.
    resumed = runs.submit_tool_outputs(
        run.id,
        thread_id=thread_id,
        tool_outputs=[
            {"tool_call_id": first, "output": "x"},
            {"tool_call_id": second, "output": "y"},
        ],
    )
    assert resumed.id == run.id
    assert resumed.status == "queued"
    assert resumed.required_action is None
    assert resumed.expires_at is not None
    done = wait_run(client, resumed, TERMINAL)
    assert done.status == "completed", done.last_error
    assert text_of(messages_asc(client, thread_id)[-1]) == "x, y"

    late = rejected([{"tool_call_id": first, "output": "again"}])
    assert late.param == "run_id"
    assert "completed" in late.message


def test_text_before_tool_calls_is_its_own_message_step(
    client: OpenAI, chat: ScriptedChatServer
) -> None:
    marker = tag()
    assistant = make_assistant(client)
    thread_id = thread_with(
        client,
        f"check {marker} "
        + script(
            reply_before_tools="Let me check.",
            tool_calls=[{"name": "get_weather", "arguments": {"city": "Kyiv"}}],
            after_tools="Result: {output0}",
        ),
    )

    run = create_and_poll(client, thread_id, assistant.id)
    (call,) = pending_calls(run)
    done = submit_and_poll(client, run, [{"tool_call_id": call.id, "output": "rain"}])

    assert done.status == "completed", done.last_error
    messages = messages_asc(client, thread_id)
    assert [(m.role, text_of(m), m.status) for m in messages[1:]] == [
        ("assistant", "Let me check.", "completed"),
        ("assistant", "Result: rain", "completed"),
    ]
    steps = list(client.beta.threads.runs.steps.list(run.id, thread_id=thread_id, order="asc"))
    assert [(s.type, s.status) for s in steps] == [
        ("message_creation", "completed"),
        ("tool_calls", "completed"),
        ("message_creation", "completed"),
    ]
    assert [
        s.step_details.message_creation.message_id  # type: ignore[union-attr]
        for s in steps
        if s.type == "message_creation"
    ] == [messages[1].id, messages[2].id]
    # The second turn replays the text, the call and its result, in that order.
    _, second = sent(chat, marker)
    tail = second["messages"][-3:]
    assert [m["role"] for m in tail] == ["assistant", "assistant", "tool"]
    assert "Let me check." in json.dumps(tail[0])
    assert tail[1]["tool_calls"][0]["id"] == call.id
    assert tail[2]["content"] == "rain"
