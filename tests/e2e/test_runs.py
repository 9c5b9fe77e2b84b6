"""Runs end to end with the official SDK: the polling helpers, effective run values, what the
model backend receives, listing/retrieving/modifying runs, image content and truncation.

The helpers live in ``tests/support/runs.py``. Every test marks its conversation with a
unique tag so ``chat.requests`` (shared by the whole session) can be filtered to the requests
of that test alone.
"""

from __future__ import annotations

import base64
import io
import json

import openai
import pytest
from openai import OpenAI

from tests.support.runs import (
    PNG,
    POLL_MS,
    TIME_TOOL,
    bounded,
    create_and_poll,
    make_assistant,
    messages_asc,
    script,
    sent,
    tag,
    text_of,
    thread_with,
    upload_png,
)
from tests.support.scripted_chat import ScriptedChatServer

# Part of the scenario CI repeats with every supported openai SDK generation.
pytestmark = pytest.mark.sdk_matrix

# ---- create_and_poll: completion, effective values, what the backend receives --------------


def test_create_and_poll_completes_with_the_scripted_reply(
    client: OpenAI, chat: ScriptedChatServer
) -> None:
    marker = tag()
    assistant = make_assistant(client, temperature=0.7, top_p=0.9)
    thread_id = thread_with(
        client, f"first {marker}", f"second {marker} " + script(reply="Hello from the model.")
    )

    run = create_and_poll(client, thread_id, assistant.id)

    assert run.status == "completed", run.last_error
    assert run.thread_id == thread_id
    assert run.assistant_id == assistant.id
    assert run.usage is not None
    assert run.usage.prompt_tokens > 0
    assert run.usage.completion_tokens > 0
    assert run.usage.total_tokens == run.usage.prompt_tokens + run.usage.completion_tokens
    assert run.started_at is not None
    assert run.completed_at is not None
    assert run.created_at <= run.started_at <= run.completed_at
    assert run.expires_at is None
    assert run.required_action is None
    assert run.last_error is None
    assert run.failed_at is None
    assert run.cancelled_at is None
    # Without overrides the effective values are the assistant's, with the documented defaults.
    assert run.model == "gpt-4o"
    assert run.instructions == "You are terse."
    assert [t.type for t in run.tools] == ["function"]
    assert run.tools[0].function.name == "get_weather"  # type: ignore[union-attr]
    assert run.temperature == pytest.approx(0.7)
    assert run.top_p == pytest.approx(0.9)
    assert run.tool_choice == "auto"
    assert run.parallel_tool_calls is True
    assert run.truncation_strategy is not None
    assert run.truncation_strategy.type == "auto"
    assert run.truncation_strategy.last_messages is None
    assert run.response_format == "auto"
    assert run.metadata == {}

    messages = messages_asc(client, thread_id)
    assert [m.role for m in messages] == ["user", "user", "assistant"]
    reply = messages[-1]
    assert text_of(reply) == "Hello from the model."
    assert reply.status == "completed"
    assert reply.run_id == run.id
    assert reply.assistant_id == assistant.id
    assert reply.completed_at is not None

    requests = sent(chat, marker)
    assert len(requests) == 1
    body = requests[0]
    assert body["model"] == "gpt-4o"
    assert body["messages"] == [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": f"first {marker}"},
        {"role": "user", "content": f"second {marker} " + script(reply="Hello from the model.")},
    ]
    assert body["temperature"] == pytest.approx(0.7)
    assert body["top_p"] == pytest.approx(0.9)
    assert [t["function"]["name"] for t in body["tools"]] == ["get_weather"]


def test_run_overrides_are_effective_and_reach_the_backend(
    client: OpenAI, chat: ScriptedChatServer
) -> None:
    marker = tag()
    assistant = make_assistant(client)
    thread_id = thread_with(client, f"hello {marker} " + script(reply="overridden"))

    run = create_and_poll(
        client,
        thread_id,
        assistant.id,
        model="gpt-4o-mini",
        instructions="Answer in French.",
        additional_instructions="Be brief.",
        tools=[TIME_TOOL],
        temperature=0.25,
        top_p=0.5,
        metadata={"case": marker},
        response_format={"type": "json_object"},
        truncation_strategy={"type": "last_messages", "last_messages": 5},
        tool_choice={"type": "function", "function": {"name": "get_time"}},
        parallel_tool_calls=False,
        max_completion_tokens=1000,
        max_prompt_tokens=2000,
    )

    assert run.status == "completed", run.last_error
    assert run.model == "gpt-4o-mini"
    assert run.instructions == "Answer in French.\n\nBe brief."
    assert [t.function.name for t in run.tools] == ["get_time"]  # type: ignore[union-attr]
    assert run.tools[0].function.parameters == TIME_TOOL["function"]["parameters"]  # type: ignore[union-attr]
    assert run.temperature == pytest.approx(0.25)
    assert run.top_p == pytest.approx(0.5)
    assert run.metadata == {"case": marker}
    assert run.response_format is not None
    assert run.response_format.type == "json_object"  # type: ignore[union-attr]
    assert run.truncation_strategy is not None
    assert run.truncation_strategy.type == "last_messages"
    assert run.truncation_strategy.last_messages == 5
    assert run.tool_choice is not None
    assert run.tool_choice.type == "function"  # type: ignore[union-attr]
    assert run.tool_choice.function.name == "get_time"  # type: ignore[union-attr]
    assert run.parallel_tool_calls is False
    assert run.max_completion_tokens == 1000
    assert run.max_prompt_tokens == 2000
    # The assistant itself is untouched by run overrides.
    again = client.beta.assistants.retrieve(assistant.id)
    assert again.model == "gpt-4o"
    assert again.instructions == "You are terse."

    (body,) = sent(chat, marker)
    assert body["model"] == "gpt-4o-mini"
    assert body["messages"][0] == {"role": "system", "content": "Answer in French.\n\nBe brief."}
    assert body["temperature"] == pytest.approx(0.25)
    assert body["top_p"] == pytest.approx(0.5)
    assert body["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_time",
                "description": "Current time",
                "parameters": TIME_TOOL["function"]["parameters"],
            },
        }
    ]
    assert body["tool_choice"] == {"type": "function", "function": {"name": "get_time"}}
    assert body["parallel_tool_calls"] is False
    assert body["response_format"] == {"type": "json_object"}
    assert text_of(messages_asc(client, thread_id)[-1]) == "overridden"


def test_additional_messages_land_in_the_thread_before_the_run(
    client: OpenAI, chat: ScriptedChatServer
) -> None:
    marker = tag()
    assistant = make_assistant(client)
    thread_id = thread_with(client, f"already here {marker}")

    run = create_and_poll(
        client,
        thread_id,
        assistant.id,
        temperature=0,
        top_p=0,
        additional_messages=[
            {"role": "assistant", "content": f"an earlier answer {marker}"},
            {"role": "user", "content": f"added {marker} " + script(reply="seen them")},
        ],
    )

    assert run.status == "completed", run.last_error
    messages = messages_asc(client, thread_id)
    assert [(m.role, text_of(m)) for m in messages] == [
        ("user", f"already here {marker}"),
        ("assistant", f"an earlier answer {marker}"),
        ("user", f"added {marker} " + script(reply="seen them")),
        ("assistant", "seen them"),
    ]
    assert messages[-1].run_id == run.id
    assert run.temperature == 0
    assert run.top_p == 0
    # The added messages precede the run's own message (created before the run started).
    assert messages[2].created_at <= messages[3].created_at
    (body,) = sent(chat, marker)
    assert body["temperature"] == 0
    assert body["top_p"] == 0
    assert [(m["role"], m["content"]) for m in body["messages"][1:]] == [
        ("user", f"already here {marker}"),
        ("assistant", f"an earlier answer {marker}"),
        ("user", f"added {marker} " + script(reply="seen them")),
    ]


def test_create_and_run_poll_builds_the_thread_from_the_request(
    client: OpenAI, chat: ScriptedChatServer
) -> None:
    marker = tag()
    assistant = make_assistant(client)
    file_id = client.files.create(
        file=("data.csv", io.BytesIO(b"a,b\n1,2\n")), purpose="assistants"
    ).id

    run = bounded(
        lambda: client.beta.threads.create_and_run_poll(
            assistant_id=assistant.id,
            thread={
                "messages": [
                    {"role": "user", "content": f"one {marker}"},
                    {"role": "user", "content": f"two {marker} " + script(reply="made a thread")},
                ],
                "metadata": {"origin": "create_and_run"},
            },
            tool_resources={"code_interpreter": {"file_ids": [file_id]}},
            instructions="Thread-and-run instructions.",
            metadata={"run": "yes"},
            poll_interval_ms=POLL_MS,
        )
    )

    assert run.status == "completed", run.last_error
    assert run.thread_id.startswith("thread_")
    assert run.instructions == "Thread-and-run instructions."
    assert run.metadata == {"run": "yes"}
    thread = client.beta.threads.retrieve(run.thread_id)
    assert thread.metadata == {"origin": "create_and_run"}
    assert thread.tool_resources is not None
    assert thread.tool_resources.code_interpreter is not None
    assert thread.tool_resources.code_interpreter.file_ids == [file_id]
    messages = messages_asc(client, run.thread_id)
    assert [m.role for m in messages] == ["user", "user", "assistant"]
    assert text_of(messages[0]) == f"one {marker}"
    assert text_of(messages[-1]) == "made a thread"
    assert messages[-1].run_id == run.id
    (body,) = sent(chat, marker)
    assert body["messages"][0] == {"role": "system", "content": "Thread-and-run instructions."}
    assert [m["content"] for m in body["messages"][1:]] == [
        f"one {marker}",
        f"two {marker} " + script(reply="made a thread"),
    ]


def test_model_without_a_script_echoes_the_last_user_text(
    client: OpenAI, chat: ScriptedChatServer
) -> None:
    marker = tag()
    assistant = make_assistant(client, instructions=None)
    thread_id = thread_with(client, f"plain question {marker}")

    run = create_and_poll(client, thread_id, assistant.id, tools=[])

    assert run.status == "completed", run.last_error
    assert run.instructions == ""
    assert run.tools == []  # an empty override removes the assistant's tools
    assert text_of(messages_asc(client, thread_id)[-1]) == f"You said: plain question {marker}"
    (body,) = sent(chat, marker)
    # No instructions: no system message; no tools: no tool fields at all.
    assert body["messages"] == [{"role": "user", "content": f"plain question {marker}"}]
    assert "tools" not in body
    assert "tool_choice" not in body
    assert "parallel_tool_calls" not in body


# ---- list, retrieve, modify, 404 ------------------------------------------------------------


def test_list_retrieve_and_modify_runs(client: OpenAI) -> None:
    assistant = make_assistant(client)
    thread_id = thread_with(client, "count " + script(reply="one"))
    runs = [create_and_poll(client, thread_id, assistant.id) for _ in range(3)]
    assert [r.status for r in runs] == ["completed"] * 3
    ids = [r.id for r in runs]

    listed = client.beta.threads.runs.list(thread_id)
    assert [r.id for r in listed.data] == ids[::-1]  # default order: newest first
    asc = client.beta.threads.runs.list(thread_id, order="asc")
    assert [r.id for r in asc.data] == ids

    first = client.beta.threads.runs.list(thread_id, order="asc", limit=2)
    assert [r.id for r in first.data] == ids[:2]
    assert first.has_more is True
    rest = client.beta.threads.runs.list(thread_id, order="asc", limit=2, after=ids[1])
    assert [r.id for r in rest.data] == ids[2:]
    assert rest.has_more is False
    before = client.beta.threads.runs.list(thread_id, order="asc", before=ids[2])
    assert [r.id for r in before.data] == ids[:2]
    paged = [r.id for r in client.beta.threads.runs.list(thread_id, order="desc", limit=1)]
    assert paged == ids[::-1]

    raw = client.beta.threads.runs.with_raw_response.retrieve(ids[1], thread_id=thread_id)
    assert raw.headers["openai-poll-after-ms"] == "50"  # ASSISTD_POLL_AFTER_MS of the session
    got = raw.parse()
    assert got.id == ids[1]
    assert got.object == "thread.run"
    assert got.status == "completed"
    assert got.usage == runs[1].usage

    modified = client.beta.threads.runs.update(
        ids[1], thread_id=thread_id, metadata={"reviewed": "yes"}
    )
    assert modified.metadata == {"reviewed": "yes"}
    assert modified.status == "completed"
    again = client.beta.threads.runs.retrieve(ids[1], thread_id=thread_id)
    assert again.metadata == {"reviewed": "yes"}
    cleared = client.beta.threads.runs.update(ids[1], thread_id=thread_id, metadata={})
    assert cleared.metadata == {}


def test_unknown_and_foreign_runs_are_not_found(client: OpenAI, other_client: OpenAI) -> None:
    assistant = make_assistant(client)
    thread_id = thread_with(client, "hi " + script(reply="hello"))
    run = create_and_poll(client, thread_id, assistant.id)
    assert run.status == "completed", run.last_error
    step = client.beta.threads.runs.steps.list(run.id, thread_id=thread_id).data[0]

    with pytest.raises(openai.NotFoundError) as exc:
        client.beta.threads.runs.retrieve("run_doesnotexist", thread_id=thread_id)
    assert exc.value.status_code == 404
    assert "run_doesnotexist" in exc.value.message
    with pytest.raises(openai.NotFoundError):
        client.beta.threads.runs.steps.retrieve(
            "step_doesnotexist", thread_id=thread_id, run_id=run.id
        )
    with pytest.raises(openai.NotFoundError):
        client.beta.threads.runs.steps.list("run_doesnotexist", thread_id=thread_id)
    with pytest.raises(openai.NotFoundError) as exc:
        client.beta.threads.runs.create(thread_id=thread_id, assistant_id="asst_doesnotexist")
    assert "asst_doesnotexist" in exc.value.message
    with pytest.raises(openai.NotFoundError):
        client.beta.threads.runs.create(thread_id="thread_doesnotexist", assistant_id=assistant.id)
    # The right run id under another thread of the same project is not found either.
    other_thread = client.beta.threads.create().id
    with pytest.raises(openai.NotFoundError):
        client.beta.threads.runs.retrieve(run.id, thread_id=other_thread)

    # Another project sees none of it.
    with pytest.raises(openai.NotFoundError):
        other_client.beta.threads.runs.retrieve(run.id, thread_id=thread_id)
    with pytest.raises(openai.NotFoundError):
        other_client.beta.threads.runs.list(thread_id)
    with pytest.raises(openai.NotFoundError):
        other_client.beta.threads.runs.update(run.id, thread_id=thread_id, metadata={"x": "y"})
    with pytest.raises(openai.NotFoundError):
        other_client.beta.threads.runs.cancel(run.id, thread_id=thread_id)
    with pytest.raises(openai.NotFoundError):
        other_client.beta.threads.runs.steps.list(run.id, thread_id=thread_id)
    with pytest.raises(openai.NotFoundError):
        other_client.beta.threads.runs.steps.retrieve(step.id, thread_id=thread_id, run_id=run.id)
    with pytest.raises(openai.NotFoundError):
        other_client.beta.threads.runs.submit_tool_outputs(
            run.id, thread_id=thread_id, tool_outputs=[{"tool_call_id": "call_x", "output": "1"}]
        )
    with pytest.raises(openai.NotFoundError):
        other_client.beta.threads.runs.create(thread_id=thread_id, assistant_id=assistant.id)
    # … and the owner's run is unchanged by those attempts.
    assert client.beta.threads.runs.retrieve(run.id, thread_id=thread_id).metadata == {}


# ---- what the backend sees: images, plain text, truncation -----------------------------------


def test_image_parts_reach_the_backend_as_image_urls(
    client: OpenAI, chat: ScriptedChatServer
) -> None:
    marker = tag()
    assistant = make_assistant(client)
    file_id = upload_png(client)
    url = f"https://example.com/{marker}.png"
    thread = client.beta.threads.create(
        messages=[
            {"role": "user", "content": f"text only {marker}"},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": f"look at this {marker}"},
                    {"type": "image_url", "image_url": {"url": url, "detail": "low"}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "image_file", "image_file": {"file_id": file_id}},
                    {"type": "text", "text": "and this " + script(reply="two images")},
                ],
            },
        ]
    )

    run = create_and_poll(client, thread.id, assistant.id)

    assert run.status == "completed", run.last_error
    (body,) = sent(chat, marker)
    users = [m for m in body["messages"] if m["role"] == "user"]
    assert len(users) == 3
    assert users[0]["content"] == f"text only {marker}"
    assert users[1]["content"] == [
        {"type": "text", "text": f"look at this {marker}"},
        {"type": "image_url", "image_url": {"url": url, "detail": "low"}},
    ]
    image_part, text_part = users[2]["content"]
    assert text_part == {"type": "text", "text": "and this " + script(reply="two images")}
    assert image_part["type"] == "image_url"
    data_url = image_part["image_url"]["url"]
    prefix = "data:image/png;base64,"
    assert data_url.startswith(prefix)
    assert base64.b64decode(data_url[len(prefix) :]) == PNG
    assert text_of(messages_asc(client, thread.id)[-1]) == "two images"


def test_truncation_last_messages_sends_only_the_newest(
    client: OpenAI, chat: ScriptedChatServer
) -> None:
    marker = tag()
    assistant = make_assistant(client)
    last = f"third {marker} " + script(reply="only the last")
    thread_id = thread_with(client, f"first {marker}", f"second {marker}", last)

    run = create_and_poll(
        client,
        thread_id,
        assistant.id,
        truncation_strategy={"type": "last_messages", "last_messages": 1},
    )

    assert run.status == "completed", run.last_error
    assert run.truncation_strategy is not None
    assert run.truncation_strategy.last_messages == 1
    (body,) = sent(chat, marker)
    assert body["messages"] == [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": last},
    ]
    # The thread itself keeps everything.
    assert len(messages_asc(client, thread_id)) == 4


def test_max_completion_tokens_ends_the_run_incomplete(
    client: OpenAI, chat: ScriptedChatServer
) -> None:
    marker = tag()
    assistant = make_assistant(client)
    long_reply = " ".join(f"w{i}" for i in range(300))
    thread_id = thread_with(client, f"ramble {marker} " + script(reply=long_reply))

    run = create_and_poll(client, thread_id, assistant.id, max_completion_tokens=256)

    assert run.status == "incomplete", (run.status, run.last_error)
    assert run.incomplete_details is not None
    assert run.incomplete_details.reason == "max_completion_tokens"
    assert run.expires_at is None
    assert run.usage is not None
    assert run.usage.completion_tokens == 256
    (body,) = sent(chat, marker)
    assert body["max_completion_tokens"] == 256
    reply = messages_asc(client, thread_id)[-1]
    assert reply.role == "assistant"
    assert reply.status == "incomplete"
    assert reply.incomplete_details is not None
    assert reply.incomplete_details.reason == "max_tokens"
    assert long_reply.startswith(text_of(reply))
    assert len(text_of(reply).split()) == 256


def test_max_prompt_tokens_too_small_for_the_newest_message_ends_the_run_incomplete(
    client: OpenAI, chat: ScriptedChatServer
) -> None:
    marker = tag()
    assistant = make_assistant(client)
    # ~400 tokens in the newest (only) message: nothing can be dropped to fit 256.
    long_text = " ".join(["hello"] * 400)
    thread_id = thread_with(client, f"{marker} {long_text} " + script(reply="never sent"))

    run = create_and_poll(client, thread_id, assistant.id, max_prompt_tokens=256)

    assert run.status == "incomplete", (run.status, run.last_error)
    assert run.incomplete_details is not None
    assert run.incomplete_details.reason == "max_prompt_tokens"
    assert run.max_prompt_tokens == 256
    assert run.last_error is None
    assert sent(chat, marker) == []  # the model was never called
    assert [m.role for m in messages_asc(client, thread_id)] == ["user"]


def test_max_prompt_tokens_with_auto_truncation_drops_the_oldest_messages(
    client: OpenAI, chat: ScriptedChatServer
) -> None:
    marker = tag()
    assistant = make_assistant(client)
    filler = " ".join(["hello"] * 300)
    last = f"newest {marker} " + script(reply="fits")
    thread_id = thread_with(client, f"oldest {marker} {filler}", f"middle {marker} {filler}", last)

    run = create_and_poll(client, thread_id, assistant.id, max_prompt_tokens=300)

    assert run.status == "completed", (run.status, run.last_error)
    (body,) = sent(chat, marker)
    # ~300 tokens each: only the newest of the three fits beside the instructions.
    assert body["messages"] == [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": last},
    ]
    assert text_of(messages_asc(client, thread_id)[-1]) == "fits"


def test_max_prompt_tokens_counts_every_turn_of_the_run(
    client: OpenAI, chat: ScriptedChatServer
) -> None:
    marker = tag()
    assistant = make_assistant(client)
    # The first turn fits 256 tokens; what the backend reports for it (the scripted backend
    # counts ~4 characters a token) leaves too little for the second.
    text = f"{marker} " + " ".join(["hello"] * 120)
    thread_id = thread_with(
        client,
        text
        + " "
        + script(
            tool_calls=[{"name": "get_weather", "arguments": {"city": "Paris"}}],
            after_tools="It is {output0}.",
        ),
    )

    run = create_and_poll(client, thread_id, assistant.id, max_prompt_tokens=256)
    assert run.status == "requires_action", (run.status, run.last_error)
    assert run.required_action is not None
    (call,) = run.required_action.submit_tool_outputs.tool_calls
    done = bounded(
        lambda: client.beta.threads.runs.submit_tool_outputs_and_poll(
            run_id=run.id,
            thread_id=thread_id,
            tool_outputs=[{"tool_call_id": call.id, "output": "22C"}],
            poll_interval_ms=POLL_MS,
        )
    )

    assert done.status == "incomplete", (done.status, done.last_error)
    assert done.incomplete_details is not None
    assert done.incomplete_details.reason == "max_prompt_tokens"
    (first,) = sent(chat, marker)  # the second turn was never sent
    assert done.usage is not None
    # The run's usage is the first turn's, as the backend reported it.
    assert done.usage.prompt_tokens == sum(len(json.dumps(m)) for m in first["messages"]) // 4


def test_rejected_run_adds_none_of_its_additional_messages(client: OpenAI) -> None:
    assistant = make_assistant(client)
    thread_id = thread_with(client, "existing")

    with pytest.raises(openai.BadRequestError) as exc:
        client.beta.threads.runs.create(
            thread_id=thread_id,
            assistant_id=assistant.id,
            additional_messages=[
                {"role": "user", "content": "fine"},
                {
                    "role": "user",
                    "content": [{"type": "image_file", "image_file": {"file_id": "file-nope"}}],
                },
            ],
        )
    assert exc.value.param is not None
    assert exc.value.param.startswith("additional_messages[1].")
    with pytest.raises(openai.BadRequestError) as exc:
        client.beta.threads.runs.create(
            thread_id=thread_id,
            assistant_id=assistant.id,
            additional_messages=[{"role": "user", "content": "also fine"}],
            tool_choice={"type": "function", "function": {"name": "no_such_function"}},
        )
    assert exc.value.param == "tool_choice"

    assert [text_of(m) for m in messages_asc(client, thread_id)] == ["existing"]
    assert client.beta.threads.runs.list(thread_id).data == []
