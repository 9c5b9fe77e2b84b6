"""Worker failures: a SIGKILLed worker's runs are reaped by another worker, a SIGTERMed worker
drains its in-flight runs. Nothing is lost, duplicated or left in progress.

Each test runs its own stack (a fresh database, an ``assistd serve --no-worker`` and worker
processes of its own), so killing workers never disturbs the session's worker, and the
session's worker never claims this test's runs.
"""

from __future__ import annotations

import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from openai import OpenAI
from openai.types.beta.threads import Run

from assistd.core.db import async_url
from assistd.core.migrate import upgrade_to_head
from tests.conftest import (
    Database,
    ServerProcess,
    mint_key,
    start_server,
    start_worker,
    stop_server,
)
from tests.support.scripted_chat import script as scripted_turn
from tests.support.wait import wait_until as wait_for

HEARTBEAT_SECONDS = 0.3
LEASE_SECONDS = 2.0
REAP_SECONDS = 0.3
POLL_SECONDS = 0.3
SHUTDOWN_GRACE_SECONDS = 10.0

TERMINAL = {"completed", "failed", "cancelled", "expired", "incomplete"}
ACTIVE = {"queued", "in_progress", "requires_action", "cancelling"}


def script(reply: str, delay_ms: int = 0) -> str:
    """A user message scripting the model's answer (see tests/support/scripted_chat.py)."""
    return scripted_turn(reply=reply, delay_ms=delay_ms)


def database_url(url: str, name: str) -> str:
    """``url`` pointing at database ``name`` (socket-directory URLs included)."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


@dataclass
class Stack:
    """A server and workers of this module, on a database of their own."""

    env: dict[str, str]
    server: ServerProcess
    client: OpenAI
    log_dir: Path
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start_worker(self, name: str) -> subprocess.Popen[bytes]:
        """Start a worker process (killed at the end of the test if still running)."""
        proc = start_worker(self.env, self.worker_log_path(name))
        self.workers.append(proc)
        return proc

    def worker_log_path(self, name: str) -> Path:
        return self.log_dir / f"worker-{name}.log"

    def worker_log(self, name: str) -> str:
        path = self.worker_log_path(name)
        return path.read_text(errors="replace") if path.exists() else ""

    def kill_workers(self) -> None:
        for proc in self.workers:
            if proc.poll() is None:
                proc.kill()
            proc.wait(10)
        self.workers.clear()


@pytest.fixture(scope="module")
def isolated_stack(
    database: Database, server_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """A fresh database and an API server of its own (``--no-worker``); no workers."""
    name = f"reliability_{uuid.uuid4().hex[:12]}"
    database.new_database(name)
    url = database_url(database.url, name)
    upgrade_to_head(async_url(url))
    key = mint_key(url, "reliability")
    log_dir = tmp_path_factory.mktemp("reliability")
    data_dir = log_dir / "data"
    data_dir.mkdir()
    env = {
        **server_env,
        "ASSISTD_DATABASE_URL": url,
        "ASSISTD_DATA_DIR": str(data_dir),
        "ASSISTD_WORKER__HEARTBEAT_SECONDS": str(HEARTBEAT_SECONDS),
        "ASSISTD_WORKER__LEASE_SECONDS": str(LEASE_SECONDS),
        "ASSISTD_WORKER__REAP_SECONDS": str(REAP_SECONDS),
        "ASSISTD_WORKER__POLL_SECONDS": str(POLL_SECONDS),
        "ASSISTD_WORKER__SHUTDOWN_GRACE_SECONDS": str(SHUTDOWN_GRACE_SECONDS),
    }
    server = start_server(env, log_dir / "server.log", "--no-worker")
    client = OpenAI(base_url=server.api, api_key=key, max_retries=0)
    built = Stack(env=env, server=server, client=client, log_dir=log_dir)
    try:
        yield built
    finally:
        built.kill_workers()
        client.close()
        stop_server(server)


@pytest.fixture
def stack(isolated_stack: Stack, tmp_path: Path) -> Iterator[Stack]:
    """The isolated stack; every worker the test starts is killed when it ends."""
    isolated_stack.log_dir = tmp_path
    try:
        yield isolated_stack
    finally:
        isolated_stack.kill_workers()


def retrieve_runs(client: OpenAI, runs: list[Run]) -> list[Run]:
    return [client.beta.threads.runs.retrieve(r.id, thread_id=r.thread_id) for r in runs]


def test_killed_worker_runs_are_reaped_without_losing_messages(stack: Stack) -> None:
    client = stack.client
    assistant = client.beta.assistants.create(model="gpt-4o", name="slow")
    # 150 words x 100 ms = ~15 s: far longer than it takes to kill A once all are streaming
    # (A is killed, so the length costs no test time).
    slow_reply = " ".join(f"word{i}" for i in range(150))
    threads = [
        client.beta.threads.create(
            messages=[{"role": "user", "content": f"thread {i} " + script(slow_reply, 100)}]
        )
        for i in range(20)
    ]
    originals = {t.id: client.beta.threads.messages.list(t.id).data[0].id for t in threads}
    runs = [client.beta.threads.runs.create(t.id, assistant_id=assistant.id) for t in threads]
    assert {r.status for r in runs} == {"queued"}  # no worker yet

    worker_a = stack.start_worker("a")

    def all_in_progress() -> list[Run] | None:
        current = retrieve_runs(client, runs)
        return current if all(r.status == "in_progress" for r in current) else None

    wait_for(all_in_progress, 20, "worker A to claim all 20 runs")
    claimed_at = time.monotonic()

    def all_streaming() -> bool:
        # Every run has an assistant message being written (so a kill leaves work half done).
        for t in threads:
            msgs = client.beta.threads.messages.list(t.id).data
            if not any(m.role == "assistant" and m.status == "in_progress" for m in msgs):
                return False
        return True

    wait_for(all_streaming, 10, "every run to stream an assistant message")
    before_kill = retrieve_runs(client, runs)
    assert all(r.status == "in_progress" for r in before_kill), [r.status for r in before_kill]
    streamed_for = time.monotonic() - claimed_at

    worker_a.send_signal(signal.SIGKILL)
    worker_a.wait(10)
    killed_at = time.monotonic()
    worker_b = stack.start_worker("b")
    # B's process start-up (imports, migrations check) is not what is measured; once B runs,
    # A's lease has run out or soon will, and B's reaper must end every run within a lease
    # plus a few seconds.
    wait_for(lambda: "started (concurrency" in stack.worker_log("b"), 30, "worker B to start")
    b_started = time.monotonic()
    deadline = LEASE_SECONDS + 8

    def all_terminal() -> list[Run] | None:
        current = retrieve_runs(client, runs)
        return current if all(r.status in TERMINAL for r in current) else None

    final = wait_for(all_terminal, deadline, "every run to end after worker A was killed")
    ended_after = time.monotonic() - killed_at
    assert time.monotonic() - b_started < deadline

    failed = [r for r in final if r.status == "failed"]
    assert {r.status for r in final} <= {"failed", "completed"}, [r.status for r in final]
    # A was killed mid-stream (15 s replies, killed soon after streaming began): none finished.
    assert len(failed) == 20, [r.status for r in final]
    for run in failed:
        assert run.last_error is not None
        assert run.last_error.code == "server_error"
        assert "worker" in run.last_error.message.lower()
        assert run.failed_at is not None

    by_id = {r.id: r for r in final}
    for thread, run in zip(threads, final, strict=True):
        messages = client.beta.threads.messages.list(thread.id, order="asc", limit=100).data
        users = [m for m in messages if m.role == "user"]
        assistants = [m for m in messages if m.role == "assistant"]
        assert [m.id for m in users] == [originals[thread.id]]
        assert len(messages) == len(users) + len(assistants)
        assert len({m.id for m in messages}) == len(messages)
        # At most one assistant message per run, each belonging to a run of this thread.
        assert len(assistants) <= 1, [m.id for m in assistants]
        for message in assistants:
            assert message.run_id == run.id
            owner = by_id[message.run_id]
            if owner.status == "failed":
                assert message.status == "incomplete"
                assert message.incomplete_details is not None
                assert message.incomplete_details.reason == "run_failed"
            else:
                assert message.status == "completed"
        steps = client.beta.threads.runs.steps.list(run.id, thread_id=thread.id).data
        assert steps, f"run {run.id} has no steps"
        for step in steps:
            assert step.run_id == run.id
            if run.status == "failed":
                assert step.status in ("failed", "completed"), step.status
            assert step.status != "in_progress"
            if step.status == "failed":
                assert step.last_error is not None
                assert step.last_error.code == "server_error"

    # Nothing is left active: new runs on these threads are accepted and B completes them.
    assert worker_b.poll() is None
    followups = []
    for thread in threads[:3]:
        client.beta.threads.messages.create(thread.id, role="user", content=script("recovered"))
        followups.append(client.beta.threads.runs.create(thread.id, assistant_id=assistant.id))

    def followups_done() -> list[Run] | None:
        current = retrieve_runs(client, followups)
        return current if all(r.status in TERMINAL for r in current) else None

    done = wait_for(followups_done, 15, "worker B to complete the follow-up runs")
    assert [r.status for r in done] == ["completed"] * 3
    for thread, run in zip(threads[:3], done, strict=True):
        newest = client.beta.threads.messages.list(thread.id, order="desc", limit=1).data[0]
        assert newest.role == "assistant"
        assert newest.run_id == run.id
        assert newest.status == "completed"
        block = newest.content[0]
        assert block.type == "text"
        assert block.text.value == "recovered"

    assert "reaped" in stack.worker_log("b")
    print(
        f"\nSIGKILL {streamed_for:.1f}s after all 20 runs were in progress; all ended "
        f"{ended_after:.1f}s after the kill, {b_started - killed_at:.1f}s of it B's start-up "
        f"(lease {LEASE_SECONDS}s)"
    )


def test_sigterm_drains_in_flight_runs(stack: Stack) -> None:
    client = stack.client
    assistant = client.beta.assistants.create(model="gpt-4o", name="short")
    reply = " ".join(f"tok{i}" for i in range(40))  # 40 words x 100 ms = ~4 s
    thread = client.beta.threads.create(messages=[{"role": "user", "content": script(reply, 100)}])
    worker = stack.start_worker("c")
    run = client.beta.threads.runs.create(thread.id, assistant_id=assistant.id)

    def streaming() -> bool:
        msgs = client.beta.threads.messages.list(thread.id).data
        return any(m.role == "assistant" and m.status == "in_progress" for m in msgs)

    wait_for(streaming, 20, "the run to start streaming")
    assert client.beta.threads.runs.retrieve(run.id, thread_id=thread.id).status == "in_progress"

    worker.send_signal(signal.SIGTERM)
    signalled = time.monotonic()
    # Once the worker is draining it claims nothing more: a run queued now stays queued.
    wait_for(lambda: "waiting up to" in stack.worker_log("c"), 10, "the worker to start draining")
    other = client.beta.threads.create(messages=[{"role": "user", "content": script("later")}])
    queued = client.beta.threads.runs.create(other.id, assistant_id=assistant.id)

    try:
        code = worker.wait(SHUTDOWN_GRACE_SECONDS + 5)
    except subprocess.TimeoutExpired:
        raise AssertionError(
            f"worker did not exit after SIGTERM:\n{stack.worker_log('c')}"
        ) from None
    exited_after = time.monotonic() - signalled
    assert code == 0, stack.worker_log("c")
    assert exited_after < SHUTDOWN_GRACE_SECONDS

    finished = client.beta.threads.runs.retrieve(run.id, thread_id=thread.id)
    assert finished.status == "completed", finished
    assert finished.last_error is None
    messages = client.beta.threads.messages.list(thread.id, order="asc").data
    assert [m.role for m in messages] == ["user", "assistant"]
    answer = messages[1]
    assert answer.run_id == run.id
    assert answer.status == "completed"
    assert answer.content[0].type == "text"
    assert answer.content[0].text.value == reply
    steps = client.beta.threads.runs.steps.list(run.id, thread_id=thread.id).data
    assert [s.status for s in steps] == ["completed"]

    still = client.beta.threads.runs.retrieve(queued.id, thread_id=other.id)
    assert still.status == "queued"
    # A new worker picks up what the drained one left queued.
    stack.start_worker("d")

    def later_done() -> Run | None:
        current = client.beta.threads.runs.retrieve(queued.id, thread_id=other.id)
        return current if current.status in TERMINAL else None

    assert wait_for(later_done, 20, "the queued run to complete").status == "completed"
    for r in (finished, still):
        current = client.beta.threads.runs.retrieve(r.id, thread_id=r.thread_id)
        assert current.status not in ACTIVE
    print(f"\nworker drained and exited {exited_after:.1f}s after SIGTERM")
