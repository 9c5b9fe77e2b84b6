"""Fixtures of the engine tests: the worker's dependencies against the session's database and
the scripted chat backend, in this process."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from assistd.assistants import service as assistants_service
from assistd.assistants.schemas import AssistantCreate
from assistd.core.channels import QUEUE_CHANNEL
from assistd.core.config import Settings
from assistd.core.db import (
    async_url,
    create_engine,
    create_read_engine,
    dispose,
    libpq_dsn,
    make_read_sessionmaker,
    make_sessionmaker,
    transaction,
)
from assistd.core.notify import Listener
from assistd.engine.executor import EngineDeps
from assistd.files.storage import LocalFileStorage
from assistd.llm.chat import router_from_environment
from assistd.models import Run
from assistd.projects import service as projects_service
from assistd.runs import service as runs_service
from assistd.runs.schemas import RunCreate
from assistd.threads import service as threads_service
from assistd.threads.schemas import ThreadCreate
from assistd.worker.loop import Worker
from tests.conftest import Database
from tests.support.scripted_chat import ScriptedChatServer


@dataclass
class Env:
    maker: async_sessionmaker[AsyncSession]
    settings: Settings
    worker: Worker
    project: str
    assistant: str


@pytest.fixture
async def env(database: Database, chat: ScriptedChatServer, tmp_path: Path) -> AsyncIterator[Env]:
    url = async_url(database.url)
    settings = Settings(database_url=database.url, data_dir=tmp_path)
    engine = create_engine(url, settings)
    maker = make_sessionmaker(engine)
    router = router_from_environment(
        {"OPENAI_BASE_URL": chat.base_url, "OPENAI_API_KEY": "sk-test"}, max_retries=0
    )

    def no_embedder(name: str) -> object:
        raise AssertionError("no embedding here")

    deps = EngineDeps(
        maker=maker,
        router=router,
        storage=LocalFileStorage(tmp_path / "files"),
        settings=settings,
        embedders=no_embedder,  # type: ignore[arg-type]
    )
    listener = Listener(libpq_dsn(url), [QUEUE_CHANNEL])
    # Runs started straight from their creation read their context as the app's do.
    read_engine = create_read_engine(url, settings)
    worker = Worker(deps, listener, make_read_sessionmaker(read_engine))
    async with transaction(maker) as session:
        key = await projects_service.create_key(session, f"adopt-{uuid.uuid4().hex[:10]}")
        project = key.project_id
        assistant = await assistants_service.create(
            session, project, AssistantCreate(model="gpt-4o"), settings.embeddings
        )
    try:
        yield Env(maker, settings, worker, project, assistant.id)
    finally:
        await dispose(read_engine)
        await dispose(engine)


async def make_thread(env: Env, text: str) -> str:
    """A thread with one user message."""
    async with transaction(env.maker) as session:
        thread = await threads_service.create(
            session,
            env.project,
            ThreadCreate.model_validate({"messages": [{"role": "user", "content": text}]}),
            env.settings.embeddings,
        )
        return thread.id


async def create_claimed_run(
    env: Env,
    session: AsyncSession,
    thread_id: str,
    owner: str,
    say: str | None = None,
    *,
    stream: bool = True,
) -> Run:
    """A run on ``thread_id`` created already claimed by ``owner`` (``say``: an additional
    user message), in ``session``'s transaction; ``stream`` as the request would say (only
    streamed runs record stream events). Its heartbeat is set far ahead: nothing here
    heartbeats, and a session worker's reaper (3 s lease in the tests) would fail it."""
    extra = [{"role": "user", "content": say}] if say else []
    body = {"assistant_id": env.assistant, "additional_messages": extra, "stream": stream}
    run = await runs_service.create_run(
        session,
        env.settings,
        env.project,
        thread_id,
        RunCreate.model_validate(body),
        [],
        adopt=owner,
    )
    run.heartbeat_at = time.time() + 3600
    return run


async def wait_idle(worker: Worker, seconds: float) -> None:
    """Wait until ``worker`` executes nothing (the worker exposes no other way to wait)."""
    deadline = time.monotonic() + seconds
    while worker._tasks:
        assert time.monotonic() < deadline, "a run is still executing"
        await asyncio.sleep(0.02)
