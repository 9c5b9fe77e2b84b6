"""Sandbox managers on the real Docker engine for the sandbox tests: fixtures and helpers.

Each test uses threads of its own (``thread_<uuid>``), and every manager is closed after its
test, even when the test fails; containers named after the test's threads or started by its
managers are then removed as a last resort.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import docker
import docker.errors
import pytest

from assistd.core.config import SandboxSettings
from assistd.sandbox.containers import INSTANCE_LABEL, LABEL, session_name
from assistd.sandbox.manager import Execution, InputFile, SandboxManager
from tests.conftest import SANDBOX_INSTANCE

EXEC_TIMEOUT = 5.0
SMALL: dict[str, Any] = {
    "exec_timeout_seconds": EXEC_TIMEOUT,
    "pool_size": 0,
    "memory": "512m",
    "start_timeout_seconds": 60.0,
    "instance": SANDBOX_INSTANCE,  # the suite's own check for leftovers covers these too
}
EXEC_DEADLINE = 90.0
"""No single execution in these tests may take longer (else the test fails, not hangs)."""
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="session")
def engine(request: pytest.FixtureRequest) -> Iterator[docker.DockerClient]:
    """The Docker engine, which must be reachable, with the sandbox image built."""
    problem = None
    try:
        client = docker.from_env()
        client.ping()
    except Exception as exc:
        problem = str(exc)
    if problem is not None:  # failed outside the except block: no chained tracebacks
        pytest.fail(
            f"the Docker engine is not reachable ({problem}). The sandbox tests need a running "
            "engine (DOCKER_HOST or /var/run/docker.sock); they fail rather than skip.",
            pytrace=False,
        )
    request.getfixturevalue("sandbox_image")  # built now if missing
    yield client
    client.close()


@dataclass
class Start:
    """One container start by a manager."""

    name: str
    role: str
    finished: bool = False


class Sandboxes:
    """Makes managers and thread ids for one test, and cleans up after it."""

    def __init__(self, engine: docker.DockerClient, image: str) -> None:
        self.engine = engine
        self.image = image
        self.managers: list[SandboxManager] = []
        self.threads: list[str] = []
        self._starts: dict[int, list[Start]] = {}
        self._lock = threading.Lock()

    def manager(self, **overrides: Any) -> SandboxManager:
        manager = SandboxManager(SandboxSettings(**{"image": self.image, **SMALL, **overrides}))
        self.managers.append(manager)
        self._starts[id(manager)] = []
        self._spy_on_starts(manager)
        return manager

    def _spy_on_starts(self, manager: SandboxManager) -> None:
        """Record every container the manager starts (the real start runs), so that the
        tests can tell its containers apart from other processes' and none can leak."""
        calls = self._starts[id(manager)]
        real_start = manager.containers.start

        def start(name: str, role: str) -> str:
            call = Start(name, role)
            with self._lock:
                calls.append(call)
            try:
                return real_start(name, role)
            finally:
                call.finished = True

        manager.containers.start = start  # type: ignore[method-assign]

    def starts(self, manager: SandboxManager) -> list[Start]:
        """The container starts of a manager so far (in the order they began)."""
        with self._lock:
            return list(self._starts[id(manager)])

    def thread(self) -> str:
        thread_id = f"thread_{uuid.uuid4().hex[:24]}"
        self.threads.append(thread_id)
        return thread_id

    def inspect(self, name_or_id: str) -> dict[str, Any] | None:
        """The engine's view of a container, or None when there is none."""
        try:
            info: dict[str, Any] = self.engine.api.inspect_container(name_or_id)
        except docker.errors.NotFound:
            return None
        return info

    def session_id(self, thread_id: str) -> str:
        """The id of the running container of a thread's session."""
        info = self.inspect(session_name(thread_id))
        assert info is not None, f"no container named {session_name(thread_id)}"
        assert info["State"]["Status"] == "running", info["State"]
        container_id: str = info["Id"]
        return container_id

    def sandbox_containers(self) -> list[dict[str, Any]]:
        """Every sandbox container of this test session on the engine, in any state."""
        found: list[dict[str, Any]] = self.engine.api.containers(
            all=True, filters={"label": [LABEL, f"{INSTANCE_LABEL}={SANDBOX_INSTANCE}"]}
        )
        return found

    async def cleanup(self) -> None:
        leftovers: set[str] = set()
        for manager in self.managers:
            leftovers |= set(manager._owned) | set(manager._pool)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(manager.close(), 60)
        leftovers |= {session_name(t) for t in self.threads}
        leftovers |= {call.name for calls in self._starts.values() for call in calls}
        for container in leftovers:
            # Already gone (the usual case) or being removed.
            with contextlib.suppress(docker.errors.APIError):
                await asyncio.to_thread(self.engine.api.remove_container, container, force=True)


@pytest.fixture
async def sandboxes(engine: docker.DockerClient, sandbox_image: str) -> AsyncIterator[Sandboxes]:
    made = Sandboxes(engine, sandbox_image)
    try:
        yield made
    finally:
        await made.cleanup()


class Upload:
    """An input file that counts how often its bytes were read (i.e. sent)."""

    def __init__(self, file_id: str, path: str, data: bytes) -> None:
        self.file_id, self.path, self.data = file_id, path, data
        self.reads = 0

    async def chunks(self) -> AsyncIterator[bytes]:
        self.reads += 1
        for start in range(0, len(self.data), 64 * 1024):
            yield self.data[start : start + 64 * 1024]

    @property
    def input(self) -> InputFile:
        return InputFile(self.file_id, self.path, self.chunks)


async def run(
    manager: SandboxManager, thread_id: str, code: str, files: Sequence[InputFile] = ()
) -> Execution:
    return await asyncio.wait_for(manager.execute(thread_id, code, list(files)), EXEC_DEADLINE)


async def timed(awaitable: Awaitable[Execution]) -> tuple[Execution, float]:
    started = time.monotonic()
    result = await awaitable
    return result, time.monotonic() - started


def failed_with(execution: Execution, name: str) -> str:
    """The error value of an execution that must have failed with ``name``."""
    assert execution.error is not None, f"no error: {execution}"
    assert execution.error["name"] == name, execution
    return execution.error["value"]


def ok(execution: Execution) -> str:
    """The logs of an execution that must have run cleanly."""
    assert execution.error is None, f"unexpected error: {execution}"
    assert not execution.notices, f"unexpected notices: {execution}"
    assert not execution.timed_out, execution
    return execution.logs


async def eventually(
    check: Callable[[], bool], within: float, what: str | Callable[[], str]
) -> None:
    """Poll ``check`` until it holds; fail after ``within`` seconds, saying ``what``."""
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not so after {within} s: {what() if callable(what) else what}")
        await asyncio.sleep(0.1)


async def in_sandbox_state(manager: SandboxManager, thread_id: str) -> dict[str, Any]:
    """The driver's own record of the uploaded files in place."""
    container_id = await asyncio.to_thread(manager.containers.find, session_name(thread_id))
    assert container_id is not None
    answer = await asyncio.to_thread(manager.containers.request, container_id, {"op": "state"}, 10)
    assert answer.get("ok") is True, answer
    return answer
