"""A run adopted by this process's worker starts (reads its context, calls the model) inside
the transaction creating it, and writes nothing until that transaction commits: committed, it
runs to the end; rolled back, it leaves no trace and the model stream is dropped.

Real Postgres and the scripted chat backend over HTTP; the worker is used in-process without
its claim loop."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from assistd.models import Message, Run, RunEvent, RunStep
from assistd.runs.starter import RunDiscarded
from tests.engine.conftest import Env, create_claimed_run, make_thread, wait_idle
from tests.support.scripted_chat import ScriptedChatServer


async def _create_adopted(
    env: Env, session: AsyncSession, thread_id: str, say: str | None = None
) -> tuple[str, asyncio.Future[None]]:
    run = await create_claimed_run(env, session, thread_id, env.worker.id, say)
    return run.id, await env.worker.adopt(session, run.id)


async def test_committed_adopted_run_completes(env: Env, chat: ScriptedChatServer) -> None:
    reply = f"adopted {uuid.uuid4().hex[:8]}"
    thread_id = await make_thread(env, "#script " + json.dumps({"reply": reply}))
    calls_before = len(chat.requests)
    async with env.maker() as session, session.begin():
        run_id, gate = await _create_adopted(env, session, thread_id)
        # The model is called before the commit, and its whole (short) answer arrives while
        # the transaction is still open: the executor is done with the model and waits to
        # write. Nothing it changed in memory may leak into this transaction's commit.
        deadline = time.monotonic() + 5
        while len(chat.requests) == calls_before:
            assert time.monotonic() < deadline, "the model was not called"
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.5)
        assert not gate.done()
    gate.set_result(None)
    await wait_idle(env.worker, 10)
    async with env.maker() as session:
        run = await session.get_one(Run, run_id)
        assert (run.status, run.last_error) == ("completed", None)
        texts = [
            m.content[0]["text"]["value"]
            for m in await session.scalars(select(Message).where(Message.run_id == run_id))
        ]
        assert texts == [reply]
        names = list(
            await session.scalars(
                select(RunEvent.event).where(RunEvent.run_id == run_id).order_by(RunEvent.id)
            )
        )
    assert names[:3] == ["thread.run.created", "thread.run.queued", "thread.run.in_progress"]
    assert names[-1] == "thread.run.completed"
    assert "thread.message.delta" in names


async def test_a_run_nobody_streams_records_no_events_and_all_its_rows(
    env: Env, chat: ScriptedChatServer
) -> None:
    reply = f"quiet {uuid.uuid4().hex[:8]} with several words in it"
    thread_id = await make_thread(env, "#script " + json.dumps({"reply": reply}))
    async with env.maker() as session, session.begin():
        run = await create_claimed_run(env, session, thread_id, env.worker.id, stream=False)
        run_id = run.id
        gate = await env.worker.adopt(session, run_id)
    gate.set_result(None)
    await wait_idle(env.worker, 10)
    async with env.maker() as session:
        run = await session.get_one(Run, run_id)
        assert (run.status, run.streamed, run.last_error) == ("completed", False, None)
        assert run.usage is not None
        assert run.usage["completion_tokens"] > 0
        messages = list(await session.scalars(select(Message).where(Message.run_id == run_id)))
        assert [(m.status, m.content[0]["text"]["value"]) for m in messages] == [
            ("completed", reply)
        ]
        steps = list(await session.scalars(select(RunStep).where(RunStep.run_id == run_id)))
        assert [(s.type, s.status) for s in steps] == [("message_creation", "completed")]
        assert steps[0].usage == run.usage
        count = await session.scalar(
            select(func.count()).select_from(RunEvent).where(RunEvent.run_id == run_id)
        )
    assert count == 0


async def test_rolled_back_adopted_run_leaves_nothing(env: Env, chat: ScriptedChatServer) -> None:
    # A slow answer (60 words, 100 ms apart): the executor must drop it, not wait 6 s.
    marker = uuid.uuid4().hex[:8]
    plan = {"reply": " ".join(["word"] * 60), "delay_ms": 100, "tag": marker}
    thread_id = await make_thread(env, "#script " + json.dumps(plan))
    calls_before = len(chat.requests)
    started = time.monotonic()
    created: list[tuple[str, asyncio.Future[None]]] = []

    async def create_then_fail() -> None:
        async with env.maker() as session, session.begin():
            created.append(await _create_adopted(env, session, thread_id))
            # Let the model's stream begin (the first words arrive before the rollback).
            deadline = time.monotonic() + 5
            while len(chat.requests) == calls_before:
                assert time.monotonic() < deadline, "the model was not called"
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.3)
            raise RuntimeError("rolled back on purpose")

    with pytest.raises(RuntimeError, match="rolled back on purpose"):
        await create_then_fail()
    [(run_id, gate)] = created
    gate.set_exception(RunDiscarded(run_id))
    await wait_idle(env.worker, 2)
    assert time.monotonic() - started < 4
    async with env.maker() as session:
        left = {
            "runs": await session.scalar(select(func.count()).where(Run.id == run_id)),
            "events": await session.scalar(select(func.count()).where(RunEvent.run_id == run_id)),
            "messages": await session.scalar(select(func.count()).where(Message.run_id == run_id)),
            "steps": await session.scalar(select(func.count()).where(RunStep.run_id == run_id)),
        }
    assert left == {"runs": 0, "events": 0, "messages": 0, "steps": 0}
    # The thread is free: a run on it goes through (a quick answer this time).
    quick = "#script " + json.dumps({"reply": "again"})
    async with env.maker() as session, session.begin():
        run_id2, gate2 = await _create_adopted(env, session, thread_id, quick)
    gate2.set_result(None)
    await wait_idle(env.worker, 15)
    async with env.maker() as session:
        run2 = await session.get_one(Run, run_id2)
    assert (run2.status, run2.last_error) == ("completed", None)
