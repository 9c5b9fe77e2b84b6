"""Moving an Assistants thread in place (``POST /conversations`` with ``from_thread``): its
messages become items in order and in their Responses shapes, a response continues it with
the whole history, and the thread, files and stores stay; active runs and other projects'
threads are refused."""

from __future__ import annotations

import base64
import io
import json
from typing import Any

import httpx
import openai
import pytest
from openai import OpenAI

from tests.e2e.test_errors import sdk_error
from tests.support.runs import (
    PNG,
    WEATHER_TOOL,
    bounded,
    create_and_poll,
    make_assistant,
    script,
    tag,
    thread_with,
    upload_png,
    wait_run,
)
from tests.support.scripted_chat import ScriptedChatServer

MODEL = "gpt-4o-mini"
NOTES = b"# Maintenance\n\nThe pump is serviced every forty-one days by the night shift.\n"
DATA_URL = "data:image/png;base64," + base64.b64encode(PNG).decode()


def move(client: OpenAI, thread_id: str, **kwargs: Any) -> Any:
    """The moving call as a client makes it: the SDK's own create, with the extension."""
    return client.conversations.create(extra_body={"from_thread": thread_id}, **kwargs)


def resources(conversation: Any) -> Any:
    """The ``tool_resources`` assistd adds to a conversation made from a thread."""
    assert conversation.model_extra is not None
    return conversation.model_extra["tool_resources"]


def raw_items(http: httpx.Client, conversation_id: str) -> list[dict[str, Any]]:
    page = http.get(f"/conversations/{conversation_id}/items", params={"order": "asc"})
    assert page.status_code == 200, page.text
    data: list[dict[str, Any]] = page.json()["data"]
    return data


def text_of(content: Any) -> str:
    """The text of a chat message's content (a string or parts)."""
    if isinstance(content, str):
        return content
    return "".join(p.get("text", "") for p in content if p.get("type") == "text")


@pytest.mark.usefixtures("sandbox_image")
def test_thread_moves_in_order_and_a_response_continues_it(
    client: OpenAI, http: httpx.Client, chat: ScriptedChatServer
) -> None:
    store = client.vector_stores.create(name="notes")
    notes = bounded(
        lambda: client.vector_stores.files.upload_and_poll(
            vector_store_id=store.id, file=("notes.md", io.BytesIO(NOTES)), poll_interval_ms=50
        )
    )
    assert notes.status == "completed", notes.last_error
    table = client.files.create(file=("t.csv", io.BytesIO(b"a\n1\n")), purpose="assistants")
    attached = client.files.create(file=("x.txt", io.BytesIO(b"x")), purpose="assistants")
    png = upload_png(client)
    assistant = client.beta.assistants.create(
        model="gpt-4o", tools=[{"type": "file_search"}, {"type": "code_interpreter"}]
    )
    answer = "Every forty-one days 【0:0†notes.md】."
    first_text = "How often is the pump serviced? " + script(
        tool_calls=[{"name": "file_search", "arguments": {"queries": ["pump service"]}}],
        after_tools=answer,
    )
    thread = client.beta.threads.create(
        metadata={"customer": "acme"},
        tool_resources={
            "file_search": {"vector_store_ids": [store.id]},
            "code_interpreter": {"file_ids": [table.id]},
        },
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": first_text},
                    {"type": "image_file", "image_file": {"file_id": png, "detail": "low"}},
                    {"type": "image_url", "image_url": {"url": DATA_URL}},
                ],
            }
        ],
    )
    run = create_and_poll(client, thread.id, assistant.id)
    assert run.status == "completed", run.last_error
    reply = "Saved [out.txt](sandbox:/mnt/data/out.txt)"
    second_text = "Write it down. " + script(
        steps=[
            {
                "tool_calls": [
                    {
                        "name": "code_interpreter",
                        "arguments": {"code": "open('/mnt/data/out.txt', 'w').write('41')"},
                    }
                ]
            },
            {"reply": reply},
        ]
    )
    client.beta.threads.messages.create(
        thread.id,
        role="user",
        content=second_text,
        attachments=[{"file_id": attached.id, "tools": [{"type": "code_interpreter"}]}],
    )
    run = create_and_poll(client, thread.id, assistant.id)
    assert run.status == "completed", run.last_error
    before = client.beta.threads.messages.list(thread.id, order="asc").data
    assert [m.role for m in before] == ["user", "assistant", "user", "assistant"]
    thread_raw = http.get(f"/threads/{thread.id}").json()

    conversation = move(client, thread.id)
    assert conversation.id.startswith("conv_")
    assert conversation.object == "conversation"
    assert conversation.metadata == {"customer": "acme"}
    assert resources(conversation) == {
        "code_interpreter": {"file_ids": [table.id, attached.id]},
        "file_search": {"vector_store_ids": [store.id]},
    }

    items = raw_items(http, conversation.id)
    assert all(i["id"].startswith("msg_") for i in items)
    assert not {i["id"] for i in items} & {m.id for m in before}
    cited = before[1].content[0].text.annotations[0]  # type: ignore[union-attr]
    linked = before[3].content[0].text.annotations[0]  # type: ignore[union-attr]
    assert linked.type == "file_path"
    link = "sandbox:/mnt/data/out.txt"
    assert [{k: v for k, v in i.items() if k != "id"} for i in items] == [
        {
            "type": "message",
            "status": "completed",
            "role": "user",
            "content": [
                {"type": "input_text", "text": first_text},
                {"type": "input_image", "file_id": png, "detail": "low"},
                {"type": "input_image", "image_url": DATA_URL, "detail": "auto"},
            ],
        },
        {
            "type": "message",
            "status": "completed",
            "role": "assistant",
            "content": [
                {
                    "type": "output_text",
                    "text": answer,
                    "annotations": [
                        {
                            "type": "file_citation",
                            "file_id": notes.id,
                            "filename": "notes.md",
                            "index": answer.index("】") + 1,
                        }
                    ],
                    "logprobs": [],
                }
            ],
        },
        {
            "type": "message",
            "status": "completed",
            "role": "user",
            "content": [{"type": "input_text", "text": second_text}],
        },
        {
            "type": "message",
            "status": "completed",
            "role": "assistant",
            "content": [
                {
                    "type": "output_text",
                    "text": reply,
                    "annotations": [
                        {
                            "type": "file_path",
                            "file_id": linked.file_path.file_id,  # type: ignore[union-attr]
                            "index": reply.index(link) + len(link),
                        }
                    ],
                    "logprobs": [],
                }
            ],
        },
    ]
    assert cited.file_citation.file_id == notes.id  # type: ignore[union-attr]
    # The SDK reads every item into its typed shape.
    typed: list[Any] = client.conversations.items.list(conversation.id, order="asc").data
    assert [(i.type, i.role) for i in typed] == [
        ("message", "user"),
        ("message", "assistant"),
        ("message", "user"),
        ("message", "assistant"),
    ]
    assert typed[1].content[0].annotations[0].filename == "notes.md"
    assert typed[3].content[0].annotations[0].type == "file_path"

    # A response continues the conversation: the backend gets the whole history.
    # (Its own script: the scripted model follows the newest user message that has one.)
    marker = tag()
    question = f"And then? {marker} " + script(reply="It is written down.")
    response = client.responses.create(model=MODEL, input=question, conversation=conversation.id)
    assert response.status == "completed", response.error
    assert response.output_text == "It is written down."
    (sent,) = [r for r in chat.requests if marker in json.dumps(r["messages"])]
    history = [(m["role"], text_of(m.get("content"))) for m in sent["messages"]]
    assert history == [
        ("user", first_text),
        ("assistant", answer),
        ("user", second_text),
        ("assistant", reply),
        ("user", question),
    ]
    images = [p for p in sent["messages"][0]["content"] if p.get("type") == "image_url"]
    assert [p["image_url"]["url"] for p in images][1:] == [DATA_URL]
    assert images[0]["image_url"]["url"].startswith("data:image/png;base64,")
    assert len(raw_items(http, conversation.id)) == 6

    # The thread, its messages, files and store are as they were.
    assert http.get(f"/threads/{thread.id}").json() == thread_raw
    after = client.beta.threads.messages.list(thread.id, order="asc").data
    assert [m.model_dump() for m in after] == [m.model_dump() for m in before]
    assert client.vector_stores.retrieve(store.id).file_counts.completed == 1
    for file_id in (table.id, attached.id, png, notes.id):
        assert client.files.retrieve(file_id).id == file_id


def test_items_follow_the_thread_and_metadata_replaces_its_own(
    client: OpenAI, http: httpx.Client
) -> None:
    thread = client.beta.threads.create(
        metadata={"from": "thread"}, messages=[{"role": "user", "content": "first"}]
    )
    conversation = move(
        client,
        thread.id,
        items=[{"role": "user", "content": "second"}],
        metadata={"from": "request"},
    )
    assert conversation.metadata == {"from": "request"}
    assert resources(conversation) == {
        "code_interpreter": {"file_ids": []},
        "file_search": {"vector_store_ids": []},
    }
    items = raw_items(http, conversation.id)
    assert [i["content"][0]["text"] for i in items] == ["first", "second"]
    # A plain create answers with exactly the conversation object, as before.
    plain = http.post("/conversations", json={}).json()
    assert set(plain) == {"id", "object", "created_at", "metadata"}


def test_thread_with_an_active_run_is_refused_until_it_ends(client: OpenAI) -> None:
    assistant = make_assistant(client, tools=[WEATHER_TOOL])
    plan = script(tool_calls=[{"name": "get_weather", "arguments": {"city": "Paris"}}])
    thread_id = thread_with(client, "Weather? " + plan)
    run = create_and_poll(client, thread_id, assistant.id)
    assert run.status == "requires_action", run.last_error
    sdk_error(
        openai.BadRequestError,
        lambda: move(client, thread_id),
        400,
        param="from_thread",
        code=None,
        message=f"Can't move thread {thread_id} while a run {run.id} is active.",
    )
    client.beta.threads.runs.cancel(run.id, thread_id=thread_id)
    wait_run(client, run, {"cancelled"})
    conversation = move(client, thread_id)
    items = client.conversations.items.list(conversation.id).data
    assert [i.type for i in items] == ["message"]


def test_another_projects_thread_is_not_found(client: OpenAI, other_client: OpenAI) -> None:
    thread_id = thread_with(client, "mine")
    sdk_error(
        openai.NotFoundError,
        lambda: move(other_client, thread_id),
        404,
        param="from_thread",
        message=f"No thread found with id '{thread_id}'.",
    )
    sdk_error(openai.NotFoundError, lambda: move(client, "thread_nope"), 404, param="from_thread")
    sdk_error(openai.BadRequestError, lambda: move(client, 5), 400, param="from_thread")  # type: ignore[arg-type]
    # The owner still moves it.
    assert move(client, thread_id).metadata == {}
