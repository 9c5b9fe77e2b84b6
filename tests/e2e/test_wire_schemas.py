"""Every Assistants-era object the server returns fits its schema in OpenAI's spec.

Objects are made through the official SDK against the real server; the raw JSON body of
each answer (not the SDK's lenient model of it) is validated against the spec's component
schema by ``tests/support/spec_schemas.py``: a missing, mistyped or unknown field fails.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from functools import partial
from typing import Any, Final, cast

import openai
import pytest
from openai import OpenAI
from openai.types.beta import FunctionToolParam

from tests.conftest import ServerProcess
from tests.support.runs import (
    PNG,
    WEATHER_TOOL,
    make_assistant,
    script,
    upload_png,
    wait_run,
    wait_until,
)
from tests.support.spec_schemas import check, problems

JSON_SCHEMA_FORMAT = {
    "type": "json_schema",
    "json_schema": {
        "name": "answer",
        "description": "One answer",
        "schema": {"type": "object", "properties": {"a": {"type": "string"}}},
        "strict": False,
    },
}


def body(response: Any) -> Any:
    """The JSON body of an SDK raw response."""
    return json.loads(response.content)


def raw(component: str, call: Callable[[], Any]) -> dict[str, Any]:
    """Make ``call`` (a ``with_raw_response`` method bound to its arguments), check its body
    against ``component`` and return it."""
    response = call()
    assert response.status_code == 200
    data: dict[str, Any] = body(response)
    check(component, data)
    return data


def text_file(client: OpenAI, text: str, name: str = "notes.txt") -> str:
    """Upload ``text`` as an ``assistants`` file; return its id."""
    upload = (name, io.BytesIO(text.encode()))
    return client.files.create(file=upload, purpose="assistants").id


def test_assistant_objects(client: OpenAI) -> None:
    """Create, retrieve, modify, list and delete assistants (every tool kind, resources)."""
    assistants = client.beta.assistants.with_raw_response
    file_id = text_file(client, "The secret word is heliotrope.")
    store = client.vector_stores.create(name="asst")
    created = raw(
        "AssistantObject",
        lambda: assistants.create(
            model="gpt-4o",
            name="Tutor",
            description="Checks the wire",
            instructions="Be terse.",
            tools=[
                {"type": "code_interpreter"},
                {
                    "type": "file_search",
                    "file_search": {
                        "max_num_results": 5,
                        "ranking_options": {"ranker": "auto", "score_threshold": 0.1},
                    },
                },
                cast(FunctionToolParam, WEATHER_TOOL),
            ],
            tool_resources={
                "code_interpreter": {"file_ids": [file_id]},
                "file_search": {"vector_store_ids": [store.id]},
            },
            metadata={"k": "v"},
            temperature=0.5,
            top_p=0.9,
            response_format=JSON_SCHEMA_FORMAT,  # type: ignore[arg-type]
        ),
    )
    bare = raw("AssistantObject", lambda: assistants.create(model="gpt-4o"))
    assert bare["name"] is None
    assert bare["tool_resources"] == {}
    raw("AssistantObject", lambda: assistants.retrieve(created["id"]))
    raw(
        "AssistantObject",
        lambda: assistants.update(
            created["id"], name="Renamed", response_format={"type": "json_object"}
        ),
    )
    page = raw("ListAssistantsResponse", lambda: assistants.list(limit=1))
    assert len(page["data"]) == 1
    assert page["has_more"] is True
    deleted = raw("DeleteAssistantResponse", lambda: assistants.delete(bare["id"]))
    assert deleted["deleted"] is True


def test_thread_and_message_objects(client: OpenAI) -> None:
    """Threads and messages with every request content part and both attachment tools."""
    threads = client.beta.threads.with_raw_response
    messages = client.beta.threads.messages.with_raw_response
    file_id = text_file(client, "Attached facts.")
    image_id = upload_png(client)
    thread = raw(
        "ThreadObject",
        lambda: threads.create(
            messages=[{"role": "user", "content": "hello", "metadata": {"n": "1"}}],
            tool_resources={"code_interpreter": {"file_ids": [file_id]}},
            metadata={"k": "v"},
        ),
    )
    raw("ThreadObject", lambda: threads.create())
    raw("ThreadObject", lambda: threads.retrieve(thread["id"]))
    raw("ThreadObject", lambda: threads.update(thread["id"], metadata={"k": "w"}))
    message = raw(
        "MessageObject",
        lambda: messages.create(
            thread["id"],
            role="user",
            content=[
                {"type": "text", "text": "look at this"},
                {"type": "image_file", "image_file": {"file_id": image_id, "detail": "low"}},
                {
                    "type": "image_url",
                    "image_url": {"url": "https://example.com/a.png", "detail": "auto"},
                },
            ],
            attachments=[
                {
                    "file_id": file_id,
                    "tools": [{"type": "code_interpreter"}, {"type": "file_search"}],
                }
            ],
        ),
    )
    raw("MessageObject", lambda: messages.retrieve(message["id"], thread_id=thread["id"]))
    raw(
        "MessageObject",
        lambda: messages.update(message["id"], thread_id=thread["id"], metadata={"a": "b"}),
    )
    page = raw("ListMessagesResponse", lambda: messages.list(thread["id"], order="asc"))
    assert len(page["data"]) == 2
    raw(
        "DeleteMessageResponse",
        lambda: messages.delete(message["id"], thread_id=thread["id"]),
    )
    raw("DeleteThreadResponse", lambda: threads.delete(thread["id"]))


def test_run_and_step_objects(client: OpenAI) -> None:
    """Runs through queued, requires_action and completed, their message_creation and
    tool_calls steps, with every run option echoed; create-and-run too."""
    runs = client.beta.threads.runs.with_raw_response
    steps = client.beta.threads.runs.steps.with_raw_response
    assistant = make_assistant(client)
    thread = client.beta.threads.create(
        messages=[
            {
                "role": "user",
                "content": script(
                    tool_calls=[{"name": "get_weather", "arguments": {"city": "Paris"}}],
                    after_tools="It is {output0} in Paris.",
                ),
            }
        ]
    )
    queued = raw(
        "RunObject",
        lambda: runs.create(
            thread.id,
            assistant_id=assistant.id,
            additional_instructions="Mind the weather.",
            metadata={"k": "v"},
            temperature=0.7,
            top_p=0.8,
            max_prompt_tokens=5000,
            max_completion_tokens=1000,
            truncation_strategy={"type": "last_messages", "last_messages": 10},
            tool_choice={"type": "function", "function": {"name": "get_weather"}},
            parallel_tool_calls=False,
            response_format={"type": "text"},
        ),
    )
    run = client.beta.threads.runs.retrieve(queued["id"], thread_id=thread.id)
    run = wait_run(client, run)
    assert run.status == "requires_action"
    waiting = raw("RunObject", lambda: runs.retrieve(run.id, thread_id=thread.id))
    call = waiting["required_action"]["submit_tool_outputs"]["tool_calls"][0]
    raw(
        "RunObject",
        lambda: runs.submit_tool_outputs(
            run.id,
            thread_id=thread.id,
            tool_outputs=[{"tool_call_id": call["id"], "output": "sunny"}],
        ),
    )
    run = wait_run(client, run, {"completed"})
    done = raw("RunObject", lambda: runs.retrieve(run.id, thread_id=thread.id))
    assert done["usage"] is not None
    raw("RunObject", lambda: runs.update(run.id, thread_id=thread.id, metadata={"k": "w"}))
    raw("ListRunsResponse", lambda: runs.list(thread.id))

    page = raw("ListRunStepsResponse", lambda: steps.list(run.id, thread_id=thread.id, order="asc"))
    kinds = [step["type"] for step in page["data"]]
    assert kinds == ["tool_calls", "message_creation"], kinds
    for step in page["data"]:
        raw(
            "RunStepObject",
            partial(steps.retrieve, step["id"], thread_id=thread.id, run_id=run.id),
        )
    answer = client.beta.threads.messages.with_raw_response.list(thread.id, run_id=run.id)
    check("ListMessagesResponse", body(answer))

    started = raw(
        "RunObject",
        lambda: client.beta.threads.with_raw_response.create_and_run(
            assistant_id=assistant.id,
            thread={"messages": [{"role": "user", "content": "hi"}]},
            tools=[{"type": "code_interpreter"}],
        ),
    )
    other = client.beta.threads.runs.retrieve(started["id"], thread_id=started["thread_id"])
    wait_run(client, other, {"completed"})
    raw("RunObject", lambda: runs.retrieve(other.id, thread_id=other.thread_id))


INCLUDE: Final = "step_details.tool_calls[*].file_search.results[*].content"


def tool_turn(client: OpenAI, assistant_id: str, text: str) -> tuple[str, str]:
    """Run one scripted turn to completion; return the thread and run ids."""
    thread = client.beta.threads.create(messages=[{"role": "user", "content": text}])
    run = client.beta.threads.runs.create(thread.id, assistant_id=assistant_id, include=[INCLUDE])
    run = wait_run(client, run, {"completed", "failed", "incomplete"}, timeout=60)
    assert run.status == "completed", run.last_error
    return thread.id, run.id


def check_turn(client: OpenAI, thread_id: str, run_id: str) -> list[dict[str, Any]]:
    """Check the run, its steps (with and without ``include[]``) and its messages; return
    the steps."""
    steps = client.beta.threads.runs.steps.with_raw_response
    raw(
        "RunObject",
        lambda: client.beta.threads.runs.with_raw_response.retrieve(run_id, thread_id=thread_id),
    )
    page = raw(
        "ListRunStepsResponse",
        lambda: steps.list(run_id, thread_id=thread_id, order="asc", include=[INCLUDE]),
    )
    raw("ListRunStepsResponse", lambda: steps.list(run_id, thread_id=thread_id))
    for step in page["data"]:
        raw(
            "RunStepObject",
            partial(
                steps.retrieve, step["id"], thread_id=thread_id, run_id=run_id, include=[INCLUDE]
            ),
        )
    raw(
        "ListMessagesResponse",
        lambda: client.beta.threads.messages.with_raw_response.list(thread_id, run_id=run_id),
    )
    data: list[dict[str, Any]] = page["data"]
    return data


def test_file_search_run_objects(client: OpenAI) -> None:
    """A file_search call with results (and their content) and a cited answer."""
    file_id = text_file(client, "The lighthouse keeper feeds the cat at dawn.", "keeper.txt")
    store = client.vector_stores.create(name="keeper", file_ids=[file_id])
    wait_until(lambda: client.vector_stores.retrieve(store.id).file_counts.completed == 1, 60)
    assistant = client.beta.assistants.create(
        model="gpt-4o",
        tools=[{"type": "file_search"}],
        tool_resources={"file_search": {"vector_store_ids": [store.id]}},
    )
    plan = script(
        tool_calls=[{"name": "file_search", "arguments": {"queries": ["who feeds the cat"]}}],
        after_tools="At dawn 【0:0†keeper.txt】.",
    )
    thread_id, run_id = tool_turn(client, assistant.id, f"Who feeds the cat? {plan}")
    steps = check_turn(client, thread_id, run_id)
    call = steps[0]["step_details"]["tool_calls"][0]
    assert call["file_search"]["results"][0]["content"], call
    page = client.beta.threads.messages.with_raw_response.list(thread_id, run_id=run_id)
    [message] = body(page)["data"]
    [part] = message["content"]
    assert [note["type"] for note in part["text"]["annotations"]] == ["file_citation"]
    # The reported extra field is still there (else drop it from REPORTED).
    assert problems("MessageObject", message, reported=False) == [
        "$.content[0].text.annotations[0].file_citation: Additional properties are not "
        "allowed ('quote' was unexpected)"
    ]


def test_code_interpreter_run_objects(client: OpenAI, sandbox_image: str) -> None:
    """A code_interpreter call with logs and an image, and an answer linking a made file."""
    assistant = client.beta.assistants.create(model="gpt-4o", tools=[{"type": "code_interpreter"}])
    source = (
        "import matplotlib.pyplot as plt\n"
        "open('/mnt/data/out.csv', 'w').write('a,b\\n1,2\\n')\n"
        "print('made')\n"
        "plt.plot([1, 2, 3])\nplt.show()"
    )
    plan = script(
        steps=[
            {"tool_calls": [{"name": "code_interpreter", "arguments": {"code": source}}]},
            {"reply": "Done. [Download](sandbox:/mnt/data/out.csv)"},
        ]
    )
    thread_id, run_id = tool_turn(client, assistant.id, f"Make a file. {plan}")
    steps = check_turn(client, thread_id, run_id)
    outputs = steps[0]["step_details"]["tool_calls"][0]["code_interpreter"]["outputs"]
    assert sorted(o["type"] for o in outputs) == ["image", "logs"], outputs
    message = client.beta.threads.messages.list(thread_id, run_id=run_id).data[0]
    kinds = [p.type for p in message.content]
    assert "image_file" in kinds, kinds
    texts = [p for p in message.content if p.type == "text"]
    assert [n.type for n in texts[0].text.annotations] == ["file_path"]


def test_cancelled_run_object(client: OpenAI) -> None:
    """A run cancelled while the model is still answering."""
    runs = client.beta.threads.runs.with_raw_response
    assistant = make_assistant(client)
    thread = client.beta.threads.create(
        messages=[{"role": "user", "content": script(reply="slow " * 50, delay_ms=100)}]
    )
    run = client.beta.threads.runs.create(thread.id, assistant_id=assistant.id)
    raw("RunObject", lambda: runs.cancel(run.id, thread_id=thread.id))
    run = wait_run(client, run, {"cancelled", "completed"})
    raw("RunObject", lambda: runs.retrieve(run.id, thread_id=thread.id))
    for step in client.beta.threads.runs.steps.list(run.id, thread_id=thread.id):
        raw(
            "RunStepObject",
            partial(
                client.beta.threads.runs.steps.with_raw_response.retrieve,
                step.id,
                thread_id=thread.id,
                run_id=run.id,
            ),
        )


def test_failed_and_incomplete_run_objects(client: OpenAI) -> None:
    """A run that fails (``last_error``) and one cut by its token cap (``incomplete_details``
    on the run and its message); reasoning_effort on the assistant and the run."""
    runs = client.beta.threads.runs.with_raw_response
    assistant = raw(
        "AssistantObject",
        lambda: client.beta.assistants.with_raw_response.create(
            model="gpt-4o", reasoning_effort="low"
        ),
    )
    failing = client.beta.threads.create(
        messages=[
            {"role": "user", "content": script(fail={"key": "wire", "times": 99, "status": 500})}
        ]
    )
    run = client.beta.threads.runs.create(
        failing.id, assistant_id=assistant["id"], reasoning_effort="medium"
    )
    run = wait_run(client, run, {"failed"}, timeout=60)
    failed = raw("RunObject", lambda: runs.retrieve(run.id, thread_id=failing.id))
    assert failed["last_error"] is not None

    long = client.beta.threads.create(
        messages=[{"role": "user", "content": script(reply="word " * 600)}]
    )
    run = client.beta.threads.runs.create(
        long.id, assistant_id=assistant["id"], max_completion_tokens=256
    )
    run = wait_run(client, run, {"incomplete"}, timeout=60)
    cut = raw("RunObject", lambda: runs.retrieve(run.id, thread_id=long.id))
    assert cut["incomplete_details"] is not None
    page = raw(
        "ListMessagesResponse",
        lambda: client.beta.threads.messages.with_raw_response.list(long.id, run_id=run.id),
    )
    assert page["data"][0]["status"] == "incomplete"
    for step in client.beta.threads.runs.steps.list(run.id, thread_id=long.id):
        raw(
            "RunStepObject",
            partial(
                client.beta.threads.runs.steps.with_raw_response.retrieve,
                step.id,
                thread_id=long.id,
                run_id=run.id,
            ),
        )


def test_file_and_upload_objects(client: OpenAI) -> None:
    """Files (with and without expiry), their list and deletion, and the Uploads API."""
    files = client.files.with_raw_response
    created = raw(
        "OpenAIFile",
        lambda: files.create(file=("a.txt", io.BytesIO(b"abc")), purpose="assistants"),
    )
    expiring = raw(
        "OpenAIFile",
        lambda: files.create(
            file=("dot.png", io.BytesIO(PNG)),
            purpose="vision",
            expires_after={"anchor": "created_at", "seconds": 3600},
        ),
    )
    assert isinstance(expiring["expires_at"], int)
    raw("OpenAIFile", lambda: files.retrieve(created["id"]))
    page = raw("ListFilesResponse", lambda: files.list(purpose="assistants"))
    assert [f["id"] for f in page["data"]] == [created["id"]]
    raw("DeleteFileResponse", lambda: files.delete(created["id"]))

    uploads = client.uploads.with_raw_response
    upload = raw(
        "Upload",
        lambda: uploads.create(
            filename="u.txt", purpose="assistants", bytes=6, mime_type="text/plain"
        ),
    )
    part = raw(
        "UploadPart",
        lambda: client.uploads.parts.with_raw_response.create(upload["id"], data=b"abcdef"),
    )
    completed = raw("Upload", lambda: uploads.complete(upload["id"], part_ids=[part["id"]]))
    assert completed["file"]["object"] == "file"
    other = client.uploads.create(
        filename="v.txt", purpose="assistants", bytes=1, mime_type="text/plain"
    )
    raw("Upload", lambda: uploads.cancel(other.id))


def test_vector_store_objects(client: OpenAI) -> None:
    """Stores, their files and file batches, search results and file content."""
    stores = client.vector_stores.with_raw_response
    store_files = client.vector_stores.files.with_raw_response
    batches = client.vector_stores.file_batches.with_raw_response
    first = text_file(client, "Returns are accepted within thirty days of purchase.", "policy.txt")
    second = text_file(client, "Shipping takes five business days.", "shipping.txt")
    third = text_file(client, "Gift cards never expire.", "gifts.txt")
    store = raw(
        "VectorStoreObject",
        lambda: stores.create(
            name="Support",
            file_ids=[first],
            expires_after={"anchor": "last_active_at", "days": 7},
            chunking_strategy={
                "type": "static",
                "static": {"max_chunk_size_tokens": 200, "chunk_overlap_tokens": 50},
            },
            metadata={"k": "v"},
        ),
    )
    plain = raw("VectorStoreObject", lambda: stores.create())
    raw("VectorStoreObject", lambda: stores.update(store["id"], name=None, expires_after=None))
    raw("ListVectorStoresResponse", lambda: stores.list(limit=1))

    attached = raw(
        "VectorStoreFileObject",
        lambda: store_files.create(
            store["id"],
            file_id=second,
            attributes={"author": "x", "year": 2024, "ok": True},
        ),
    )
    assert attached["id"] == second
    batch = raw(
        "VectorStoreFileBatchObject",
        lambda: batches.create(store["id"], file_ids=[third], chunking_strategy={"type": "auto"}),
    )

    def settled() -> bool:
        current = client.vector_stores.retrieve(store["id"])
        return current.file_counts.in_progress == 0 and current.file_counts.completed == 3

    wait_until(settled, 60)
    raw("VectorStoreObject", lambda: stores.retrieve(store["id"]))
    raw(
        "VectorStoreFileBatchObject",
        lambda: batches.retrieve(batch["id"], vector_store_id=store["id"]),
    )
    raw(
        "ListVectorStoreFilesResponse",
        lambda: batches.list_files(batch["id"], vector_store_id=store["id"]),
    )
    raw(
        "VectorStoreFileBatchObject",
        lambda: batches.cancel(batch["id"], vector_store_id=store["id"]),
    )
    for file_id in (first, second, third):
        raw(
            "VectorStoreFileObject",
            partial(store_files.retrieve, file_id, vector_store_id=store["id"]),
        )
    raw(
        "VectorStoreFileObject",
        lambda: store_files.update(second, vector_store_id=store["id"], attributes={"n": 1.5}),
    )
    raw(
        "ListVectorStoreFilesResponse",
        lambda: store_files.list(store["id"], filter="completed"),
    )
    results = raw(
        "VectorStoreSearchResultsPage",
        lambda: stores.search(
            store["id"],
            query="how long do returns take?",
            max_num_results=3,
            filters={"type": "gte", "key": "n", "value": 1},
            ranking_options={"ranker": "auto", "score_threshold": 0.0},
        ),
    )
    assert results["data"], results
    raw(
        "VectorStoreFileContentResponse",
        lambda: store_files.content(first, vector_store_id=store["id"]),
    )
    raw(
        "DeleteVectorStoreFileResponse",
        lambda: store_files.delete(first, vector_store_id=store["id"]),
    )
    raw("DeleteVectorStoreResponse", lambda: stores.delete(plain["id"]))


def test_empty_list_pages(client: OpenAI) -> None:
    """Lists with nothing in them (a fresh project)."""
    assistants = client.beta.assistants.with_raw_response
    empty = raw("ListAssistantsResponse", lambda: assistants.list())
    assert empty["data"] == []
    assert empty["has_more"] is False
    raw("ListFilesResponse", lambda: client.files.with_raw_response.list())
    raw("ListVectorStoresResponse", lambda: client.vector_stores.with_raw_response.list())
    thread = client.beta.threads.create()
    raw(
        "ListMessagesResponse",
        lambda: client.beta.threads.messages.with_raw_response.list(thread.id),
    )
    raw("ListRunsResponse", lambda: client.beta.threads.runs.with_raw_response.list(thread.id))


@pytest.mark.parametrize(
    ("kind", "call"),
    [
        ("not found", lambda c: c.beta.assistants.retrieve("asst_missing")),
        ("bad value", lambda c: c.beta.assistants.create(model="gpt-4o", temperature=7)),
        ("unknown field", lambda c: c.beta.threads.create(extra_body={"nope": 1})),
        ("state", lambda c: c.beta.threads.runs.cancel("run_x", thread_id="thread_x")),
    ],
)
def test_error_objects(client: OpenAI, kind: str, call: Callable[[OpenAI], object]) -> None:
    """Refusals are the spec's ``ErrorResponse``."""
    with pytest.raises(openai.APIStatusError) as caught:
        call(client)
    assert 400 <= caught.value.status_code < 500, kind
    check("ErrorResponse", caught.value.response.json())


def test_error_object_for_a_wrong_key(server: ServerProcess) -> None:
    """A wrong key's 401 is the spec's ``ErrorResponse`` too."""
    sdk = OpenAI(base_url=server.api, api_key="sk-wrong", max_retries=0)
    with sdk, pytest.raises(openai.AuthenticationError) as caught:
        sdk.beta.assistants.list()
    check("ErrorResponse", caught.value.response.json())
