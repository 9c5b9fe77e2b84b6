"""Files reach file_search through message attachments (a thread store is made on the fly,
as OpenAI did) and through the ``vector_stores`` helper of ``tool_resources``."""

from __future__ import annotations

import io
import time

import openai
import pytest
from openai import OpenAI

GUIDE = (
    b"# Espresso guide\n\nThe Zanetti grinder setting for espresso is 7. Tamp with about "
    b"fifteen kilograms of pressure and pull the shot for 28 seconds.\n"
)


def wait_completed(client: OpenAI, store_id: str, file_id: str) -> str:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        status = client.vector_stores.files.retrieve(file_id, vector_store_id=store_id).status
        if status != "in_progress":
            return status
        time.sleep(0.1)
    raise AssertionError("ingestion did not finish")


def test_attachment_creates_a_thread_store_and_runs_cite_it(client: OpenAI) -> None:
    guide = client.files.create(file=("espresso.md", io.BytesIO(GUIDE)), purpose="assistants")
    assistant = client.beta.assistants.create(model="gpt-4o", tools=[{"type": "file_search"}])
    script = (
        '#script {"tool_calls": [{"name": "file_search", "arguments": {"queries": '
        '["Zanetti grinder setting"]}}], "after_tools": "Use setting 7 【0:0†espresso.md】."}'
    )
    thread = client.beta.threads.create(
        messages=[
            {
                "role": "user",
                "content": "Which grinder setting? " + script,
                "attachments": [{"file_id": guide.id, "tools": [{"type": "file_search"}]}],
            }
        ]
    )
    assert thread.tool_resources is not None
    assert thread.tool_resources.file_search is not None
    store_ids = thread.tool_resources.file_search.vector_store_ids or []
    assert len(store_ids) == 1
    store = client.vector_stores.retrieve(store_ids[0])
    assert store.expires_after is not None
    assert store.expires_after.anchor == "last_active_at"
    assert store.expires_after.days == 7
    assert wait_completed(client, store.id, guide.id) == "completed"

    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id)
    assert run.status == "completed", run.last_error
    reply = client.beta.threads.messages.list(thread.id, order="desc").data[0]
    assert reply.content[0].type == "text"
    text = reply.content[0].text
    assert text.value == "Use setting 7 【0:0†espresso.md】."
    [note] = text.annotations
    assert note.type == "file_citation"
    assert note.file_citation.file_id == guide.id
    assert text.value[note.start_index : note.end_index] == "【0:0†espresso.md】"

    # A later message attaching another file reuses the same thread store.
    extra = client.files.create(
        file=("more.txt", io.BytesIO(b"Descale monthly.")), purpose="assistants"
    )
    client.beta.threads.messages.create(
        thread.id,
        role="user",
        content="and this",
        attachments=[{"file_id": extra.id, "tools": [{"type": "file_search"}]}],
    )
    again = client.beta.threads.retrieve(thread.id)
    assert again.tool_resources is not None
    assert again.tool_resources.file_search is not None
    assert again.tool_resources.file_search.vector_store_ids == store_ids
    assert wait_completed(client, store.id, extra.id) == "completed"


def test_vector_stores_helper_on_assistant(client: OpenAI) -> None:
    guide = client.files.create(file=("espresso.md", io.BytesIO(GUIDE)), purpose="assistants")
    assistant = client.beta.assistants.create(
        model="gpt-4o",
        tools=[{"type": "file_search"}],
        tool_resources={
            "file_search": {"vector_stores": [{"file_ids": [guide.id], "metadata": {"k": "v"}}]}
        },
    )
    assert assistant.tool_resources is not None
    assert assistant.tool_resources.file_search is not None
    [store_id] = assistant.tool_resources.file_search.vector_store_ids or []
    store = client.vector_stores.retrieve(store_id)
    assert store.metadata == {"k": "v"}
    assert store.expires_after is None
    assert wait_completed(client, store_id, guide.id) == "completed"
    hits = client.vector_stores.search(store_id, query="Zanetti grinder setting").data
    assert hits[0].file_id == guide.id


def test_unknown_vector_store_id_is_400(client: OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.beta.assistants.create(
            model="gpt-4o",
            tool_resources={"file_search": {"vector_store_ids": ["vs_missing"]}},
        )
    assert info.value.param == "tool_resources.file_search.vector_store_ids[0]"


def test_run_waits_for_an_attachment_still_being_ingested(client: OpenAI) -> None:
    """A file attached just before the run is searched once ingested, not missed while it is
    ``in_progress`` (the run stays in progress meanwhile)."""
    filler = b"".join(
        b"Section %d. The cafe opens at eight and closes at six; deliveries come on Tuesdays "
        b"and the roaster is cleaned each Friday after closing time.\n" % i
        for i in range(9000)
    )
    big = client.files.create(file=("manual.txt", io.BytesIO(filler + GUIDE)), purpose="assistants")
    assistant = client.beta.assistants.create(model="gpt-4o", tools=[{"type": "file_search"}])
    script = (
        '#script {"tool_calls": [{"name": "file_search", "arguments": {"queries": '
        '["Zanetti grinder setting for espresso"]}}], "after_tools": "{output0}"}'
    )
    thread = client.beta.threads.create(
        messages=[
            {
                "role": "user",
                "content": "Which grinder setting? " + script,
                "attachments": [{"file_id": big.id, "tools": [{"type": "file_search"}]}],
            }
        ]
    )
    assert thread.tool_resources is not None
    assert thread.tool_resources.file_search is not None
    [store_id] = thread.tool_resources.file_search.vector_store_ids or []
    run = client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id)
    status = client.vector_stores.files.retrieve(big.id, vector_store_id=store_id).status
    assert status == "in_progress"  # else this test would not test the wait
    run = client.beta.threads.runs.poll(run.id, thread_id=thread.id, poll_interval_ms=100)
    assert run.status == "completed", run.last_error
    assert wait_completed(client, store_id, big.id) == "completed"
    steps = client.beta.threads.runs.steps.list(
        run.id,
        thread_id=thread.id,
        include=["step_details.tool_calls[*].file_search.results[*].content"],
    )
    results = [
        result
        for step in steps
        if step.step_details.type == "tool_calls"
        for call in step.step_details.tool_calls
        if call.type == "file_search"
        for result in call.file_search.results or []
    ]
    assert results, "the search ran before the file was ingested"
    assert any("Zanetti" in (r.content or [])[0].text for r in results if r.content)
