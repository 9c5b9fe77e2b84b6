"""The README's first-steps scenario, exactly as a new user runs it with the SDK."""

from __future__ import annotations

import io

import openai
import pytest
from openai import OpenAI

CSV = b"name,score\nada,90\ngrace,95\n\xc3\xa9mile,88\n"


@pytest.mark.sdk_matrix
def test_quickstart_scenario(client: OpenAI) -> None:
    assistant = client.beta.assistants.create(
        model="gpt-4o",
        name="Math Tutor",
        instructions="You are a personal math tutor.",
        tools=[{"type": "code_interpreter"}],
        metadata={"team": "maths"},
    )
    assert assistant.id.startswith("asst_")
    assert assistant.object == "assistant"
    assert assistant.tools[0].type == "code_interpreter"
    assert assistant.metadata == {"team": "maths"}
    second = client.beta.assistants.create(model="gpt-4o-mini")

    first_page = client.beta.assistants.list(limit=1)
    assert [a.id for a in first_page.data] == [second.id]
    assert first_page.has_more is True
    next_page = client.beta.assistants.list(limit=1, after=first_page.data[0].id)
    assert [a.id for a in next_page.data] == [assistant.id]
    assert next_page.has_more is False
    # The auto-pager walks every page with after=<last id>.
    assert [a.id for a in client.beta.assistants.list(limit=1)] == [second.id, assistant.id]

    thread = client.beta.threads.create(
        messages=[
            {"role": "user", "content": "I need to solve 3x + 11 = 14."},
            {"role": "user", "content": [{"type": "text", "text": "Can you help?"}]},
        ]
    )
    asc = client.beta.threads.messages.list(thread.id, order="asc")
    desc = client.beta.threads.messages.list(thread.id, order="desc")
    texts = [m.content[0].text.value for m in asc.data if m.content[0].type == "text"]
    assert texts == ["I need to solve 3x + 11 = 14.", "Can you help?"]
    assert [m.id for m in desc.data] == [m.id for m in reversed(asc.data)]
    assert all(m.thread_id == thread.id and m.role == "user" for m in asc.data)

    uploaded = client.files.create(file=("scores.csv", io.BytesIO(CSV)), purpose="assistants")
    assert uploaded.bytes == len(CSV)
    assert uploaded.filename == "scores.csv"
    assert uploaded.purpose == "assistants"
    assert client.files.content(uploaded.id).content == CSV

    assert client.beta.assistants.delete(assistant.id).deleted
    assert client.beta.assistants.delete(second.id).deleted
    assert client.beta.threads.delete(thread.id).deleted
    assert client.files.delete(uploaded.id).deleted

    with pytest.raises(openai.NotFoundError):
        client.beta.assistants.retrieve(assistant.id)
    with pytest.raises(openai.NotFoundError):
        client.beta.threads.retrieve(thread.id)
    with pytest.raises(openai.NotFoundError):
        client.beta.threads.messages.list(thread.id)
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve(uploaded.id)
    with pytest.raises(openai.NotFoundError):
        client.files.content(uploaded.id)
