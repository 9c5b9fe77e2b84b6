"""A run created without a transaction (``runs.service.create_run_direct``) is started by this
process's worker between the statement reading the thread (with its messages) and the one
inserting the run: the model is called while the insert is on its way, and nothing is written
before the insert returns. A message added in between restarts the run on its context read
anew; a failed insert leaves no trace. Adding a message while a run is being inserted waits
for the insert and then sees the run.

Real Postgres and the scripted chat backend over HTTP; the worker is used in-process without
its claim loop."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

import pytest
from sqlalchemy import func, select

from assistd.core.db import (
    engine_of,
    transaction,
)
from assistd.core.errors import ConflictingStateError, NotFoundError
from assistd.messages import service as messages_service
from assistd.messages.schemas import MessageCreate
from assistd.models import Message, Run, RunEvent, Thread
from assistd.runs import events
from assistd.runs import service as runs_service
from assistd.runs.schemas import RunCreate
from assistd.threads import service as threads_service
from assistd.worker import queue
from tests.engine.conftest import Env, create_claimed_run, make_thread, wait_idle
from tests.support.scripted_chat import ScriptedChatServer


async def _create(
    env: Env,
    thread_id: str,
    started: list[str],
    *,
    stream: bool = True,
) -> Run:
    return await runs_service.create_run_direct(
        engine_of(env.maker),
        env.settings,
        env.project,
        thread_id,
        RunCreate.model_validate({"assistant_id": env.assistant, "stream": stream}),
        [],
        env.worker,
        on_start=lambda run: started.append(run.id),
    )


async def _completed(env: Env, thread_id: str, stream: bool) -> Run:
    """Create a run started on this worker and wait until it has completed."""
    started: list[str] = []
    run = await _create(env, thread_id, started, stream=stream)
    assert started == [run.id]
    await wait_idle(env.worker, 10)
    async with env.maker() as session:
        stored = await session.get_one(Run, run.id)
        assert (stored.status, stored.last_error) == ("completed", None)
    return run


async def _run_messages(env: Env, run_id: str) -> list[str]:
    async with env.maker() as session:
        return [
            m.content[0]["text"]["value"]
            for m in await session.scalars(
                select(Message).where(Message.run_id == run_id).order_by(Message.seq)
            )
        ]


@pytest.mark.parametrize("stream", [True, False])
async def test_local_run_completes_on_the_thread_it_read(
    env: Env, chat: ScriptedChatServer, stream: bool
) -> None:
    reply = f"early {uuid.uuid4().hex[:8]}"
    thread_id = await make_thread(env, "#script " + json.dumps({"reply": reply}))
    run = await _completed(env, thread_id, stream)
    async with env.maker() as session:
        names = list(
            await session.scalars(
                select(RunEvent.event).where(RunEvent.run_id == run.id).order_by(RunEvent.id)
            )
        )
    assert await _run_messages(env, run.id) == [reply]
    if stream:
        assert names[0] == "thread.run.created"
        assert names[-1] == "thread.run.completed"
        assert names.count("thread.message.created") == 1
    else:
        assert names == []  # a run nobody streams records no events


@pytest.mark.parametrize("change", ["message", "run"])
@pytest.mark.parametrize("stream", [True, False])
async def test_a_thread_changed_before_the_insert_is_the_runs_context(
    env: Env,
    chat: ScriptedChatServer,
    monkeypatch: pytest.MonkeyPatch,
    stream: bool,
    change: str,
) -> None:
    tag = uuid.uuid4().hex[:8]
    old_reply, new_reply = f"stale {tag}", f"fresh {tag}"
    # The first script answers slowly: the early start is still talking to the model when
    # the insert finds the thread changed.
    thread_id = await make_thread(
        env, "#script " + json.dumps({"reply": old_reply, "first_delay_ms": 1000})
    )
    new_message = MessageCreate(role="user", content="#script " + json.dumps({"reply": new_reply}))
    insert = events.insert_run_locked

    async def change_then_insert(*args: Any, **kwargs: Any) -> tuple[int, int] | None:
        # Committed after the first statement read the thread, before the insert locks it:
        # a message added, or another run created with it that ended at once.
        async with transaction(env.maker) as session:
            if change == "message":
                await messages_service.add(
                    session, env.project, thread_id, new_message, env.settings.embeddings
                )
            else:
                other = await runs_service.create_run(
                    session,
                    env.settings,
                    env.project,
                    thread_id,
                    RunCreate(assistant_id=env.assistant, additional_messages=[new_message]),
                    [],
                )
                other.status = "cancelled"
        return await insert(*args, **kwargs)

    monkeypatch.setattr(events, "insert_run_locked", change_then_insert)
    calls_before = len(chat.requests)
    run = await _completed(env, thread_id, stream)
    async with env.maker() as session:
        version = await session.scalar(select(Thread.version).where(Thread.id == thread_id))
    # The run answered the thread as it was when inserted, once.
    assert await _run_messages(env, run.id) == [new_reply]
    assert version == 2  # the change, then the run
    sent = [r for r in chat.requests[calls_before:] if tag in json.dumps(r)]
    assert new_reply in json.dumps(sent[-1]["messages"])
    if stream:
        # Started early on the thread without the new message: that start was dropped,
        # unwritten, and the run started again.
        assert len(sent) == 2
        assert new_reply not in json.dumps(sent[0]["messages"])
    else:
        assert len(sent) == 1  # started once, after the insert, on its context read anew


async def test_a_failed_insert_leaves_no_trace(
    env: Env,
    chat: ScriptedChatServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    thread_id = await make_thread(env, "#script " + json.dumps({"reply": "never stored"}))
    insert = events.insert_run_locked

    async def delete_then_insert(*args: Any, **kwargs: Any) -> tuple[int, int] | None:
        await asyncio.sleep(0.3)  # the early start has called the model by now
        async with transaction(env.maker) as session:
            await threads_service.delete_thread(session, env.project, thread_id)
        return await insert(*args, **kwargs)

    monkeypatch.setattr(events, "insert_run_locked", delete_then_insert)
    started: list[str] = []
    with pytest.raises(NotFoundError):
        await _create(env, thread_id, started)
    assert len(started) == 1
    await wait_idle(env.worker, 10)
    async with env.maker() as session:
        for model, column in ((Run, Run.id), (RunEvent, RunEvent.run_id)):
            count = await session.scalar(
                select(func.count()).select_from(model).where(column == started[0])
            )
            assert count == 0
        count = await session.scalar(
            select(func.count()).select_from(Message).where(Message.run_id == started[0])
        )
        assert count == 0


async def test_adding_a_message_waits_for_a_run_insert_and_sees_the_run(env: Env) -> None:
    thread_id = await make_thread(env, "hello")
    async with env.maker() as creating, creating.begin():
        # The run is inserted and the thread locked, not yet committed.
        run = await runs_service.create_run(
            creating,
            env.settings,
            env.project,
            thread_id,
            RunCreate.model_validate({"assistant_id": env.assistant}),
            [],
        )

        async def add() -> Message:
            async with transaction(env.maker) as session:
                return await messages_service.add(
                    session,
                    env.project,
                    thread_id,
                    MessageCreate(role="user", content="too late"),
                    env.settings.embeddings,
                )

        adding = asyncio.create_task(add())
        await asyncio.sleep(0.3)
        assert not adding.done()  # waiting for the thread lock
    # Committed: the statement that started before the run existed took the lock, and the
    # check after it sees the run.
    with pytest.raises(ConflictingStateError) as err:
        await adding
    assert run.id in str(err.value)


@pytest.mark.parametrize("stream", [True, False])
async def test_a_request_cancelled_during_the_insert_still_runs_the_run(
    env: Env,
    chat: ScriptedChatServer,
    monkeypatch: pytest.MonkeyPatch,
    stream: bool,
) -> None:
    reply = f"orphan {uuid.uuid4().hex[:8]}"
    thread_id = await make_thread(env, "#script " + json.dumps({"reply": reply}))
    insert = events.insert_run_locked

    async def slow_insert(*args: Any, **kwargs: Any) -> tuple[int, int] | None:
        await asyncio.sleep(0.3)
        return await insert(*args, **kwargs)

    monkeypatch.setattr(events, "insert_run_locked", slow_insert)
    started: list[str] = []
    request = asyncio.create_task(_create(env, thread_id, started, stream=stream))
    await asyncio.sleep(0.1)
    request.cancel()  # as a server shutting down cancels its requests
    with pytest.raises(asyncio.CancelledError):
        await request
    await asyncio.sleep(0.5)  # the insert goes on
    await wait_idle(env.worker, 10)
    async with env.maker() as session:
        stored = await session.get_one(Run, started[0])
        # Inserted already claimed by this worker: had nobody started it, its heartbeat
        # would keep it in_progress for ever.
        assert (stored.status, stored.last_error) == ("completed", None)
    assert await _run_messages(env, started[0]) == [reply]


async def test_heartbeat_keeps_only_the_runs_the_worker_executes(env: Env) -> None:
    thread_id = await make_thread(env, "hello")
    async with transaction(env.maker) as session:
        run = await create_claimed_run(env, session, thread_id, "worker-x")
        # A second old: within any reaper's lease (nothing may end the run meanwhile).
        stamp = run.heartbeat_at = time.time() - 1.0
    async with transaction(env.maker) as session:
        assert await queue.heartbeat(session, "worker-x", ["run_other"]) == []
    async with env.maker() as session:
        assert (await session.get_one(Run, run.id)).heartbeat_at == stamp
    async with transaction(env.maker) as session:
        assert await queue.heartbeat(session, "worker-x", [run.id, "run_other"]) == [
            (run.id, "in_progress")
        ]
    async with env.maker() as session:
        assert (await session.get_one(Run, run.id)).heartbeat_at > stamp
    async with transaction(env.maker) as session:  # ended, so the session worker leaves it
        (await session.get_one(Run, run.id)).status = "cancelled"
