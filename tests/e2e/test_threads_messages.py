"""Threads and messages end to end: every content form, attachments, modify and delete."""

from __future__ import annotations

import io
import time
from typing import Any

import httpx
import openai
import psycopg
import pytest
from openai import OpenAI

from tests.conftest import Database

THREAD_KEYS = {"id", "object", "created_at", "metadata", "tool_resources"}
MESSAGE_KEYS = {
    "id",
    "object",
    "created_at",
    "thread_id",
    "status",
    "incomplete_details",
    "completed_at",
    "incomplete_at",
    "role",
    "content",
    "assistant_id",
    "run_id",
    "attachments",
    "metadata",
}

# A 1x1 transparent PNG.
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d4944415478da63f8ffff3f0005fe02fea7d6a4b20000000049454e44ae426082"
)
IMAGE_URL = "https://example.com/cat.png"


def text_part(value: str) -> dict[str, Any]:
    return {"type": "text", "text": {"value": value, "annotations": []}}


def upload(client: OpenAI, name: str, data: bytes, purpose: str = "assistants") -> str:
    return client.files.create(file=(name, io.BytesIO(data)), purpose=purpose).id  # type: ignore[arg-type]


def messages_in_db(database: Database, thread_id: str) -> int:
    with psycopg.connect(database.url) as conn:
        row = conn.execute("SELECT count(*) FROM messages WHERE thread_id = %s", (thread_id,))
        return int(row.fetchone()[0])  # type: ignore[index]


# ---- threads -------------------------------------------------------------------------------


def test_create_thread_without_arguments(client: OpenAI, http: httpx.Client) -> None:
    before = int(time.time())
    thread = client.beta.threads.create()
    after = int(time.time())
    assert thread.id.startswith("thread_")
    assert thread.object == "thread"
    assert before <= thread.created_at <= after
    assert thread.metadata == {}
    body = http.get(f"/threads/{thread.id}").json()
    assert body == {
        "id": thread.id,
        "object": "thread",
        "created_at": thread.created_at,
        "metadata": {},
        "tool_resources": {},
    }
    assert client.beta.threads.messages.list(thread.id).data == []

    # The same through raw HTTP: an explicit {} and no body at all.
    for resp in (
        http.post("/threads", json={}),
        http.post("/threads", headers={"Content-Type": "application/json"}),
    ):
        assert resp.status_code == 200, resp.text
        assert set(resp.json()) == THREAD_KEYS
        assert resp.json()["metadata"] == {}


def test_create_thread_with_everything(client: OpenAI, http: httpx.Client) -> None:
    csv_id = upload(client, "data.csv", b"x,y\n1,2\n")
    doc_id = upload(client, "notes.txt", b"some notes")
    image_id = upload(client, "pixel.png", PNG, purpose="vision")

    thread = client.beta.threads.create(
        metadata={"user": "ada", "topic": "algebra"},
        tool_resources={"code_interpreter": {"file_ids": [csv_id]}},
        messages=[
            {"role": "user", "content": "plain string"},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "first part"},
                    {"type": "text", "text": "second part"},
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "what is in these images?"},
                    {"type": "image_url", "image_url": {"url": IMAGE_URL, "detail": "low"}},
                    {"type": "image_file", "image_file": {"file_id": image_id}},
                ],
            },
            {
                "role": "user",
                "content": "look at the files",
                "attachments": [
                    {"file_id": csv_id, "tools": [{"type": "code_interpreter"}]},
                    {"file_id": doc_id, "tools": [{"type": "file_search"}]},
                ],
                "metadata": {"kind": "attachments"},
            },
            {"role": "assistant", "content": "I am the assistant."},
        ],
    )
    assert thread.metadata == {"user": "ada", "topic": "algebra"}
    assert thread.tool_resources is not None
    assert thread.tool_resources.code_interpreter is not None
    assert thread.tool_resources.code_interpreter.file_ids == [csv_id]

    raw = http.get(f"/threads/{thread.id}").json()
    assert set(raw) == THREAD_KEYS
    assert raw["metadata"] == {"user": "ada", "topic": "algebra"}
    assert raw["tool_resources"]["code_interpreter"] == {"file_ids": [csv_id]}
    assert client.beta.threads.retrieve(thread.id) == thread

    page = http.get(f"/threads/{thread.id}/messages", params={"order": "asc"}).json()
    messages = page["data"]
    assert page["has_more"] is False
    assert len(messages) == 5
    for m in messages:
        assert set(m) == MESSAGE_KEYS
        assert m["object"] == "thread.message"
        assert m["thread_id"] == thread.id
        assert m["status"] == "completed"
        assert m["assistant_id"] is None
        assert m["run_id"] is None
    assert [m["role"] for m in messages] == ["user", "user", "user", "user", "assistant"]
    assert messages[0]["content"] == [text_part("plain string")]
    assert messages[1]["content"] == [text_part("first part"), text_part("second part")]
    assert messages[2]["content"] == [
        text_part("what is in these images?"),
        {"type": "image_url", "image_url": {"url": IMAGE_URL, "detail": "low"}},
        {"type": "image_file", "image_file": {"file_id": image_id, "detail": "auto"}},
    ]
    assert messages[3]["content"] == [text_part("look at the files")]
    assert messages[3]["attachments"] == [
        {"file_id": csv_id, "tools": [{"type": "code_interpreter"}]},
        {"file_id": doc_id, "tools": [{"type": "file_search"}]},
    ]
    assert messages[3]["metadata"] == {"kind": "attachments"}
    assert messages[4]["content"] == [text_part("I am the assistant.")]
    assert all(m["attachments"] == [] for i, m in enumerate(messages) if i != 3)
    assert all(m["metadata"] == {} for i, m in enumerate(messages) if i != 3)
    # Creation order is kept even when created_at ties.
    assert [m["created_at"] for m in messages] == sorted(m["created_at"] for m in messages)

    # The SDK parses every content type.
    sdk = client.beta.threads.messages.list(thread.id, order="asc").data
    assert [m.id for m in sdk] == [m["id"] for m in messages]
    image_msg = sdk[2]
    assert [p.type for p in image_msg.content] == ["text", "image_url", "image_file"]
    assert image_msg.content[1].image_url.url == IMAGE_URL  # type: ignore[union-attr]
    assert image_msg.content[1].image_url.detail == "low"  # type: ignore[union-attr]
    assert image_msg.content[2].image_file.file_id == image_id  # type: ignore[union-attr]
    attach = sdk[3].attachments
    assert attach is not None
    assert [a.file_id for a in attach] == [csv_id, doc_id]
    assert attach[0].tools is not None
    assert attach[0].tools[0].type == "code_interpreter"
    assert attach[1].tools is not None
    assert attach[1].tools[0].type == "file_search"


def test_modify_thread(client: OpenAI, http: httpx.Client) -> None:
    vs_thread = client.vector_stores.create(name="vs_thread").id
    first = upload(client, "a.txt", b"a")
    second = upload(client, "b.txt", b"b")
    thread = client.beta.threads.create(
        metadata={"a": "1"}, tool_resources={"code_interpreter": {"file_ids": [first]}}
    )

    updated = client.beta.threads.update(thread.id, metadata={"b": "2"})
    assert updated.id == thread.id
    assert updated.metadata == {"b": "2"}
    assert updated.tool_resources is not None
    assert updated.tool_resources.code_interpreter is not None
    assert updated.tool_resources.code_interpreter.file_ids == [first]

    updated = client.beta.threads.update(
        thread.id,
        tool_resources={
            "code_interpreter": {"file_ids": [second]},
            "file_search": {"vector_store_ids": [vs_thread]},
        },
    )
    assert updated.metadata == {"b": "2"}
    body = http.get(f"/threads/{thread.id}").json()
    assert body == {
        "id": thread.id,
        "object": "thread",
        "created_at": thread.created_at,
        "metadata": {"b": "2"},
        "tool_resources": {
            "code_interpreter": {"file_ids": [second]},
            "file_search": {"vector_store_ids": [vs_thread]},
        },
    }

    # Explicit null metadata clears it.
    cleared = http.post(f"/threads/{thread.id}", json={"metadata": None})
    assert cleared.status_code == 200
    assert cleared.json()["metadata"] == {}


def test_delete_thread_removes_messages(
    client: OpenAI, http: httpx.Client, database: Database
) -> None:
    thread = client.beta.threads.create(
        messages=[{"role": "user", "content": "one"}, {"role": "user", "content": "two"}]
    )
    message_id = client.beta.threads.messages.list(thread.id).data[0].id
    other = client.beta.threads.create(messages=[{"role": "user", "content": "stay"}])
    assert messages_in_db(database, thread.id) == 2

    resp = http.delete(f"/threads/{thread.id}")
    assert resp.status_code == 200
    assert resp.json() == {"id": thread.id, "object": "thread.deleted", "deleted": True}

    with pytest.raises(openai.NotFoundError):
        client.beta.threads.retrieve(thread.id)
    with pytest.raises(openai.NotFoundError):
        client.beta.threads.update(thread.id, metadata={"x": "y"})
    with pytest.raises(openai.NotFoundError):
        client.beta.threads.messages.list(thread.id)
    with pytest.raises(openai.NotFoundError):
        client.beta.threads.messages.retrieve(message_id, thread_id=thread.id)
    with pytest.raises(openai.NotFoundError):
        client.beta.threads.messages.create(thread.id, role="user", content="late")
    with pytest.raises(openai.NotFoundError):
        client.beta.threads.delete(thread.id)
    assert messages_in_db(database, thread.id) == 0

    # Another thread is untouched.
    assert [m.content[0].text.value for m in client.beta.threads.messages.list(other.id)] == [  # type: ignore[union-attr]
        "stay"
    ]
    deleted = client.beta.threads.delete(other.id)
    assert (deleted.id, deleted.object, deleted.deleted) == (other.id, "thread.deleted", True)


# ---- messages ------------------------------------------------------------------------------


def test_create_message_forms(client: OpenAI, http: httpx.Client) -> None:
    image_id = upload(client, "pixel.png", PNG, purpose="vision")
    doc_id = upload(client, "doc.txt", b"doc")
    thread = client.beta.threads.create()

    before = int(time.time())
    raw = client.beta.threads.messages.with_raw_response.create(
        thread.id, role="user", content="Hello there"
    )
    after = int(time.time())
    body = raw.http_response.json()
    assert set(body) == MESSAGE_KEYS
    msg = raw.parse()
    assert msg.id.startswith("msg_")
    assert body == {
        "id": msg.id,
        "object": "thread.message",
        "created_at": msg.created_at,
        "thread_id": thread.id,
        "status": "completed",
        "incomplete_details": None,
        "completed_at": msg.created_at,
        "incomplete_at": None,
        "role": "user",
        "content": [text_part("Hello there")],
        "assistant_id": None,
        "run_id": None,
        "attachments": [],
        "metadata": {},
    }
    assert before <= msg.created_at <= after
    first = msg.content[0]
    assert first.type == "text"
    assert first.text.value == "Hello there"
    assert first.text.annotations == []

    parts = client.beta.threads.messages.create(
        thread.id,
        role="user",
        content=[
            {"type": "text", "text": "Describe"},
            {"type": "image_file", "image_file": {"file_id": image_id, "detail": "high"}},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        ],
        attachments=[
            {"file_id": doc_id, "tools": [{"type": "code_interpreter"}, {"type": "file_search"}]}
        ],
        metadata={"source": "test"},
    )
    parts_raw = http.get(f"/threads/{thread.id}/messages/{parts.id}").json()
    assert set(parts_raw) == MESSAGE_KEYS
    assert parts_raw["content"] == [
        text_part("Describe"),
        {"type": "image_file", "image_file": {"file_id": image_id, "detail": "high"}},
        {
            "type": "image_url",
            "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "auto"},
        },
    ]
    assert parts_raw["attachments"] == [
        {"file_id": doc_id, "tools": [{"type": "code_interpreter"}, {"type": "file_search"}]}
    ]
    assert parts_raw["metadata"] == {"source": "test"}

    reply = client.beta.threads.messages.create(
        thread.id, role="assistant", content="Sure, here you go."
    )
    assert reply.role == "assistant"
    assert reply.assistant_id is None
    assert reply.run_id is None
    assert http.get(f"/threads/{thread.id}/messages/{reply.id}").json()["role"] == "assistant"

    listed = client.beta.threads.messages.list(thread.id, order="asc")
    assert [m.id for m in listed.data] == [msg.id, parts.id, reply.id]


def test_list_retrieve_modify_delete_messages(client: OpenAI, http: httpx.Client) -> None:
    thread = client.beta.threads.create()
    ids = [
        client.beta.threads.messages.create(thread.id, role="user", content=f"m{i}").id
        for i in range(5)
    ]

    page = http.get(f"/threads/{thread.id}/messages").json()
    assert page["object"] == "list"
    assert [m["id"] for m in page["data"]] == list(reversed(ids))  # desc by default
    assert page["first_id"] == ids[-1]
    assert page["last_id"] == ids[0]
    assert page["has_more"] is False

    first_two = client.beta.threads.messages.list(thread.id, order="asc", limit=2)
    assert [m.id for m in first_two.data] == ids[:2]
    assert first_two.has_more is True
    rest = client.beta.threads.messages.list(thread.id, order="asc", after=ids[1])
    assert [m.id for m in rest.data] == ids[2:]
    assert [m.id for m in client.beta.threads.messages.list(thread.id, limit=2)] == list(
        reversed(ids)
    )
    # No run has produced messages in this thread.
    assert client.beta.threads.messages.list(thread.id, run_id="run_none").data == []

    got = client.beta.threads.messages.retrieve(ids[2], thread_id=thread.id)
    assert got.id == ids[2]
    assert got.content[0].text.value == "m2"  # type: ignore[union-attr]
    assert got == client.beta.threads.messages.list(thread.id, order="asc").data[2]

    # Metadata is replaced on modify; content stays.
    client.beta.threads.messages.update(ids[2], thread_id=thread.id, metadata={"a": "1"})
    modified = client.beta.threads.messages.update(ids[2], thread_id=thread.id, metadata={"b": "2"})
    assert modified.metadata == {"b": "2"}
    raw = http.get(f"/threads/{thread.id}/messages/{ids[2]}").json()
    assert raw["metadata"] == {"b": "2"}
    assert raw["content"] == [text_part("m2")]
    assert raw["created_at"] == got.created_at

    resp = http.delete(f"/threads/{thread.id}/messages/{ids[2]}")
    assert resp.status_code == 200
    assert resp.json() == {"id": ids[2], "object": "thread.message.deleted", "deleted": True}
    with pytest.raises(openai.NotFoundError):
        client.beta.threads.messages.retrieve(ids[2], thread_id=thread.id)
    with pytest.raises(openai.NotFoundError):
        client.beta.threads.messages.delete(ids[2], thread_id=thread.id)
    remaining = [m.id for m in client.beta.threads.messages.list(thread.id, order="asc")]
    assert remaining == [ids[0], ids[1], ids[3], ids[4]]

    deleted = client.beta.threads.messages.delete(ids[0], thread_id=thread.id)
    assert (deleted.id, deleted.object, deleted.deleted) == (
        ids[0],
        "thread.message.deleted",
        True,
    )


def test_message_of_another_thread_is_not_found(client: OpenAI) -> None:
    first = client.beta.threads.create(messages=[{"role": "user", "content": "mine"}])
    second = client.beta.threads.create()
    message_id = client.beta.threads.messages.list(first.id).data[0].id
    with pytest.raises(openai.NotFoundError):
        client.beta.threads.messages.retrieve(message_id, thread_id=second.id)
    with pytest.raises(openai.NotFoundError):
        client.beta.threads.messages.update(message_id, thread_id=second.id, metadata={})
    with pytest.raises(openai.NotFoundError):
        client.beta.threads.messages.delete(message_id, thread_id=second.id)
    assert client.beta.threads.messages.retrieve(message_id, thread_id=first.id).id == message_id
