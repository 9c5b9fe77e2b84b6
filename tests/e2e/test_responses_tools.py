"""Built-in tools through the Responses API: file_search over vector stores with citations
and results on request, and code_interpreter in a container, whose plot and written file are
container files the client downloads."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from openai import OpenAI
from openai.types.responses.response_output_text import AnnotationContainerFileCitation

from tests.conftest import Database, ServerProcess, mint_key
from tests.e2e.test_vector_stores import Corpus, build_corpus
from tests.support.scripted_chat import script

MODEL = "gpt-4o"

pytestmark = pytest.mark.sdk_matrix
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def corpus(server: ServerProcess, database: Database) -> Iterator[Corpus]:
    key = mint_key(database.url, f"resp-fs-{uuid.uuid4().hex[:12]}")
    client = OpenAI(base_url=server.api, api_key=key, max_retries=0)
    yield build_corpus(client)
    client.close()


def search_plan(question: str, answer: str) -> str:
    return f"{question} " + script(
        tool_calls=[{"name": "file_search", "arguments": {"queries": [question]}}],
        after_tools=answer,
    )


def test_file_search_cites_and_shows_results_when_included(corpus: Corpus) -> None:
    client = corpus.client
    doc = corpus.docs["manual.pdf"]
    tools: Any = [{"type": "file_search", "vector_store_ids": [corpus.store_id]}]
    answer = "Every forty-one days 【0:0†manual.pdf】."
    response = client.responses.create(
        model=MODEL,
        input=search_plan(doc.question, answer),
        tools=tools,
        include=["file_search_call.results"],
    )
    assert response.status == "completed", response.error
    call, message = response.output
    assert call.type == "file_search_call"
    assert call.status == "completed"
    assert call.queries == [doc.question]
    assert call.results
    assert call.results[0].file_id == corpus.file_ids["manual.pdf"]
    assert call.results[0].filename == "manual.pdf"
    assert call.results[0].text
    assert message.type == "message"
    part = message.content[0]
    assert part.type == "output_text"
    assert part.text == answer
    (note,) = part.annotations
    assert note.type == "file_citation"
    assert note.file_id == corpus.file_ids["manual.pdf"]
    assert note.filename == "manual.pdf"
    assert note.index == len(answer) - 1
    # Without include, the results are left out.
    plain = client.responses.retrieve(response.id)
    assert plain.output[0].type == "file_search_call"
    assert plain.output[0].results is None


def test_file_search_filters_and_streams_its_events(corpus: Corpus) -> None:
    client = corpus.client
    doc = corpus.docs["policy.docx"]
    tools: Any = [
        {
            "type": "file_search",
            "vector_store_ids": [corpus.store_id],
            "filters": {"type": "eq", "key": "kind", "value": "notes"},
            "max_num_results": 3,
        }
    ]
    with client.responses.stream(
        model=MODEL,
        input=search_plan(doc.question, "Found it."),
        tools=tools,
        include=["file_search_call.results"],
    ) as stream:
        kinds = [e.type for e in stream]
        final = stream.get_final_response()
    for kind in (
        "response.file_search_call.in_progress",
        "response.file_search_call.searching",
        "response.file_search_call.completed",
    ):
        assert kind in kinds
    call = final.output[0]
    assert call.type == "file_search_call"
    assert call.results is not None
    assert 0 < len(call.results) <= 3
    assert {r.file_id for r in call.results} == {corpus.file_ids["notes.md"]}


def code(source: str) -> dict[str, Any]:
    return {"tool_calls": [{"name": "code_interpreter", "arguments": {"code": source}}]}


@pytest.mark.usefixtures("sandbox_image")
def test_code_interpreter_plots_into_a_container(client: OpenAI) -> None:
    source = (
        "import matplotlib.pyplot as plt\nplt.plot([1, 2, 3], [3, 1, 2])\nplt.show()\n"
        "open('/mnt/data/table.csv', 'w').write('a,b\\n1,2\\n')\nprint('saved')"
    )
    plan = script(
        steps=[code(source), {"reply": "Plotted; the table: [table](sandbox:/mnt/data/table.csv)"}]
    )
    tools: Any = [{"type": "code_interpreter", "container": {"type": "auto"}}]
    with client.responses.stream(
        model=MODEL,
        input="Plot it. " + plan,
        tools=tools,
        include=["code_interpreter_call.outputs"],
    ) as stream:
        kinds = [e.type for e in stream]
        response = stream.get_final_response()
    assert response.status == "completed", response.error
    for kind in (
        "response.code_interpreter_call.in_progress",
        "response.code_interpreter_call_code.delta",
        "response.code_interpreter_call_code.done",
        "response.code_interpreter_call.interpreting",
        "response.code_interpreter_call.completed",
    ):
        assert kind in kinds
    call, message = response.output
    assert call.type == "code_interpreter_call"
    assert call.code == source
    container_id = call.container_id
    assert container_id.startswith("cntr_")
    assert call.outputs is not None
    logs = [o for o in call.outputs if o.type == "logs"]
    assert logs
    assert "saved" in logs[0].logs
    files = {f.path: f for f in client.containers.files.list(container_id).data}
    assert "/mnt/data/table.csv" in files
    pngs = [f for path, f in files.items() if path.endswith(".png")]
    assert len(pngs) == 1
    data = client.containers.files.content.retrieve(pngs[0].id, container_id=container_id).read()
    assert data.startswith(PNG)
    assert len(data) > 1000
    assert message.type == "message"
    (note,) = message.content[0].annotations
    assert isinstance(note, AnnotationContainerFileCitation)
    assert note.container_id == container_id
    assert note.file_id == files["/mnt/data/table.csv"].id
    assert note.filename == "table.csv"
    table = client.containers.files.content.retrieve(note.file_id, container_id=container_id)
    assert table.read() == b"a,b\n1,2\n"
    # The same container keeps its state for the next response.
    again = client.responses.create(
        model=MODEL,
        input=script(
            steps=[code("print(open('/mnt/data/table.csv').read())"), {"reply": "{output0}"}]
        ),
        tools=[{"type": "code_interpreter", "container": container_id}],
    )
    assert "a,b" in again.output_text


@pytest.mark.usefixtures("sandbox_image")
def test_a_deleted_container_file_leaves_the_running_session(client: OpenAI) -> None:
    container = client.containers.create(name="files come and go")
    kept = client.containers.files.create(container.id, file=("keep.txt", b"stays"))
    gone = client.containers.files.create(container.id, file=("gone.txt", b"goes"))
    tools: Any = [{"type": "code_interpreter", "container": container.id}]
    listing = "import os\nprint(sorted(os.listdir('/mnt/data')))"
    ask = script(steps=[code(listing), {"reply": "{output0}"}])
    before = client.responses.create(model=MODEL, input=ask, tools=tools)
    assert "'gone.txt', 'keep.txt'" in before.output_text
    client.containers.files.delete(gone.id, container_id=container.id)
    after = client.responses.create(model=MODEL, input=ask, tools=tools)
    assert "['keep.txt']" in after.output_text
    assert kept.path == "/mnt/data/keep.txt"
