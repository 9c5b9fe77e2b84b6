"""``assistd serve --processes N``: several server processes share the port, each executing
the runs it creates with its own in-process worker; a process that dies is replaced, and
stopping the server stops them all (the embedded Postgres too, when it started one)."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import httpx
import psycopg
import pytest
from openai import OpenAI

from tests.conftest import Database, ServerProcess, mint_key, start_server, stop_server
from tests.e2e.test_serve import KEY_RE, _stop_embedded_postgres

T = TypeVar("T")


def children(pid: int) -> set[int]:
    """Live direct children of ``pid`` that run assistd (uvicorn's server processes)."""
    out: set[int] = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        if int(stat[1]) == pid and stat[0] != "Z" and b"spawn_main" in cmdline:
            out.add(int(entry))
    return out


def wait_for(check: Callable[[], T], timeout: float, what: str) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def run_many(client: OpenAI, assistant_id: str, n: int) -> list[str]:
    """Create ``n`` runs at once (each on its own thread and connection); poll them to the end
    and return their ids, checking every answer."""

    def one(i: int) -> str:
        with OpenAI(base_url=client.base_url, api_key=client.api_key, max_retries=0) as own:
            return one_run(own, i)

    def one_run(own: OpenAI, i: int) -> str:
        word = f"w{i}-{uuid.uuid4().hex[:6]}"
        thread = own.beta.threads.create(
            messages=[
                {
                    "role": "user",
                    "content": "#script " + json.dumps({"reply": f"{word} .", "delay_ms": 300}),
                }
            ]
        )
        run = own.beta.threads.runs.create_and_poll(
            thread_id=thread.id, assistant_id=assistant_id, poll_interval_ms=50
        )
        assert run.status == "completed", run.last_error
        messages = own.beta.threads.messages.list(thread.id, order="desc", limit=1).data
        assert messages[0].content[0].text.value == f"{word} ."  # type: ignore[union-attr]
        return run.id

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(one, range(n)))


@pytest.fixture
def served(
    pg_root: str, server_env: dict[str, str], tmp_path: Path
) -> Iterator[tuple[ServerProcess, OpenAI, str]]:
    url = Database(pg_root).new_database(f"procs_{uuid.uuid4().hex[:10]}")
    proc = start_server(
        {**server_env, "ASSISTD_DATABASE_URL": url}, tmp_path / "server.log", "--processes", "2"
    )
    try:
        client = OpenAI(base_url=proc.api, api_key=mint_key(url, "procs"), max_retries=0)
        yield proc, client, url
        client.close()
    finally:
        stop_server(proc)


def test_two_processes_execute_runs_and_replace_a_dead_one(
    served: tuple[ServerProcess, OpenAI, str],
) -> None:
    proc, client, url = served
    wait_for(lambda: len(children(proc.process.pid)) == 2, 30, "two server processes")
    pids = children(proc.process.pid)
    assistant = client.beta.assistants.create(model="gpt-4o", name="procs")

    # Which workers hold the runs while they execute (the claim is cleared at the end).
    owners: set[str] = set()
    done = threading.Event()

    def sample() -> None:
        with psycopg.connect(url, autocommit=True) as db:
            while not done.is_set():
                rows = db.execute("SELECT worker_id FROM runs WHERE worker_id IS NOT NULL")
                owners.update(row[0] for row in rows)
                time.sleep(0.02)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        assert len(run_many(client, assistant.id, 16)) == 16
    finally:
        done.set()
        sampler.join()
    # Runs are executed by the server processes themselves (a worker id holds its pid),
    # not by the supervisor, and by both: each process listens on its own socket, so the
    # kernel spreads the 16 new connections over them (all on one: 2 in 65536).
    executed_by = {int(owner.split(":")[1]) for owner in owners}
    assert executed_by == pids, (executed_by, pids)

    # A server process killed outright is replaced, and the server goes on answering.
    victim = next(iter(pids))
    os.kill(victim, signal.SIGKILL)
    replaced = wait_for(
        lambda: (now := children(proc.process.pid)) and victim not in now and len(now) == 2,
        30,
        "a replacement server process",
    )
    assert replaced
    assert len(run_many(client, assistant.id, 6)) == 6

    # SIGTERM to the server stops every process.
    survivors = children(proc.process.pid)
    stop_server(proc)
    assert proc.process.returncode == 0, proc.log()[-3000:]
    for pid in survivors:
        assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text()


def test_embedded_database_with_processes(tmp_path: Path) -> None:
    """The one-command start with ``--processes 2``: the supervisor owns the embedded Postgres
    (started once, stopped on exit), both processes serve the same data."""
    data_dir = tmp_path / "data"
    env = {"ASSISTD_DATA_DIR": str(data_dir)}
    unset = ["ASSISTD_DATABASE_URL", "ASSISTD_STORAGE__DIR"]
    server = start_server(env, tmp_path / "serve.log", "--processes", "2", unset=unset)
    try:
        keys = KEY_RE.findall(server.log())
        assert len(keys) == 1, server.log()
        wait_for(lambda: len(children(server.process.pid)) == 2, 30, "two server processes")
        with OpenAI(base_url=server.api, api_key=keys[0], max_retries=0) as client:
            made = [client.beta.assistants.create(model="gpt-4o", name=f"a{i}") for i in range(8)]
            # Fresh connections, so both processes take requests.
            for _ in range(8):
                with httpx.Client(
                    base_url=server.api, headers={"Authorization": f"Bearer {keys[0]}"}
                ) as h:
                    listed = h.get("/assistants", params={"limit": 100}).json()["data"]
                    assert {a["id"] for a in listed} == {a.id for a in made}
        stop_server(server)
        assert server.process.returncode == 0, server.log()[-3000:]
        assert not (data_dir / "pgdata" / "postmaster.pid").exists()
    finally:
        if server.process.poll() is None:
            stop_server(server)
        _stop_embedded_postgres(data_dir / "pgdata")
