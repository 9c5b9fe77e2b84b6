"""Backend streams that end badly, through the SDK: a stream cut mid-answer or mid tool call,
an empty stream, one with only ``[DONE]``, and Azure's ``content_filter`` finish. None of them
may end the run ``completed``; each is checked on a polled run and on a streamed one."""

from __future__ import annotations

from typing import Any

import pytest
from openai import AssistantEventHandler, OpenAI
from openai.types.beta import AssistantStreamEvent
from openai.types.beta.threads import Message, Run

from tests.support.runs import (
    create_and_poll,
    make_assistant,
    messages_asc,
    script,
    sent,
    tag,
    text_of,
    thread_with,
)
from tests.support.scripted_chat import ScriptedChatServer

MODES = ["polled", "streamed"]
ATTEMPTS = 3
"""The first backend call and the test server's two retries (ASSISTD_MODELS__MAX_RETRIES)."""


class Names(AssistantEventHandler):
    """Records the name of every stream event."""

    def __init__(self) -> None:
        super().__init__()
        self.names: list[str] = []

    def on_event(self, event: AssistantStreamEvent) -> None:
        self.names.append(event.event)


def execute(client: OpenAI, mode: str, thread_id: str, assistant_id: str) -> tuple[Run, list[str]]:
    """Run the thread polled or streamed; the run as stored and the stream's event names."""
    if mode == "polled":
        run = create_and_poll(client, thread_id, assistant_id)
        return run, []
    handler = Names()
    with client.beta.threads.runs.stream(
        thread_id=thread_id, assistant_id=assistant_id, event_handler=handler
    ) as stream:
        streamed = stream.get_final_run()
    run = client.beta.threads.runs.retrieve(streamed.id, thread_id=thread_id)
    assert streamed.status == run.status
    return run, handler.names


def replies(client: OpenAI, run: Run) -> list[Message]:
    """The messages the run wrote."""
    return [m for m in messages_asc(client, run.thread_id) if m.run_id == run.id]


def assert_failed(run: Run, names: list[str], message: str) -> None:
    """Failed with ``server_error`` and ``message``; a stream ends with thread.run.failed."""
    assert run.status == "failed", run
    assert run.last_error is not None
    assert run.last_error.code == "server_error"
    assert run.last_error.message == message
    assert run.failed_at is not None
    assert run.completed_at is None
    assert run.required_action is None
    if names:
        assert names[-1] == "thread.run.failed", names
        assert "thread.run.completed" not in names
        assert "thread.run.requires_action" not in names


@pytest.mark.parametrize("mode", MODES)
def test_stream_cut_mid_answer_fails_and_keeps_the_partial_text(
    client: OpenAI, chat: ScriptedChatServer, mode: str
) -> None:
    marker = tag()
    assistant = make_assistant(client)
    thread_id = thread_with(
        client, f"cut {marker} " + script(reply="one two three four five", cut_after=3)
    )

    run, names = execute(client, mode, thread_id, assistant.id)

    assert_failed(
        run,
        names,
        "The model's response stream ended before it finished (no finish_reason) "
        "after 14 characters.",
    )
    (message,) = replies(client, run)
    assert text_of(message) == "one two three "
    assert message.status == "incomplete"
    assert message.incomplete_details is not None
    assert message.incomplete_details.reason == "run_failed"
    if names:
        assert names.count("thread.message.delta") == 3
        assert "thread.message.incomplete" in names
        assert "thread.message.completed" not in names
    # Text had been streamed: the call is not repeated.
    assert len(sent(chat, marker)) == 1


@pytest.mark.parametrize("fault", ["empty", "done_only"])
@pytest.mark.parametrize("mode", MODES)
def test_stream_without_output_is_retried_then_fails(
    client: OpenAI, chat: ScriptedChatServer, mode: str, fault: str
) -> None:
    marker = tag()
    assistant = make_assistant(client)
    thread_id = thread_with(client, f"{fault} {marker} " + script(reply="never", **{fault: True}))

    run, names = execute(client, mode, thread_id, assistant.id)

    assert_failed(
        run,
        names,
        "The model's response stream ended before it finished (no finish_reason) "
        f"without any output, {ATTEMPTS} times.",
    )
    assert replies(client, run) == []
    assert "thread.message.created" not in names
    assert len(sent(chat, marker)) == ATTEMPTS


@pytest.mark.parametrize("fault", ["empty", "done_only"])
@pytest.mark.parametrize("mode", MODES)
def test_stream_without_output_once_is_retried_and_completes(
    client: OpenAI, chat: ScriptedChatServer, mode: str, fault: str
) -> None:
    marker = tag()
    assistant = make_assistant(client)
    once = {"key": marker, "times": 1}
    thread_id = thread_with(
        client, f"{fault} once {marker} " + script(reply="Second time lucky.", **{fault: once})
    )

    run, names = execute(client, mode, thread_id, assistant.id)

    assert run.status == "completed", run
    (message,) = replies(client, run)
    assert text_of(message) == "Second time lucky."
    assert message.status == "completed"
    if names:
        assert names[-1] == "thread.run.completed"
    assert len(sent(chat, marker)) == 2


@pytest.mark.parametrize("mode", MODES)
def test_content_filter_ends_the_run_incomplete(
    client: OpenAI, chat: ScriptedChatServer, mode: str
) -> None:
    marker = tag()
    assistant = make_assistant(client)
    thread_id = thread_with(
        client,
        f"filtered {marker} "
        + script(reply="Here is the part before", finish_reason="content_filter"),
    )

    run, names = execute(client, mode, thread_id, assistant.id)

    assert run.status == "incomplete", run
    assert run.incomplete_details is not None
    assert run.incomplete_details.reason == "content_filter"  # type: ignore[comparison-overlap]
    assert run.last_error is None
    assert run.completed_at is None
    (message,) = replies(client, run)
    assert text_of(message) == "Here is the part before"
    assert message.status == "incomplete"
    assert message.incomplete_details is not None
    assert message.incomplete_details.reason == "content_filter"
    assert message.incomplete_at is not None
    if names:
        assert names[-1] == "thread.run.incomplete", names
        assert "thread.message.incomplete" in names
        assert "thread.message.completed" not in names
    assert len(sent(chat, marker)) == 1


def tool_steps(client: OpenAI, run: Run) -> list[Any]:
    """The run's tool_calls steps."""
    steps = client.beta.threads.runs.steps.list(run.id, thread_id=run.thread_id).data
    return [s for s in steps if s.type == "tool_calls"]


@pytest.mark.parametrize("mode", MODES)
def test_stream_cut_mid_tool_call_fails_without_calling_the_tool(
    client: OpenAI, chat: ScriptedChatServer, mode: str
) -> None:
    marker = tag()
    assistant = make_assistant(client)
    # The first half of the call's arguments arrives, then the stream ends.
    calls = [{"name": "get_weather", "arguments": {"city": "Bern"}}]
    thread_id = thread_with(client, f"half call {marker} " + script(tool_calls=calls, cut_after=1))

    run, names = execute(client, mode, thread_id, assistant.id)

    half = len('{"city": "Bern"}') // 2
    assert_failed(
        run,
        names,
        "The model's response stream ended before it finished (no finish_reason) "
        f"after {half} characters.",
    )
    (step,) = tool_steps(client, run)
    assert step.status == "failed"
    assert step.last_error is not None
    assert step.last_error.code == "server_error"
    assert replies(client, run) == []
    assert len(sent(chat, marker)) == 1


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    ("finish_reason", "reason"),
    [("content_filter", "content_filter"), ("length", "max_completion_tokens")],
)
def test_a_cut_tool_call_ends_incomplete_without_calling_the_tool(
    client: OpenAI, chat: ScriptedChatServer, mode: str, finish_reason: str, reason: str
) -> None:
    """A filter or the token limit stopped the model while it wrote a call: the call is
    recorded, its step cancelled, and nothing is asked of the client."""
    marker = tag()
    assistant = make_assistant(client)
    calls = [{"name": "get_weather", "arguments": {"city": "Bern"}}]
    thread_id = thread_with(
        client, f"cut call {marker} " + script(tool_calls=calls, finish_reason=finish_reason)
    )

    run, names = execute(client, mode, thread_id, assistant.id)

    assert run.status == "incomplete", run
    assert run.required_action is None
    assert run.incomplete_details is not None
    assert run.incomplete_details.reason == reason
    (step,) = tool_steps(client, run)
    assert step.status == "cancelled"
    assert step.cancelled_at is not None
    assert [c.type for c in step.step_details.tool_calls] == ["function"]
    if names:
        assert names[-1] == "thread.run.incomplete", names
        assert "thread.run.requires_action" not in names
    assert len(sent(chat, marker)) == 1
