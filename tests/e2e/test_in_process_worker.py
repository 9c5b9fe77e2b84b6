"""``assistd serve`` with its in-process worker (the README's one-command start): a run created
there is claimed in the creating transaction and started by that worker at once, without the
queue round trip. Everything a client sees must be what the queue path gives."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg
import pytest
from openai import OpenAI

from tests.conftest import Database, ServerProcess, mint_key, start_server, stop_server
from tests.support.scripted_chat import script

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather of a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


@dataclass
class Served:
    proc: ServerProcess
    client: OpenAI
    database_url: str


@pytest.fixture(scope="module")
def served(
    pg_root: str, server_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    """``assistd serve`` with its worker, on a database of its own."""
    url = Database(pg_root).new_database(f"inproc_{uuid.uuid4().hex[:10]}")
    log = tmp_path_factory.mktemp("inproc") / "server.log"
    proc = start_server({**server_env, "ASSISTD_DATABASE_URL": url}, log)
    try:
        client = OpenAI(base_url=proc.api, api_key=mint_key(url, "inproc"), max_retries=0)
        yield Served(proc, client, url)
        client.close()
    finally:
        stop_server(proc)


@pytest.fixture
def client(served: Served) -> OpenAI:
    return served.client


def test_created_run_answers_queued_and_completes(client: OpenAI) -> None:
    assistant = client.beta.assistants.create(model="gpt-4o")
    thread = client.beta.threads.create(
        messages=[{"role": "user", "content": script(reply="Adopted at once.")}]
    )
    run = client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id)
    assert run.status == "queued"
    assert run.started_at is None
    done = client.beta.threads.runs.poll(run.id, thread_id=thread.id, poll_interval_ms=20)
    assert done.status == "completed"
    assert done.started_at is not None
    [reply] = client.beta.threads.messages.list(thread.id, limit=1).data
    assert reply.content[0].text.value == "Adopted at once."  # type: ignore[union-attr]


def test_streamed_run_events_in_canonical_order(client: OpenAI) -> None:
    assistant = client.beta.assistants.create(model="gpt-4o")
    thread = client.beta.threads.create(
        messages=[{"role": "user", "content": script(reply="one two three")}]
    )
    events: list[str] = []
    statuses: list[str] = []
    with client.beta.threads.runs.stream(thread_id=thread.id, assistant_id=assistant.id) as s:
        for event in s:
            events.append(event.event)
            if event.event.startswith("thread.run.") and "step" not in event.event:
                statuses.append(event.data.status)  # type: ignore[union-attr]
        text = "".join(part.text.value for m in s.get_final_messages() for part in m.content)  # type: ignore[union-attr]
    assert events[:3] == ["thread.run.created", "thread.run.queued", "thread.run.in_progress"]
    assert statuses == ["queued", "queued", "in_progress", "completed"]
    assert events.count("thread.message.delta") == 3
    assert events[-1] == "thread.run.completed"
    assert text == "one two three"


def test_create_thread_and_run_and_tool_round_trip(client: OpenAI) -> None:
    assistant = client.beta.assistants.create(model="gpt-4o", tools=[WEATHER])
    content = script(
        tool_calls=[{"name": "get_weather", "arguments": {"city": "Paris"}}],
        after_tools="It is {output0}.",
    )
    run = client.beta.threads.create_and_run_poll(
        assistant_id=assistant.id,
        thread={"messages": [{"role": "user", "content": content}]},
        poll_interval_ms=20,
    )
    assert run.status == "requires_action"
    call = run.required_action.submit_tool_outputs.tool_calls[0]  # type: ignore[union-attr]
    done = client.beta.threads.runs.submit_tool_outputs_and_poll(
        run_id=run.id,
        thread_id=run.thread_id,
        tool_outputs=[{"tool_call_id": call.id, "output": "sunny"}],
        poll_interval_ms=20,
    )
    assert done.status == "completed"
    [reply] = client.beta.threads.messages.list(run.thread_id, limit=1).data
    assert reply.content[0].text.value == "It is sunny."  # type: ignore[union-attr]


def test_adopted_run_is_claimed_in_the_database(served: Served) -> None:
    """The run row names this process's worker from the start (so the reaper covers it)."""
    client = served.client
    assistant = client.beta.assistants.create(model="gpt-4o")
    thread = client.beta.threads.create(
        messages=[{"role": "user", "content": script(reply="slow reply here", delay_ms=300)}]
    )
    run = client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id)
    with psycopg.connect(served.database_url) as conn:
        row = conn.execute(
            "SELECT status, worker_id, attempts FROM runs WHERE id = %s", (run.id,)
        ).fetchone()
    assert row is not None
    status, worker_id, attempts = row
    assert status == "in_progress"
    assert worker_id is not None
    assert attempts == 1
    cancelled = client.beta.threads.runs.cancel(run.id, thread_id=thread.id)
    assert cancelled.status in ("cancelling", "cancelled")
    final = client.beta.threads.runs.poll(run.id, thread_id=thread.id, poll_interval_ms=20)
    assert final.status == "cancelled"
