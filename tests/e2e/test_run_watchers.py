"""Run events NOTIFY only watched runs: a stream tail in a process that does not write the
run registers in ``run_watchers`` while it streams; a run nobody streams from another process
sends no notification at all; leftovers of ended runs are pruned."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid

import psycopg
from openai import OpenAI

from assistd.core.config import Settings
from assistd.core.db import async_url, create_engine, dispose, make_sessionmaker, transaction
from assistd.worker import queue
from tests.conftest import IN_PROCESS, Database
from tests.support.runs import create_and_poll, make_assistant, script, thread_with

CHANNEL = "assistd_run_events"


class Notifications:
    """Collect the payloads of the run-events channel in a background thread."""

    def __init__(self, url: str) -> None:
        self.payloads: list[str] = []
        self._conn = psycopg.connect(url, autocommit=True)
        self._conn.execute(f"LISTEN {CHANNEL}")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for note in self._conn.notifies(timeout=0.1):
                self.payloads.append(note.payload)

    def close(self) -> list[str]:
        self._stop.set()
        self._thread.join(5)
        self._conn.close()
        return self.payloads


def watchers(url: str, run_id: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM run_watchers WHERE run_id = %s", [run_id])
        return int(row.fetchone()[0])  # type: ignore[index]


def test_a_run_nobody_streams_sends_no_notification(client: OpenAI, database: Database) -> None:
    assistant = make_assistant(client)
    thread_id = thread_with(client, script(reply="one two three four", delay_ms=20))
    listening = Notifications(database.url)
    try:
        run = create_and_poll(client, thread_id, assistant.id)
        assert run.status == "completed"
        time.sleep(0.3)
    finally:
        payloads = listening.close()
    assert run.id not in payloads
    assert watchers(database.url, run.id) == 0


def test_a_stream_from_another_process_watches_the_run(client: OpenAI, database: Database) -> None:
    assistant = make_assistant(client)
    words = " ".join(f"w{i}" for i in range(12))
    thread_id = thread_with(client, script(reply=words, delay_ms=100))
    listening = Notifications(database.url)
    seen_watching: list[int] = []
    run_id = ""
    try:
        with client.beta.threads.runs.stream(
            thread_id=thread_id, assistant_id=assistant.id
        ) as stream:
            for event in stream:
                if event.event == "thread.message.delta" and not seen_watching:
                    run_id = stream.current_run.id if stream.current_run else ""
                    seen_watching.append(watchers(database.url, run_id))
            final = stream.get_final_run()
        time.sleep(0.3)
    finally:
        payloads = listening.close()
    assert final.status == "completed"
    assert run_id == final.id
    if IN_PROCESS:
        # The serving process executes the run itself: the tail reads its sink in memory.
        assert seen_watching == [0]
        assert final.id not in payloads
    else:
        # The run executes in the worker process: the API's tail is woken by NOTIFYs.
        assert seen_watching == [1]
        assert payloads.count(final.id) >= 3, payloads
    # The tail unregisters once the stream is over.
    deadline = time.monotonic() + 5
    while watchers(database.url, final.id) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert watchers(database.url, final.id) == 0


def test_watchers_of_ended_runs_are_pruned(client: OpenAI, database: Database) -> None:
    assistant = make_assistant(client)
    ended = create_and_poll(client, thread_with(client, "hello"), assistant.id)
    assert ended.status == "completed"
    stale = time.time() - 3600
    rows = [
        (ended.id, "gone:1", stale),  # an ended run, registered long ago: pruned
        (ended.id, "fresh:1", time.time()),  # an ended run, just registered: kept
        (f"run_{uuid.uuid4().hex}", "gone:2", stale),  # no such run: pruned
    ]
    with psycopg.connect(database.url) as conn, conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO run_watchers (run_id, watcher, since) VALUES (%s, %s, %s)", rows
        )

    async def prune() -> int:
        engine = create_engine(async_url(database.url), Settings())
        try:
            async with transaction(make_sessionmaker(engine)) as session:
                return await queue.prune_watchers(session)
        finally:
            await dispose(engine)

    assert asyncio.run(prune()) == 2
    with psycopg.connect(database.url) as conn:
        left = conn.execute("SELECT watcher FROM run_watchers WHERE run_id = %s", [ended.id])
        assert [r[0] for r in left] == ["fresh:1"]
        conn.execute("DELETE FROM run_watchers WHERE watcher = 'fresh:1'")
