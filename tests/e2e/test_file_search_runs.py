"""file_search in runs, end to end: an assistant answers from uploaded PDF, DOCX and Markdown
files. The scripted model calls the ``file_search`` function and answers with citation
markers; the tests check the tool_calls step (ranking options, results, ``include[]``), the
``file_citation`` annotations of the answer (file, indices, a quote really from the file),
the streamed events, and what the model backend was sent."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from typing import Any, Final

import pytest
from openai import AssistantEventHandler, OpenAI
from openai.types.beta.threads import Message
from openai.types.beta.threads.runs import RunStep, RunStepDelta

from tests.conftest import Database, ServerProcess, mint_key
from tests.e2e.test_vector_stores import Corpus, build_corpus, normalise
from tests.support.runs import (
    bounded,
    create_and_poll,
    script,
    sent,
    tag,
    thread_with,
)
from tests.support.scripted_chat import ScriptedChatServer

INCLUDE: Final = "step_details.tool_calls[*].file_search.results[*].content"
RANKERS = {"auto", "default_2024_08_21"}


@pytest.fixture(scope="module")
def corpus(server: ServerProcess, database: Database) -> Iterator[Corpus]:
    """A project with a vector store holding the three documents."""
    key = mint_key(database.url, f"fsruns-{uuid.uuid4().hex[:12]}")
    client = OpenAI(base_url=server.api, api_key=key, max_retries=0)
    yield build_corpus(client)
    client.close()


@pytest.fixture(scope="module")
def assistant_id(corpus: Corpus) -> str:
    """An assistant with file_search over the corpus store."""
    return corpus.client.beta.assistants.create(
        model="gpt-4o",
        instructions="Answer from the files.",
        tools=[{"type": "file_search"}],
        tool_resources={"file_search": {"vector_store_ids": [corpus.store_id]}},
    ).id


def ask(question: str, marker: str, answer: str) -> str:
    """A user message that makes the model search for ``question`` and reply ``answer``."""
    plan = script(
        tool_calls=[{"name": "file_search", "arguments": {"queries": [question]}}],
        after_tools=answer,
    )
    return f"{question} {marker} {plan}"


def filename_of(corpus: Corpus, file_id: str) -> str:
    return next(name for name, fid in corpus.file_ids.items() if fid == file_id)


def check_annotations(
    corpus: Corpus, value: str, annotations: list[dict[str, Any]], cited: list[dict[str, Any]]
) -> None:
    """``annotations`` (raw JSON) are one file_citation per marker in ``value``, pointing at
    the results ``cited`` (in marker order), with indices slicing the marker out exactly and
    a quote that is text of the cited file."""
    assert len(annotations) == len(cited)
    for note, result in zip(annotations, cited, strict=True):
        assert note["type"] == "file_citation"
        assert re.fullmatch(r"【\d+:\d+†[^】]*】", note["text"]), note["text"]
        assert value[note["start_index"] : note["end_index"]] == note["text"]
        assert note["file_citation"]["file_id"] == result["file_id"]
        quote = normalise(note["file_citation"].get("quote") or "")
        assert quote, note
        doc = corpus.docs[filename_of(corpus, result["file_id"])]
        assert quote in normalise(doc.text), (quote, doc.filename)
    starts = [n["start_index"] for n in annotations]
    assert starts == sorted(starts)


def test_run_answers_with_file_citations(
    corpus: Corpus, assistant_id: str, chat: ScriptedChatServer
) -> None:
    client = corpus.client
    doc = corpus.docs["manual.pdf"]
    marker = tag()
    answer = "Every forty-one days 【0:0†manual.pdf】, see also 【0:1†more】."
    thread_id = thread_with(client, ask(doc.question, marker, answer))

    run = create_and_poll(client, thread_id, assistant_id, include=[INCLUDE])
    assert run.status == "completed", run.last_error
    assert [t.type for t in run.tools] == ["file_search"]

    # The tool_calls step: one file_search call with its ranking options and results.
    steps = client.beta.threads.runs.steps.list(
        run.id, thread_id=thread_id, order="asc", include=[INCLUDE]
    ).data
    assert [s.type for s in steps] == ["tool_calls", "message_creation"]
    assert all(s.status == "completed" for s in steps)
    tool_step = steps[0]
    assert tool_step.step_details.type == "tool_calls"
    (call,) = tool_step.step_details.tool_calls
    assert call.type == "file_search"
    assert call.id
    options = call.file_search.ranking_options
    assert options is not None
    assert options.ranker in RANKERS
    assert options.score_threshold == 0.0
    results = call.file_search.results
    assert results
    assert results[0].file_id == corpus.file_ids["manual.pdf"]
    assert results[0].file_name == "manual.pdf"
    for result in results:
        assert result.file_name == filename_of(corpus, result.file_id)
        assert 0.0 <= result.score <= 1.0
        assert result.content, "include[] asks for the content"
        assert all(part.type == "text" and part.text for part in result.content)
    first_text = normalise(" ".join(p.text or "" for p in results[0].content or []))
    assert normalise(doc.sentence).rstrip(".") in first_text

    # Without include[] the results carry no content (steps.list and steps.retrieve).
    raw_steps = client.beta.threads.runs.steps.with_raw_response.list(
        run.id, thread_id=thread_id, order="asc"
    ).http_response.json()
    raw_results = raw_steps["data"][0]["step_details"]["tool_calls"][0]["file_search"]["results"]
    assert len(raw_results) == len(results)
    assert all(set(r) == {"file_id", "file_name", "score"} for r in raw_results), raw_results
    assert [r["file_id"] for r in raw_results] == [r.file_id for r in results]
    plain = client.beta.threads.runs.steps.retrieve(
        tool_step.id, thread_id=thread_id, run_id=run.id
    )
    assert all(r.content is None for r in plain.step_details.tool_calls[0].file_search.results)  # type: ignore[union-attr]
    raw_full = client.beta.threads.runs.steps.with_raw_response.retrieve(
        tool_step.id, thread_id=thread_id, run_id=run.id, include=[INCLUDE]
    ).http_response.json()
    full_results = raw_full["step_details"]["tool_calls"][0]["file_search"]["results"]
    assert all(set(r) == {"file_id", "file_name", "score", "content"} for r in full_results)
    assert full_results[0]["content"][0]["type"] == "text"
    assert normalise(doc.sentence).rstrip(".") in normalise(full_results[0]["content"][0]["text"])

    # The answer: the markers became file_citation annotations.
    raw_messages = client.beta.threads.messages.with_raw_response.list(
        thread_id, order="asc", run_id=run.id
    ).http_response.json()["data"]
    (message,) = raw_messages
    (part,) = message["content"]
    assert part["type"] == "text"
    value = part["text"]["value"]
    assert value == answer
    cited = [{"file_id": r.file_id} for r in results[:2]]
    check_annotations(corpus, value, part["text"]["annotations"], cited)
    assert part["text"]["annotations"][0]["text"] == "【0:0†manual.pdf】"
    assert part["text"]["annotations"][1]["text"] == "【0:1†more】"
    # The SDK sees the same.
    sdk_message = client.beta.threads.messages.retrieve(message["id"], thread_id=thread_id)
    notes = sdk_message.content[0].text.annotations  # type: ignore[union-attr]
    assert [n.type for n in notes] == ["file_citation", "file_citation"]
    assert notes[0].file_citation.file_id == corpus.file_ids["manual.pdf"]  # type: ignore[union-attr]

    # What the model backend was sent: the tool offered, then the results with markers.
    requests = sent(chat, marker)
    assert len(requests) == 2
    offered = [t["function"]["name"] for t in requests[0].get("tools") or []]
    assert offered == ["file_search"]
    follow_up = requests[1]["messages"]
    call_message, tool_message = follow_up[-2], follow_up[-1]
    assert call_message["role"] == "assistant"
    (model_call,) = call_message["tool_calls"]
    assert model_call["function"]["name"] == "file_search"
    assert json.loads(model_call["function"]["arguments"]) == {"queries": [doc.question]}
    assert tool_message["role"] == "tool"
    assert tool_message["tool_call_id"] == model_call["id"]
    shown = tool_message["content"]
    assert isinstance(shown, str)
    assert shown.startswith("【0:0†manual.pdf】\n")
    for i, result in enumerate(results):
        block = f"【0:{i}†{result.file_name}】\n" + "".join(
            p.text or "" for p in result.content or []
        )
        assert block in shown, i
    assert normalise(doc.sentence).rstrip(".") in normalise(shown)


def test_each_format_is_cited_from_the_right_file(corpus: Corpus, assistant_id: str) -> None:
    client = corpus.client
    for name in ("policy.docx", "notes.md"):
        doc = corpus.docs[name]
        thread_id = thread_with(client, ask(doc.question, tag(), f"Answer 【0:0†{name}】"))
        run = create_and_poll(client, thread_id, assistant_id)
        assert run.status == "completed", run.last_error
        raw = client.beta.threads.messages.with_raw_response.list(
            thread_id, order="asc", run_id=run.id
        ).http_response.json()["data"]
        (message,) = raw
        text = message["content"][0]["text"]
        (note,) = text["annotations"]
        assert note["file_citation"]["file_id"] == corpus.file_ids[name]
        check_annotations(corpus, text["value"], [note], [{"file_id": corpus.file_ids[name]}])
        # No include[] on this run: the steps show no content, the citation still quotes.
        (tool_step,) = [
            s
            for s in client.beta.threads.runs.steps.list(run.id, thread_id=thread_id).data
            if s.type == "tool_calls"
        ]
        (call,) = tool_step.step_details.tool_calls  # type: ignore[union-attr]
        results = call.file_search.results or []  # type: ignore[union-attr]
        assert results
        assert results[0].file_id == corpus.file_ids[name]
        assert results[0].content is None


class Recorder(AssistantEventHandler):
    """Keeps every event (copied: the SDK accumulates deltas in place)."""

    def __init__(self) -> None:
        super().__init__()
        self.events: list[tuple[str, Any]] = []
        self.steps_done: list[RunStep] = []

    def on_event(self, event: Any) -> None:
        self.events.append((event.event, event.data.model_copy(deep=True)))

    def on_run_step_done(self, run_step: RunStep) -> None:
        self.steps_done.append(run_step)

    def of(self, name: str) -> list[Any]:
        return [data for event, data in self.events if event == name]


def test_streamed_run_with_file_search(
    corpus: Corpus, assistant_id: str, chat: ScriptedChatServer
) -> None:
    client = corpus.client
    doc = corpus.docs["notes.md"]
    marker = tag()
    answer = "Exactly 212 puffins 【0:0†notes.md】."
    thread_id = thread_with(client, ask(doc.question, marker, answer))
    handler = Recorder()
    with client.beta.threads.runs.stream(
        thread_id=thread_id, assistant_id=assistant_id, include=[INCLUDE], event_handler=handler
    ) as stream:
        bounded(stream.until_done)
        run = stream.get_final_run()
        final_messages: list[Message] = stream.get_final_messages()

    assert run.status == "completed", run.last_error
    names = [name for name, _ in handler.events]
    assert names[-1] == "thread.run.completed"

    # The tool step: created empty, deltas of type file_search with file_search == {}.
    created = [s for s in handler.of("thread.run.step.created") if s.type == "tool_calls"]
    (tool_step,) = created
    assert tool_step.step_details.tool_calls == []
    deltas: list[RunStepDelta] = [
        d.delta for d in handler.of("thread.run.step.delta") if d.id == tool_step.id
    ]
    tool_deltas = [tc for d in deltas for tc in (d.step_details.tool_calls or [])]  # type: ignore[union-attr]
    assert tool_deltas
    assert all(tc.type == "file_search" for tc in tool_deltas), tool_deltas
    assert all(tc.file_search == {} for tc in tool_deltas)  # type: ignore[union-attr]
    assert len([tc.id for tc in tool_deltas if tc.id]) == 1
    raw_deltas = [
        tc.model_dump(exclude_unset=True) for tc in tool_deltas
    ]  # no function deltas at all
    assert not any("function" in d for d in raw_deltas), raw_deltas

    # The completed tool step carries the results, with content (include[] was given).
    (done,) = [s for s in handler.of("thread.run.step.completed") if s.id == tool_step.id]
    (call,) = done.step_details.tool_calls
    assert call.type == "file_search"
    assert call.file_search.results
    assert call.file_search.results[0].file_id == corpus.file_ids["notes.md"]
    assert call.file_search.results[0].content
    assert call.file_search.ranking_options.ranker in RANKERS
    shown = normalise(" ".join(p.text for p in call.file_search.results[0].content))
    assert normalise(doc.sentence).rstrip(".") in shown

    # The final message snapshot carries the annotation.
    (message,) = final_messages
    text = message.content[0].text  # type: ignore[union-attr]
    assert text.value == answer
    (note,) = text.annotations
    assert note.type == "file_citation"
    assert note.text == "【0:0†notes.md】"
    assert text.value[note.start_index : note.end_index] == note.text
    assert note.file_citation.file_id == corpus.file_ids["notes.md"]  # type: ignore[union-attr]
    raw_note = note.model_dump()
    quote = raw_note["file_citation"].get("quote")
    assert quote
    assert normalise(quote) in normalise(doc.text)

    # The backend saw the tool, then the formatted results.
    requests = sent(chat, marker)
    assert len(requests) == 2
    assert all(r.get("stream") is True for r in requests)
    assert "file_search" in [t["function"]["name"] for t in requests[0]["tools"]]
    shown_to_model = requests[1]["messages"][-1]
    assert shown_to_model["role"] == "tool"
    assert shown_to_model["content"].startswith("【0:0†notes.md】\n")
    assert normalise(doc.sentence).rstrip(".") in normalise(shown_to_model["content"])


def test_no_vector_stores_no_file_search_tool(
    corpus: Corpus, assistant_id: str, chat: ScriptedChatServer
) -> None:
    client = corpus.client
    bare = client.beta.assistants.create(
        model="gpt-4o", instructions="Answer briefly.", tools=[{"type": "file_search"}]
    )
    marker = tag()
    thread_id = thread_with(client, f"hello {marker} " + script(reply="Hi there."))
    run = create_and_poll(client, thread_id, bare.id)
    assert run.status == "completed", run.last_error
    (request,) = sent(chat, marker)
    offered = [t["function"]["name"] for t in request.get("tools") or []]
    assert "file_search" not in offered
    assert [s.type for s in client.beta.threads.runs.steps.list(run.id, thread_id=thread_id)] == [
        "message_creation"
    ]

    # The same conversation with the store-backed assistant is offered the tool.
    marker = tag()
    thread_id = thread_with(client, f"hello {marker} " + script(reply="Hi there."))
    run = create_and_poll(client, thread_id, assistant_id)
    assert run.status == "completed", run.last_error
    (request,) = sent(chat, marker)
    assert [t["function"]["name"] for t in request.get("tools") or []] == ["file_search"]
