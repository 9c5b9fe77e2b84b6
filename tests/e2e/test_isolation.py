"""Project isolation: another project's objects are indistinguishable from unknown ids.

Project A (``client``) owns an assistant, a thread with a message, and a file. Project B
(``other_client``) must get exactly the 404 an unknown id gets (same status, same body once
the id is substituted), must never see A's objects in its lists, must not change or delete
them, and must not reference A's file from its own objects.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

import openai
import pytest
from openai import OpenAI

CSV = b"name,score\nada,90\n"


@dataclass(frozen=True)
class Ids:
    """One id of each kind of object."""

    assistant: str
    thread: str
    message: str
    file: str

    def masked(self, body: Any) -> Any:
        """``body`` with every one of these ids replaced by its kind's name."""
        text = json.dumps(body)
        for f in fields(self):
            text = text.replace(getattr(self, f.name), f"<{f.name}>")
        return json.loads(text)


def lookalike(real: str) -> str:
    """An unknown id with the same prefix and length as ``real``."""
    prefix = real[: real.index("_") + 1] if "_" in real else real[: real.index("-") + 1]
    return prefix + "z" * (len(real) - len(prefix))


@pytest.fixture
def a_ids(client: OpenAI) -> Ids:
    """Project A's objects."""
    assistant = client.beta.assistants.create(
        model="gpt-4o", name="A's assistant", metadata={"owner": "a"}
    )
    thread = client.beta.threads.create(
        messages=[{"role": "user", "content": "A's secret"}], metadata={"owner": "a"}
    )
    (message,) = client.beta.threads.messages.list(thread.id).data
    file = client.files.create(file=("a.csv", io.BytesIO(CSV)), purpose="assistants")
    return Ids(assistant.id, thread.id, message.id, file.id)


def unknown_like(ids: Ids) -> Ids:
    """Ids shaped like ``ids`` that name nothing."""
    return Ids(*(lookalike(getattr(ids, f.name)) for f in fields(ids)))


def failure(call: Callable[[], object]) -> openai.APIStatusError:
    """The error an SDK call raised (it must raise one)."""
    with pytest.raises(openai.APIStatusError) as info:
        call()
    return info.value


def assert_like_unknown(
    call: Callable[[Ids], object], real: Ids, status: int = 404
) -> openai.APIStatusError:
    """``call`` fails on ``real`` exactly as on unknown ids of the same shape."""
    fake = unknown_like(real)
    on_real = failure(lambda: call(real))
    on_fake = failure(lambda: call(fake))
    assert on_real.status_code == on_fake.status_code == status
    assert type(on_real) is type(on_fake)
    real_body = on_real.response.json()
    assert set(real_body) == {"error"}
    assert set(real_body["error"]) == {"message", "type", "param", "code"}
    assert real.masked(real_body) == fake.masked(on_fake.response.json())
    assert on_real.response.headers["content-type"] == on_fake.response.headers["content-type"]
    return on_real


# What project B tries on project A's objects; each must look like an unknown id.
B_ATTEMPTS: dict[str, Callable[[OpenAI, Ids], object]] = {
    "assistant-retrieve": lambda b, i: b.beta.assistants.retrieve(i.assistant),
    "assistant-modify": lambda b, i: b.beta.assistants.update(
        i.assistant, name="hijacked", metadata={"owner": "b"}
    ),
    "assistant-delete": lambda b, i: b.beta.assistants.delete(i.assistant),
    "thread-retrieve": lambda b, i: b.beta.threads.retrieve(i.thread),
    "thread-modify": lambda b, i: b.beta.threads.update(i.thread, metadata={"owner": "b"}),
    "thread-delete": lambda b, i: b.beta.threads.delete(i.thread),
    "messages-list": lambda b, i: b.beta.threads.messages.list(i.thread),
    "message-create": lambda b, i: b.beta.threads.messages.create(
        i.thread, role="user", content="injected"
    ),
    "message-retrieve": lambda b, i: b.beta.threads.messages.retrieve(
        i.message, thread_id=i.thread
    ),
    "message-modify": lambda b, i: b.beta.threads.messages.update(
        i.message, thread_id=i.thread, metadata={"owner": "b"}
    ),
    "message-delete": lambda b, i: b.beta.threads.messages.delete(i.message, thread_id=i.thread),
    "file-retrieve": lambda b, i: b.files.retrieve(i.file),
    "file-content": lambda b, i: b.files.content(i.file),
    "file-delete": lambda b, i: b.files.delete(i.file),
}


def assert_a_intact(client: OpenAI, ids: Ids) -> None:
    """Project A still has every object, unchanged."""
    assistant = client.beta.assistants.retrieve(ids.assistant)
    assert (assistant.name, assistant.metadata) == ("A's assistant", {"owner": "a"})
    assert client.beta.threads.retrieve(ids.thread).metadata == {"owner": "a"}
    messages = client.beta.threads.messages.list(ids.thread).data
    assert [m.id for m in messages] == [ids.message]
    content = messages[0].content[0]
    assert content.type == "text"
    assert content.text.value == "A's secret"
    assert messages[0].metadata == {}
    assert client.files.retrieve(ids.file).bytes == len(CSV)
    assert client.files.content(ids.file).content == CSV


@pytest.mark.parametrize("attempt", list(B_ATTEMPTS))
def test_other_projects_objects_answer_like_unknown_ids(
    client: OpenAI, other_client: OpenAI, a_ids: Ids, attempt: str
) -> None:
    call = B_ATTEMPTS[attempt]
    exc = assert_like_unknown(lambda ids: call(other_client, ids), a_ids)
    assert isinstance(exc, openai.NotFoundError)
    # Message calls fail on the thread first, as they do for an unknown thread.
    kind = "thread" if attempt.startswith("message") else attempt.split("-")[0]
    asked = getattr(a_ids, kind)
    assert exc.response.json()["error"]["message"] == f"No {kind} found with id '{asked}'."
    assert_a_intact(client, a_ids)


def test_own_thread_with_other_projects_message_id(
    client: OpenAI, other_client: OpenAI, a_ids: Ids
) -> None:
    """B's own thread does not open a door to A's message ids."""
    b_thread = other_client.beta.threads.create(messages=[{"role": "user", "content": "b"}])

    def call(ids: Ids) -> object:
        return other_client.beta.threads.messages.retrieve(ids.message, thread_id=b_thread.id)

    exc = assert_like_unknown(call, a_ids)
    assert exc.param == "message_id"
    for attempt in (
        lambda: other_client.beta.threads.messages.update(
            a_ids.message, thread_id=b_thread.id, metadata={"owner": "b"}
        ),
        lambda: other_client.beta.threads.messages.delete(a_ids.message, thread_id=b_thread.id),
    ):
        assert failure(attempt).status_code == 404
    assert_a_intact(client, a_ids)


def test_lists_never_show_other_projects_objects(
    client: OpenAI, other_client: OpenAI, a_ids: Ids
) -> None:
    assert other_client.beta.assistants.list().data == []
    assert other_client.files.list().data == []
    assert other_client.files.list(purpose="assistants").data == []

    b_assistant = other_client.beta.assistants.create(model="gpt-4o")
    b_file = other_client.files.create(file=("b.csv", io.BytesIO(b"b")), purpose="assistants")
    assert [a.id for a in other_client.beta.assistants.list()] == [b_assistant.id]
    assert [f.id for f in other_client.files.list()] == [b_file.id]
    # A's lists are symmetric.
    assert [a.id for a in client.beta.assistants.list()] == [a_ids.assistant]
    assert [f.id for f in client.files.list()] == [a_ids.file]

    # A's ids are no cursor into B's lists either (an unknown cursor gives an empty page).
    for order in ("asc", "desc"):
        page = other_client.beta.assistants.list(after=a_ids.assistant, order=order)
        assert page.data == []
        page = other_client.beta.assistants.list(before=a_ids.assistant, order=order)
        assert page.data == []
        assert other_client.files.list(after=a_ids.file, order=order).data == []
    b_thread = other_client.beta.threads.create(messages=[{"role": "user", "content": "b"}])
    assert other_client.beta.threads.messages.list(b_thread.id, after=a_ids.message).data == []


def test_failed_deletes_leave_objects_in_place(
    client: OpenAI, other_client: OpenAI, a_ids: Ids
) -> None:
    for _ in range(2):
        for call in (
            lambda: other_client.beta.threads.messages.delete(
                a_ids.message, thread_id=a_ids.thread
            ),
            lambda: other_client.beta.assistants.delete(a_ids.assistant),
            lambda: other_client.beta.threads.delete(a_ids.thread),
            lambda: other_client.files.delete(a_ids.file),
        ):
            assert isinstance(failure(call), openai.NotFoundError)
    assert_a_intact(client, a_ids)
    # And A can still delete them itself.
    assert client.beta.threads.messages.delete(a_ids.message, thread_id=a_ids.thread).deleted
    assert client.beta.assistants.delete(a_ids.assistant).deleted
    assert client.beta.threads.delete(a_ids.thread).deleted
    assert client.files.delete(a_ids.file).deleted


# Ways B could reference a file id from its own objects; A's file must be refused like an
# unknown one, with 400 naming the parameter.
B_REFERENCES: dict[str, tuple[Callable[[OpenAI, str, str], object], str]] = {
    "message-attachment": (
        lambda b, thread, f: b.beta.threads.messages.create(
            thread,
            role="user",
            content="see file",
            attachments=[{"file_id": f, "tools": [{"type": "code_interpreter"}]}],
        ),
        "attachments[0].file_id",
    ),
    "message-image-file": (
        lambda b, thread, f: b.beta.threads.messages.create(
            thread, role="user", content=[{"type": "image_file", "image_file": {"file_id": f}}]
        ),
        "content[0].image_file.file_id",
    ),
    "thread-create-attachment": (
        lambda b, thread, f: b.beta.threads.create(
            messages=[{"role": "user", "content": "x", "attachments": [{"file_id": f}]}]
        ),
        "messages[0].attachments[0].file_id",
    ),
    "assistant-tool-resources": (
        lambda b, thread, f: b.beta.assistants.create(
            model="gpt-4o", tool_resources={"code_interpreter": {"file_ids": [f]}}
        ),
        "tool_resources.code_interpreter.file_ids[0]",
    ),
    "thread-tool-resources": (
        lambda b, thread, f: b.beta.threads.update(
            thread, tool_resources={"code_interpreter": {"file_ids": [f]}}
        ),
        "tool_resources.code_interpreter.file_ids[0]",
    ),
}


@pytest.mark.parametrize("reference", list(B_REFERENCES))
def test_cannot_reference_other_projects_file(
    client: OpenAI, other_client: OpenAI, a_ids: Ids, reference: str
) -> None:
    call, param = B_REFERENCES[reference]
    b_thread = other_client.beta.threads.create()
    exc = assert_like_unknown(lambda ids: call(other_client, b_thread.id, ids.file), a_ids, 400)
    assert isinstance(exc, openai.BadRequestError)
    assert exc.param == param
    assert exc.response.json()["error"]["message"] == f"No file found with id '{a_ids.file}'."
    # Nothing of B's picked the file up.
    assert other_client.beta.threads.messages.list(b_thread.id).data == []
    assert other_client.beta.assistants.list().data == []
    resources = other_client.beta.threads.retrieve(b_thread.id).tool_resources
    assert resources is None or resources.code_interpreter is None
    # A's own use of the same file works.
    a_message = client.beta.threads.messages.create(
        a_ids.thread, role="user", content="mine", attachments=[{"file_id": a_ids.file}]
    )
    assert a_message.attachments is not None
    assert [att.file_id for att in a_message.attachments] == [a_ids.file]
