"""The run sink writes only while its worker owns the run and the run executes: plain batches
(one statement on an autocommit connection) and ORM batches (a transaction) alike; a refused
batch writes nothing. Events keep their order and ids grow in it."""

from __future__ import annotations

import time
import uuid

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from assistd.core.clock import now
from assistd.core.db import transaction
from assistd.engine.sink import Event, LostOwnership, RunSink, plain_row
from assistd.models import Message, Run, RunEvent
from assistd.runs import service as runs_service
from assistd.runs.schemas import RunCreate
from tests.engine.conftest import Env, make_thread

OWNER = "worker-a"


async def _owned_run(env: Env) -> str:
    thread_id = await make_thread(env, "hello")
    async with transaction(env.maker) as session:
        run = await runs_service.create_run(
            session,
            env.settings,
            env.project,
            thread_id,
            RunCreate(assistant_id=env.assistant),
            [],
            adopt=OWNER,
        )
        # A heartbeat far ahead: a session worker's reaper (3 s lease in the tests) leaves it.
        run.heartbeat_at = time.time() + 3600
        return run.id


async def _events(env: Env, run_id: str) -> list[tuple[int, str, dict[str, object]]]:
    async with env.maker() as session:
        rows = await session.execute(
            select(RunEvent.id, RunEvent.event, RunEvent.data)
            .where(RunEvent.run_id == run_id)
            .order_by(RunEvent.id)
        )
        return [(int(i), e, d) for i, e, d in rows]


def _message(env: Env, run_id: str, thread_id: str) -> Message:
    return Message(
        id=f"msg_{uuid.uuid4().hex}",
        project_id=env.project,
        thread_id=thread_id,
        created_at=now(),
        role="assistant",
        content=[{"type": "text", "text": {"value": 'it\'s "quoted" ☃', "annotations": []}}],
        attachments=[],
        metadata_={},
        status="in_progress",
        assistant_id=env.assistant,
        run_id=run_id,
        completed_at=None,
        incomplete_at=None,
        incomplete_details=None,
    )


async def test_plain_batch_inserts_rows_and_ordered_events(env: Env) -> None:
    run_id = await _owned_run(env)
    async with env.maker() as session:
        thread_id = (await session.get_one(Run, run_id)).thread_id
    before = await _events(env, run_id)
    message = _message(env, run_id, thread_id)
    sink = RunSink(env.maker, run_id, owner=OWNER)
    sink.insert_later([plain_row(message)], [("thread.message.created", {"id": message.id})])
    for i in range(30):
        sink.event("thread.message.delta", {"i": i, "text": f"piece {i} ✓"})
    await sink.flush()
    await sink.close()
    after = (await _events(env, run_id))[len(before) :]
    assert [name for _, name, _ in after] == ["thread.message.created"] + [
        "thread.message.delta"
    ] * 30
    assert [data.get("i") for _, _, data in after[1:]] == list(range(30))
    ids = [i for i, _, _ in after]
    assert ids == sorted(ids)
    async with env.maker() as session:
        stored = await session.get_one(Message, message.id)
        assert stored.content == message.content
        assert stored.seq is not None  # filled by the database


@pytest.mark.parametrize("kind", ["plain", "orm"])
async def test_a_sink_that_does_not_own_the_run_writes_nothing(env: Env, kind: str) -> None:
    run_id = await _owned_run(env)
    async with env.maker() as session:
        thread_id = (await session.get_one(Run, run_id)).thread_id
    before = await _events(env, run_id)
    message = _message(env, run_id, thread_id)
    sink = RunSink(env.maker, run_id, owner="worker-b")
    if kind == "plain":
        sink.insert_later([plain_row(message)], [("thread.message.created", {"id": message.id})])
        sink.event("thread.message.delta", {"i": 0})
    else:

        async def op(session: AsyncSession) -> list[Event]:
            session.add(message)
            return [("thread.message.created", {"id": message.id})]

        sink.later(op)
    with pytest.raises(LostOwnership):
        await sink.flush()
    await sink.close()
    assert await _events(env, run_id) == before
    async with env.maker() as session:
        count = await session.scalar(select(func.count()).where(Message.id == message.id))
    assert count == 0


async def test_an_ended_run_takes_no_more_events(env: Env) -> None:
    run_id = await _owned_run(env)
    sink = RunSink(env.maker, run_id, owner=OWNER)
    sink.event("thread.message.delta", {"i": 0})
    await sink.flush()
    async with transaction(env.maker) as session:
        await session.execute(update(Run).where(Run.id == run_id).values(status="completed"))
    before = await _events(env, run_id)
    sink.event("thread.message.delta", {"i": 1})
    with pytest.raises(LostOwnership):
        await sink.flush()
    await sink.close()
    assert await _events(env, run_id) == before
