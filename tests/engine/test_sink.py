"""The run sink writes only while its worker owns the run and the run executes: plain batches
(one statement on an autocommit connection) and ORM batches (a transaction) alike; a refused
batch writes nothing. Events keep their order and ids grow in it."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from assistd.core.clock import now
from assistd.core.db import transaction
from assistd.engine.sink import Event, LostOwnership, RunSink, Update
from assistd.models import Message, Run, RunEvent, RunStep
from assistd.models.rows import plain_row, table_of
from tests.engine.conftest import Env, create_claimed_run, make_thread

OWNER = "worker-a"


async def _owned_run(env: Env) -> str:
    thread_id = await make_thread(env, "hello")
    async with transaction(env.maker) as session:
        return (await create_claimed_run(env, session, thread_id, OWNER)).id


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


def _step(env: Env, run_id: str, thread_id: str, usage: dict[str, int] | None) -> RunStep:
    return RunStep(
        id=f"step_{uuid.uuid4().hex}",
        project_id=env.project,
        run_id=run_id,
        thread_id=thread_id,
        assistant_id=env.assistant,
        created_at=now(),
        type="message_creation",
        status="in_progress",
        step_details={"type": "message_creation", "message_creation": {"message_id": "m"}},
        last_error=None,
        expired_at=None,
        cancelled_at=None,
        failed_at=None,
        completed_at=None,
        metadata_={},
        usage=usage,
    )


@pytest.mark.parametrize("kind", ["plain", "orm"])
async def test_updates_read_back_what_others_changed_and_sum_the_run_usage(
    env: Env, kind: str
) -> None:
    """Closing a message and completing the run: the events carry the metadata the user set
    meanwhile (read back by the update, not the writer's stale copy) and the run's usage is
    the sum over its steps, the step closed in the same batch included."""
    run_id = await _owned_run(env)
    async with env.maker() as session:
        thread_id = (await session.get_one(Run, run_id)).thread_id
    earlier = _step(
        env, run_id, thread_id, {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}
    )
    message = _message(env, run_id, thread_id)
    step = _step(env, run_id, thread_id, None)
    sink = RunSink(env.maker, run_id, owner=OWNER)
    sink.insert_later([plain_row(earlier), plain_row(step), plain_row(message)], [])
    await sink.flush()
    # The user sets metadata on the message and the run while the run goes on.
    async with transaction(env.maker) as session:
        await session.execute(
            update(Message).where(Message.id == message.id).values(metadata_={"k": "user"})
        )
        await session.execute(update(Run).where(Run.id == run_id).values(metadata_={"r": "1"}))
    before = await _events(env, run_id)
    stale = {"id": message.id, "metadata": {}, "status": "completed"}
    usage = {"prompt_tokens": 11, "completion_tokens": 5, "total_tokens": 16}
    close = [
        Update(table_of(Message), message.id, {"status": "completed"}, patch=("metadata",)),
        Update(table_of(RunStep), step.id, {"status": "completed", "usage": usage}),
    ]
    run_done = Update(
        table_of(Run),
        run_id,
        {"status": "completed", "worker_id": None, "heartbeat_at": None},
        patch=("metadata", "usage"),
        run_usage=True,
    )
    if kind == "orm":
        # An ORM op in the batch sends it all through a transaction instead.
        async def op(session: AsyncSession) -> list[Event]:
            return [("thread.run.step.delta", {"orm": True})]

        sink.later(op)
    sink.update_later(
        close,
        [("thread.message.completed", stale, 0), ("thread.run.step.completed", {}, None)],
    )
    await sink.update([run_done], [("thread.run.completed", {"id": run_id, "metadata": {}}, 0)])
    await sink.close()
    after = {name: data for _, name, data in (await _events(env, run_id))[len(before) :]}
    assert after["thread.message.completed"]["metadata"] == {"k": "user"}
    assert after["thread.message.completed"]["status"] == "completed"
    expected = {"prompt_tokens": 18, "completion_tokens": 8, "total_tokens": 26}
    assert after["thread.run.completed"]["metadata"] == {"r": "1"}
    assert after["thread.run.completed"]["usage"] == expected
    async with env.maker() as session:
        run = await session.get_one(Run, run_id)
        assert (run.status, run.usage, run.worker_id) == ("completed", expected, None)
        stored = await session.get_one(Message, message.id)
        assert (stored.status, stored.metadata_) == ("completed", {"k": "user"})


async def test_an_update_of_a_row_inserted_in_the_same_batch_applies(env: Env) -> None:
    run_id = await _owned_run(env)
    async with env.maker() as session:
        thread_id = (await session.get_one(Run, run_id)).thread_id
    message = _message(env, run_id, thread_id)
    sink = RunSink(env.maker, run_id, owner=OWNER)
    sink.insert_later([plain_row(message)], [("thread.message.created", {"id": message.id})])
    sink.update_later(
        [Update(table_of(Message), message.id, {"status": "completed"}, patch=("metadata",))],
        [("thread.message.completed", {"id": message.id, "metadata": None}, 0)],
    )
    await sink.flush()
    await sink.close()
    names = {name: data for _, name, data in await _events(env, run_id)}
    assert names["thread.message.completed"]["metadata"] == {}
    async with env.maker() as session:
        assert (await session.get_one(Message, message.id)).status == "completed"
