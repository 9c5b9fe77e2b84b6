"""The production compose stack, end to end, on this machine's Docker engine.

It builds the server image (Dockerfile) and brings up docker-compose.yml with the override for
machines without a registry (docker-compose.local.yml: every service on the host's network, a
pgvector Postgres built locally), on free ports and under a project name of its own, then
drives it with the official SDK against the scripted chat backend on 127.0.0.1: a run, a
code_interpreter run (the worker's Docker socket), `docker-compose restart` (data kept), SIGTERM
to the worker mid-run (the run ends, never stays in_progress), more workers with --scale, and
/metrics. `docker-compose down -v` removes the stack at the end, whatever happened.

Without a Docker engine or docker-compose these tests fail rather than skip.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from openai import OpenAI

from assistd.core.config import Settings
from assistd.sandbox.build import LOCAL_BASE, REGISTRY_BASE, build
from tests.conftest import free_port
from tests.support.scripted_chat import ScriptedChatServer, script
from tests.support.wait import wait_until as wait_for

ROOT = Path(__file__).resolve().parents[2]
PROJECT = "assistd-smoke"
"""Compose project name: containers, volumes are assistd-smoke_* (nothing else is touched)."""
SERVER_IMAGE = "assistd:compose-smoke"
PG_IMAGE = "assistd-pgvector:18-local"
"""Built once and then reused by tag (delete it to rebuild the local Postgres image)."""
TERMINAL = {"completed", "failed", "cancelled", "expired", "incomplete", "requires_action"}
# Variables of the developer's shell that would leak into the stack's configuration.
LEAKY = ("ASSISTD_", "OPENAI_", "AZURE_", "POSTGRES_", "COMPOSE_", "DOCKER_GID")


def has_image(name: str) -> bool:
    return subprocess.run(["docker", "image", "inspect", name], capture_output=True).returncode == 0


@dataclass
class Stack:
    """The running stack: how to reach it and how to drive docker-compose."""

    env: dict[str, str]
    env_file: Path
    base_url: str
    timings: dict[str, float] = field(default_factory=dict)
    key: str = ""
    state: dict[str, Any] = field(default_factory=dict)

    def compose(
        self, *args: str, timeout: float = 300, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        command = [
            "docker-compose",
            "-p",
            PROJECT,
            "--env-file",
            str(self.env_file),
            "-f",
            str(ROOT / "docker-compose.yml"),
            "-f",
            str(ROOT / "docker-compose.local.yml"),
            *args,
        ]
        done = subprocess.run(
            command, cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=timeout
        )
        if check and done.returncode != 0:
            raise AssertionError(
                f"{' '.join(command[7:])} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
            )
        return done

    def timed(self, name: str, *args: str, timeout: float = 900) -> None:
        started = time.monotonic()
        self.compose(*args, timeout=timeout)
        self.timings[name] = round(time.monotonic() - started, 1)

    def ready(self) -> bool:
        try:
            return httpx.get(self.base_url + "/ready", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def wait_ready(self, timeout: float = 180) -> None:
        wait_for(self.ready, timeout, "GET /ready to answer 200", every=0.5)

    def client(self) -> OpenAI:
        return OpenAI(base_url=self.base_url + "/v1", api_key=self.key, max_retries=0)

    def worker_containers(self) -> list[dict[str, Any]]:
        ids = self.compose("ps", "-q", "worker").stdout.split()
        if not ids:
            return []
        out = subprocess.run(
            ["docker", "inspect", *ids], capture_output=True, text=True, check=True
        ).stdout
        containers: list[dict[str, Any]] = json.loads(out)
        return containers


def engine_or_fail() -> None:
    """These tests need the engine and docker-compose: fail (never skip) without them."""
    if shutil.which("docker") is None:
        pytest.fail("no docker CLI: install and start a Docker engine (.ci/docker-engine.sh)")
    info = subprocess.run(["docker", "info"], capture_output=True, text=True)
    if info.returncode != 0:
        pytest.fail(f"no Docker engine answers (start it: .ci/docker-engine.sh):\n{info.stderr}")
    if shutil.which("docker-compose") is None:
        pytest.fail("docker-compose is not installed (apt-get install docker-compose)")


def local_base() -> str:
    """The local base image the override builds from (the sandbox image's base)."""
    for base in (LOCAL_BASE, REGISTRY_BASE):
        if has_image(base):
            return base
    pytest.fail(f"neither {LOCAL_BASE} (sandbox-image/make-base.sh) nor {REGISTRY_BASE} exists")


def remove_sandboxes(instance: str) -> None:
    """Sandbox containers the stack's workers started (labelled with this run's instance)."""
    ids = subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"label=io.assistd.instance={instance}"],
        capture_output=True,
        text=True,
    ).stdout.split()
    if ids:
        subprocess.run(["docker", "rm", "-f", *ids], capture_output=True)


@pytest.fixture(scope="module")
def stack(chat: ScriptedChatServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    engine_or_fail()
    # The sandbox image the worker starts (built if missing, as the sandbox tests do).
    sandbox_image = Settings().sandbox.image
    build(sandbox_image, say=lambda line: None)
    base = local_base()
    workdir = tmp_path_factory.mktemp("compose")
    started = time.monotonic()
    wheels = subprocess.run(
        ["bash", str(ROOT / "deploy" / "wheelhouse.sh")], capture_output=True, text=True
    )
    assert wheels.returncode == 0, wheels.stdout + wheels.stderr
    wheelhouse_seconds = round(time.monotonic() - started, 1)

    http_port, db_port = free_port(), free_port()
    instance = f"compose-smoke-{uuid.uuid4().hex[:8]}"
    settings = {
        "ASSISTD_IMAGE": SERVER_IMAGE,
        "ASSISTD_PG_IMAGE": PG_IMAGE,
        "ASSISTD_BASE": base,
        "ASSISTD_SANDBOX_BASE": base,
        "ASSISTD_HTTP_PORT": str(http_port),
        "ASSISTD_DB_PORT": str(db_port),
        "POSTGRES_PASSWORD": uuid.uuid4().hex,
        "DOCKER_GID": str(os.stat("/var/run/docker.sock").st_gid),
        "ASSISTD_SANDBOX__IMAGE": sandbox_image,
        "ASSISTD_SANDBOX__INSTANCE": instance,
        "ASSISTD_API_KEY_CACHE_SECONDS": "0",
        "ASSISTD_POLL_AFTER_MS": "50",
        "OPENAI_API_KEY": "sk-scripted",
        "OPENAI_BASE_URL": chat.base_url,
    }
    env_file = workdir / "stack.env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in settings.items()))
    env = {k: v for k, v in os.environ.items() if not k.startswith(LEAKY)}
    stack = Stack(env, env_file, f"http://127.0.0.1:{http_port}")
    stack.timings["wheelhouse"] = wheelhouse_seconds
    stack.state["instance"] = instance

    # Whatever an interrupted earlier run of this test left (same project name: ours).
    stack.compose("down", "-v", "--remove-orphans", timeout=120)
    try:
        stack.timed("build server image", "build", "api-local")
        if not has_image(PG_IMAGE):
            stack.timed("build postgres image", "build", "db")
        stack.timed("up -d", "up", "-d", timeout=300)
        started = time.monotonic()
        stack.wait_ready()
        stack.timings["ready after up"] = round(time.monotonic() - started, 1)
        created = stack.compose("exec", "-T", "api-local", "assistd", "keys", "create")
        match = re.search(r"sk-assistd-\S+", created.stdout)
        assert match, created.stdout
        stack.key = match.group(0)
        yield stack
    finally:
        logs = stack.compose("logs", "--no-color", "--timestamps", check=False, timeout=60)
        (workdir / "compose.log").write_text(logs.stdout + logs.stderr)
        started = time.monotonic()
        stack.compose("down", "-v", "--remove-orphans", timeout=180, check=False)
        stack.timings["down -v"] = round(time.monotonic() - started, 1)
        remove_sandboxes(instance)
        print(f"\ncompose stack timings (s): {stack.timings}; logs: {workdir / 'compose.log'}")


def scripted(reply: str, **options: Any) -> str:
    return script(reply=reply, **options)


def wait_run(client: OpenAI, thread_id: str, run_id: str, timeout: float = 60) -> Any:
    def done() -> Any:
        run = client.beta.threads.runs.retrieve(run_id, thread_id=thread_id)
        return run if run.status in TERMINAL else None

    return wait_for(done, timeout, f"run {run_id} to end")


def reply_of(client: OpenAI, thread_id: str) -> str:
    message = client.beta.threads.messages.list(thread_id, limit=1).data[0]
    assert message.role == "assistant"
    return "".join(p.text.value for p in message.content if p.type == "text")


def complete_a_run(client: OpenAI, assistant_id: str, text: str) -> None:
    thread = client.beta.threads.create(messages=[{"role": "user", "content": scripted(text)}])
    run = client.beta.threads.runs.create(thread.id, assistant_id=assistant_id)
    run = wait_run(client, thread.id, run.id)
    assert run.status == "completed", (run.status, run.last_error)
    assert reply_of(client, thread.id) == text


def test_a_run_completes_with_the_scripted_reply(stack: Stack) -> None:
    client = stack.client()
    assistant = client.beta.assistants.create(
        model="gpt-4o", name="Compose smoke", instructions="Answer briefly."
    )
    upload = client.files.create(
        file=("notes.txt", b"kept across restarts\n"), purpose="assistants"
    )
    stack.state.update(assistant=assistant.id, file=upload.id)
    complete_a_run(client, assistant.id, "Hello from the compose stack")


def test_code_interpreter_runs_through_the_worker_socket(stack: Stack) -> None:
    client = stack.client()
    assistant = client.beta.assistants.create(
        model="gpt-4o", name="Calculator", tools=[{"type": "code_interpreter"}]
    )
    steps = [
        {"tool_calls": [{"name": "code_interpreter", "arguments": {"code": "print(6 * 7)"}}]},
        {"reply": "The answer is {output0}"},
    ]
    thread = client.beta.threads.create(messages=[{"role": "user", "content": script(steps=steps)}])
    run = client.beta.threads.runs.create(thread.id, assistant_id=assistant.id)
    run = wait_run(client, thread.id, run.id, timeout=120)
    assert run.status == "completed", (run.status, run.last_error)
    assert "42" in reply_of(client, thread.id)


def test_restart_keeps_the_data_and_runs_go_on(stack: Stack) -> None:
    started = time.monotonic()
    stack.compose("restart", timeout=180)
    stack.wait_ready()
    stack.timings["restart until ready"] = round(time.monotonic() - started, 1)
    client = stack.client()
    assistant = client.beta.assistants.retrieve(stack.state["assistant"])
    assert assistant.name == "Compose smoke"
    assert client.files.content(stack.state["file"]).content == b"kept across restarts\n"
    complete_a_run(client, assistant.id, "Still here after a restart")


def test_sigterm_to_the_worker_mid_run_ends_the_run(stack: Stack) -> None:
    client = stack.client()
    slow = " ".join(f"word{i}" for i in range(30))  # 30 words, 200 ms apart: ~6 s
    thread = client.beta.threads.create(
        messages=[{"role": "user", "content": scripted(slow, delay_ms=200)}]
    )
    run = client.beta.threads.runs.create(thread.id, assistant_id=stack.state["assistant"])

    def streaming() -> bool:
        current = client.beta.threads.runs.retrieve(run.id, thread_id=thread.id)
        messages = client.beta.threads.messages.list(thread.id, limit=1).data
        return current.status == "in_progress" and messages[0].role == "assistant"

    wait_for(streaming, 60, "the slow run to stream its answer")
    stack.compose("kill", "-s", "SIGTERM", "worker")
    final = wait_run(client, thread.id, run.id, timeout=60)
    assert final.status in {"completed", "failed"}, (final.status, final.last_error)
    if final.status == "completed":
        assert reply_of(client, thread.id) == slow

    # The worker drained and exited by itself (a stop signal is not restarted by the engine).
    def exited() -> list[dict[str, Any]] | None:
        containers = stack.worker_containers()
        return containers if all(not c["State"]["Running"] for c in containers) else None

    containers = wait_for(exited, 60, "the worker to exit after SIGTERM", every=0.5)
    assert [c["State"]["ExitCode"] for c in containers] == [0]

    # Back with two workers (--scale): both run, and runs complete again.
    stack.compose("up", "-d", "--no-deps", "--scale", "worker=2", "worker", timeout=120)
    running = wait_for(
        lambda: [c for c in stack.worker_containers() if c["State"]["Running"]] or None,
        30,
        "the workers to run",
    )
    assert len(running) == 2
    for i in range(2):
        complete_a_run(client, stack.state["assistant"], f"Run {i} after the workers came back")


def test_metrics_count_the_runs(stack: Stack) -> None:
    text = httpx.get(stack.base_url + "/metrics", timeout=10).text
    # Runs by status are read from Postgres at scrape time, so the API (which runs none
    # itself) reports what the workers did.
    completed = re.search(r'^assistd_runs\{status="completed"\} (\S+)$', text, re.M)
    assert completed, text[:2000]
    assert float(completed.group(1)) >= 5  # hello, code_interpreter, restart, the two last
    assert not re.search(r'^assistd_runs\{status="in_progress"\} [1-9]', text, re.M)
    assert re.search(r"^assistd_queue_depth 0(\.0)?$", text, re.M), text[:2000]
    assert 'route="/v1/threads/{thread_id}/runs"' in text
