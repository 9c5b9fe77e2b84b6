"""Run lifecycle end to end: the one-active-run thread lock, cancel, requires_action expiry
and backend failures (retried, then reported on the run)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from openai import OpenAI
from openai.types.beta.threads import Message, Run

from tests.conftest import own_server, stop_server
from tests.support.runs import (
    POLL_MS,
    TERMINAL,
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
    wait_until,
)
from tests.support.scripted_chat import ScriptedChatServer

SLOW_REPLY = " ".join(f"word{i}" for i in range(80))


def slow_script() -> str:
    """About 8 s of streaming: the run stays in progress until cancelled."""
    return script(reply=SLOW_REPLY, delay_ms=100)


def tool_script() -> str:
    return script(
        tool_calls=[{"name": "get_weather", "arguments": {"city": "Bern"}}],
        after_tools="done: {output0}",
    )


def assert_locked(client: OpenAI, thread_id: str, run: Run) -> None:
    """Creating a run or a message on the thread is refused with 400 (never 409)."""
    with pytest.raises(openai.BadRequestError) as exc:
        client.beta.threads.runs.create(thread_id=thread_id, assistant_id=run.assistant_id)
    assert exc.value.status_code == 400
    assert error_message(exc.value) == f"Thread {thread_id} already has an active run {run.id}."
    with pytest.raises(openai.BadRequestError) as exc:
        client.beta.threads.messages.create(thread_id, role="user", content="may I?")
    assert exc.value.status_code == 400
    assert error_message(exc.value) == (
        f"Can't add messages to {thread_id} while a run {run.id} is active."
    )


def error_message(exc: openai.APIStatusError) -> str:
    """The ``message`` of the error envelope (the SDK prefixes its own ``.message``)."""
    assert isinstance(exc.body, dict), exc.body
    return str(exc.body["message"])


def assistant_messages(client: OpenAI, thread_id: str, run_id: str) -> list[Message]:
    """The messages the run wrote."""
    return [m for m in messages_asc(client, thread_id) if m.run_id == run_id]


# ---- the thread lock -------------------------------------------------------------------------


def test_in_progress_run_locks_the_thread_until_it_ends(client: OpenAI) -> None:
    assistant = make_assistant(client)
    thread_id = thread_with(client, "slow " + slow_script())
    run = client.beta.threads.runs.create(thread_id=thread_id, assistant_id=assistant.id)
    assert run.status == "queued"
    assert run.expires_at is not None

    assert_locked(client, thread_id, run)
    # The lock held while the run was really active.
    current = client.beta.threads.runs.retrieve(run.id, thread_id=thread_id)
    assert current.status in {"queued", "in_progress"}

    client.beta.threads.runs.cancel(run.id, thread_id=thread_id)
    assert wait_run(client, run, TERMINAL, timeout=5).status == "cancelled"

    client.beta.threads.messages.create(
        thread_id, role="user", content="after " + script(reply="free again")
    )
    again = create_and_poll(client, thread_id, assistant.id)
    assert again.status == "completed", again.last_error
    assert text_of(messages_asc(client, thread_id)[-1]) == "free again"


def test_requires_action_run_locks_the_thread(client: OpenAI) -> None:
    assistant = make_assistant(client)
    thread_id = thread_with(client, "tool " + tool_script())
    run = create_and_poll(client, thread_id, assistant.id)
    assert run.status == "requires_action", run.last_error

    assert_locked(client, thread_id, run)

    assert run.required_action is not None
    (call,) = run.required_action.submit_tool_outputs.tool_calls
    done = bounded(
        lambda: client.beta.threads.runs.submit_tool_outputs_and_poll(
            tool_outputs=[{"tool_call_id": call.id, "output": "ok"}],
            run_id=run.id,
            thread_id=thread_id,
            poll_interval_ms=POLL_MS,
        )
    )
    assert done.status == "completed", done.last_error
    message = client.beta.threads.messages.create(thread_id, role="user", content="thanks")
    assert message.thread_id == thread_id


def test_concurrent_run_creation_admits_exactly_one(client: OpenAI) -> None:
    assistant = make_assistant(client)
    thread_id = thread_with(client, "race " + slow_script())
    barrier = threading.Barrier(6)
    created: list[Run] = []
    errors: list[Exception] = []

    def attempt() -> None:
        barrier.wait()
        try:
            created.append(
                client.beta.threads.runs.create(thread_id=thread_id, assistant_id=assistant.id)
            )
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=attempt) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)

    assert len(created) == 1, errors
    assert len(errors) == 5
    for exc in errors:
        assert isinstance(exc, openai.BadRequestError), exc
        assert "already has an active run" in exc.message
    assert [r.id for r in client.beta.threads.runs.list(thread_id)] == [created[0].id]
    client.beta.threads.runs.cancel(created[0].id, thread_id=thread_id)
    assert wait_run(client, created[0], TERMINAL, timeout=5).status == "cancelled"


# ---- cancel ----------------------------------------------------------------------------------


def test_cancel_in_progress_run(client: OpenAI) -> None:
    assistant = make_assistant(client)
    thread_id = thread_with(client, "long story " + slow_script())
    run = client.beta.threads.runs.create(thread_id=thread_id, assistant_id=assistant.id)
    # Wait until the model is writing the reply.
    wait_until(lambda: assistant_messages(client, thread_id, run.id), 10, "the assistant message")

    started = time.monotonic()
    cancelling = client.beta.threads.runs.cancel(run.id, thread_id=thread_id)
    assert cancelling.status in {"cancelling", "cancelled"}
    cancelled = wait_run(client, run, TERMINAL, timeout=2.5)
    assert time.monotonic() - started < 2.5
    assert cancelled.status == "cancelled"
    assert cancelled.cancelled_at is not None
    assert cancelled.expires_at is None
    assert cancelled.completed_at is None
    assert cancelled.failed_at is None

    (message,) = assistant_messages(client, thread_id, run.id)
    assert message.status == "incomplete"
    assert message.incomplete_details is not None
    assert message.incomplete_details.reason == "run_cancelled"
    assert message.incomplete_at is not None
    partial = text_of(message)
    assert partial
    assert SLOW_REPLY.startswith(partial)
    assert len(partial) < len(SLOW_REPLY)

    (step,) = client.beta.threads.runs.steps.list(run.id, thread_id=thread_id).data
    assert step.type == "message_creation"
    assert step.status == "cancelled"
    assert step.cancelled_at is not None
    assert step.step_details.message_creation.message_id == message.id  # type: ignore[union-attr]

    # Terminal: cancelling again is refused, and the thread is free.
    with pytest.raises(openai.BadRequestError):
        client.beta.threads.runs.cancel(run.id, thread_id=thread_id)
    client.beta.threads.messages.create(thread_id, role="user", content="next")


def test_cancel_requires_action_run(client: OpenAI) -> None:
    assistant = make_assistant(client)
    thread_id = thread_with(client, "tool " + tool_script())
    run = create_and_poll(client, thread_id, assistant.id)
    assert run.status == "requires_action", run.last_error
    assert run.required_action is not None
    (call,) = run.required_action.submit_tool_outputs.tool_calls

    cancelled = client.beta.threads.runs.cancel(run.id, thread_id=thread_id)

    assert cancelled.status == "cancelled"
    assert cancelled.cancelled_at is not None
    assert cancelled.required_action is None
    assert cancelled.expires_at is None
    assert client.beta.threads.runs.retrieve(run.id, thread_id=thread_id).status == "cancelled"
    (step,) = client.beta.threads.runs.steps.list(run.id, thread_id=thread_id).data
    assert step.type == "tool_calls"
    assert step.status == "cancelled"
    assert step.cancelled_at is not None
    with pytest.raises(openai.BadRequestError) as exc:
        client.beta.threads.runs.submit_tool_outputs(
            run.id, thread_id=thread_id, tool_outputs=[{"tool_call_id": call.id, "output": "x"}]
        )
    assert exc.value.param == "run_id"
    client.beta.threads.messages.create(thread_id, role="user", content="unlocked")


def test_cancel_completed_run_is_rejected(client: OpenAI) -> None:
    assistant = make_assistant(client)
    thread_id = thread_with(client, "quick " + script(reply="done"))
    run = create_and_poll(client, thread_id, assistant.id)
    assert run.status == "completed", run.last_error

    with pytest.raises(openai.BadRequestError) as exc:
        client.beta.threads.runs.cancel(run.id, thread_id=thread_id)
    assert exc.value.status_code == 400
    assert exc.value.type == "invalid_request_error"
    assert "completed" in exc.value.message
    after = client.beta.threads.runs.retrieve(run.id, thread_id=thread_id)
    assert after.status == "completed"
    assert after.cancelled_at is None


# ---- expiry ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def expiring(
    pg_root: str, server_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OpenAI]:
    """A server with its in-process worker: runs expire 3 s after creation, and 2 s after
    they start waiting for tool outputs."""
    env = {
        **server_env,
        "ASSISTD_RUNS__EXPIRES_SECONDS": "3",
        "ASSISTD_RUNS__REQUIRES_ACTION_SECONDS": "2",
        "ASSISTD_WORKER__REAP_SECONDS": "0.5",
    }
    proc, client = own_server(pg_root, env, tmp_path_factory.mktemp("expiring") / "server.log")
    yield client
    stop_server(proc)


def test_requires_action_run_expires(expiring: OpenAI) -> None:
    client = expiring
    assistant = make_assistant(client)
    thread_id = thread_with(client, "never answered " + tool_script())
    run = create_and_poll(client, thread_id, assistant.id)
    assert run.status == "requires_action", run.last_error
    assert run.expires_at is not None
    assert run.expires_at <= time.time() + 3

    expired = wait_run(client, run, TERMINAL, timeout=8)

    assert expired.status == "expired"
    assert expired.required_action is None
    assert expired.expires_at is None
    assert expired.cancelled_at is None
    assert expired.failed_at is None
    (step,) = client.beta.threads.runs.steps.list(run.id, thread_id=thread_id).data
    assert step.type == "tool_calls"
    assert step.status == "expired"
    assert step.expired_at is not None
    assert run.required_action is not None
    (call,) = run.required_action.submit_tool_outputs.tool_calls
    with pytest.raises(openai.BadRequestError):
        client.beta.threads.runs.submit_tool_outputs(
            run.id, thread_id=thread_id, tool_outputs=[{"tool_call_id": call.id, "output": "x"}]
        )
    client.beta.threads.messages.create(thread_id, role="user", content="unlocked")


def test_run_executing_past_expires_at_expires(expiring: OpenAI) -> None:
    client = expiring
    assistant = make_assistant(client)
    thread_id = thread_with(client, "too slow " + slow_script())
    run = client.beta.threads.runs.create(thread_id=thread_id, assistant_id=assistant.id)
    assert run.expires_at is not None
    assert run.expires_at - run.created_at == 3

    expired = wait_run(client, run, TERMINAL, timeout=8)

    assert expired.status == "expired"
    assert expired.started_at is not None
    assert expired.expires_at is None
    (message,) = assistant_messages(client, thread_id, run.id)
    assert message.status == "incomplete"
    assert message.incomplete_details is not None
    assert message.incomplete_details.reason == "run_expired"
    assert SLOW_REPLY.startswith(text_of(message))
    (step,) = client.beta.threads.runs.steps.list(run.id, thread_id=thread_id).data
    assert step.status == "expired"
    assert step.expired_at is not None
    client.beta.threads.messages.create(thread_id, role="user", content="unlocked")


@pytest.fixture
def idle(pg_root: str, server_env: dict[str, str], tmp_path: Path) -> Iterator[OpenAI]:
    """A server without any worker: its runs stay queued."""
    proc, client = own_server(pg_root, server_env, tmp_path / "idle.log", "--no-worker")
    yield client
    stop_server(proc)


def test_cancel_queued_run(idle: OpenAI) -> None:
    client = idle
    assistant = make_assistant(client)
    thread_id = thread_with(client, "queued " + script(reply="never"))
    run = client.beta.threads.runs.create(thread_id=thread_id, assistant_id=assistant.id)
    assert run.status == "queued"
    assert client.beta.threads.runs.retrieve(run.id, thread_id=thread_id).status == "queued"
    assert_locked(client, thread_id, run)

    cancelled = client.beta.threads.runs.cancel(run.id, thread_id=thread_id)

    assert cancelled.status == "cancelled"
    assert cancelled.cancelled_at is not None
    assert cancelled.started_at is None
    assert cancelled.expires_at is None
    assert client.beta.threads.runs.retrieve(run.id, thread_id=thread_id).status == "cancelled"
    assert client.beta.threads.runs.steps.list(run.id, thread_id=thread_id).data == []
    assert [m.role for m in messages_asc(client, thread_id)] == ["user"]
    client.beta.threads.messages.create(thread_id, role="user", content="unlocked")


# ---- backend failures ------------------------------------------------------------------------


def assert_failed(client: OpenAI, run: Run, code: str) -> None:
    assert run.status == "failed", run
    assert run.last_error is not None
    assert run.last_error.code == code
    assert run.last_error.message
    assert run.failed_at is not None
    assert run.expires_at is None
    assert run.completed_at is None
    # Whatever the run had started writing is closed, and the thread is free again.
    for message in assistant_messages(client, run.thread_id, run.id):
        assert message.status == "incomplete"
        assert message.incomplete_details is not None
        assert message.incomplete_details.reason == "run_failed"
    assert all(m.status != "in_progress" for m in messages_asc(client, run.thread_id))
    client.beta.threads.messages.create(run.thread_id, role="user", content="retry?")


def test_backend_429_once_is_retried(client: OpenAI, chat: ScriptedChatServer) -> None:
    marker = tag()
    assistant = make_assistant(client)
    thread_id = thread_with(
        client,
        f"limited {marker} "
        + script(fail={"key": marker, "times": 1, "status": 429}, reply="made it"),
    )

    run = create_and_poll(client, thread_id, assistant.id)

    assert run.status == "completed", run.last_error
    assert text_of(messages_asc(client, thread_id)[-1]) == "made it"
    assert len(sent(chat, marker)) == 2


def test_backend_500_beyond_retries_fails_the_run(client: OpenAI, chat: ScriptedChatServer) -> None:
    marker = tag()
    assistant = make_assistant(client)
    thread_id = thread_with(
        client,
        f"broken {marker} "
        + script(fail={"key": marker, "times": 100, "status": 500}, reply="never"),
    )

    run = create_and_poll(client, thread_id, assistant.id)

    assert_failed(client, run, "server_error")
    assert len(sent(chat, marker)) == 3  # the first attempt and 2 retries


def test_persistent_429_fails_with_rate_limit_exceeded(
    client: OpenAI, chat: ScriptedChatServer
) -> None:
    marker = tag()
    assistant = make_assistant(client)
    thread_id = thread_with(
        client,
        f"throttled {marker} "
        + script(fail={"key": marker, "times": 100, "status": 429}, reply="never"),
    )

    run = create_and_poll(client, thread_id, assistant.id)

    assert_failed(client, run, "rate_limit_exceeded")
    assert len(sent(chat, marker)) == 3


def test_error_event_mid_stream_fails_the_run_with_its_message(client: OpenAI) -> None:
    """A backend that sends an ``{"error": …}`` event after a few tokens: the run fails with
    the backend's message, and the text it had streamed stays on the incomplete message."""
    assistant = make_assistant(client)
    thread_id = thread_with(client, script(reply="one two three four five", error_after=3))

    run = create_and_poll(client, thread_id, assistant.id)

    assert_failed(client, run, "server_error")
    assert run.last_error is not None
    assert "scripted stream error" in run.last_error.message
    (message,) = assistant_messages(client, thread_id, run.id)
    assert message.content[0].text.value.rstrip() == "one two three"  # type: ignore[union-attr]


def test_unreachable_backend_fails_with_server_error(client: OpenAI) -> None:
    assistant = make_assistant(client)
    thread_id = thread_with(client, "anyone there?")

    run = create_and_poll(client, thread_id, assistant.id, model="dead-model")

    assert run.model == "dead-model"
    assert_failed(client, run, "server_error")
    assert run.last_error is not None
    message = run.last_error.message.lower()
    assert "backend" in message
    assert "connect" in message


def test_cancel_right_after_create_always_ends_cancelled(client: OpenAI) -> None:
    assistant = make_assistant(client)
    runs = []
    for _ in range(4):
        thread_id = thread_with(client, "quick cancel " + slow_script())
        run = client.beta.threads.runs.create(thread_id=thread_id, assistant_id=assistant.id)
        answer = client.beta.threads.runs.cancel(run.id, thread_id=thread_id)
        assert answer.status in {"cancelling", "cancelled"}
        runs.append(run)
    for run in runs:
        assert wait_run(client, run, TERMINAL, timeout=3).status == "cancelled"
        assert all(m.status != "in_progress" for m in messages_asc(client, run.thread_id))
        steps = client.beta.threads.runs.steps.list(run.id, thread_id=run.thread_id).data
        assert all(s.status == "cancelled" for s in steps)
