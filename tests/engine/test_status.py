"""The run state machine: which moves are legal, what each stamps, and the endings with
their side effects, on the real database (rolled back)."""

from __future__ import annotations

from typing import Any, cast

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from assistd.core import ids
from assistd.core.clock import now
from assistd.core.errors import ConflictingStateError
from assistd.models import Run, RunStep
from assistd.runs import status
from tests.engine.conftest import Env, create_claimed_run, make_thread

NO_SESSION = cast(AsyncSession, None)
"""For moves that must not touch the database (any query would raise)."""


def _run(state: str, **fields: Any) -> Run:
    return Run(id="run_x", status=state, streamed=True, worker_id="w1", heartbeat_at=1.0, **fields)


def test_illegal_moves_raise() -> None:
    with pytest.raises(status.IllegalTransition):
        status.move(_run("completed"), "in_progress")
    with pytest.raises(status.IllegalTransition):
        status.move(_run("queued"), "completed")
    with pytest.raises(status.IllegalTransition):
        status.move(_run("requires_action"), "completed")


def test_moves_stamp_and_release_the_run() -> None:
    run = _run("queued", started_at=None)
    assert status.move(run, "in_progress") == "thread.run.in_progress"
    assert run.started_at is not None
    started = run.started_at
    name, values = status.complete(run)
    assert name == "thread.run.completed"
    assert run.started_at == started
    assert values["status"] == "completed"
    assert values["completed_at"] >= started
    # A finished run has no lease, deadline or pending action left.
    assert (values["worker_id"], values["heartbeat_at"], values["expires_at"]) == (None,) * 3
    assert values["required_action"] is None


async def test_cancel_asks_the_worker_of_an_executing_run() -> None:
    run = _run("in_progress")
    assert await status.cancel(NO_SESSION, run) == ([], True)
    assert run.status == "cancelling"
    # Asking again changes nothing and wakes nobody.
    assert await status.cancel(NO_SESSION, run) == ([], False)
    with pytest.raises(ConflictingStateError):
        await status.cancel(NO_SESSION, _run("completed"))


def _step(run: Run, usage: dict[str, int] | None, state: str = "in_progress") -> RunStep:
    return RunStep(
        id=ids.new_id(ids.STEP),
        project_id=run.project_id,
        run_id=run.id,
        thread_id=run.thread_id,
        assistant_id=run.assistant_id,
        created_at=now(),
        type="tool_calls",
        status=state,
        step_details={"type": "tool_calls", "tool_calls": []},
        metadata_={},
        usage=usage,
    )


async def _claimed(env: Env, session: AsyncSession) -> Run:
    thread_id = await make_thread(env, "hello")
    run = await create_claimed_run(env, session, thread_id, "w-status")
    session.add(
        _step(run, {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}, "completed")
    )
    session.add(_step(run, {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}))
    await session.flush()
    return run


async def test_a_failure_while_cancelling_ends_cancelled(env: Env) -> None:
    async with env.maker() as session, session.begin():
        run = await _claimed(env, session)
        assert run.status == "in_progress"
        await status.cancel(session, run)
        produced = await status.end_executing(session, run, "failed", {"code": "server_error"})
        assert [name for name, _ in produced] == [
            "thread.run.step.cancelled",
            "thread.run.cancelling",
            "thread.run.cancelled",
        ]
        assert run.status == "cancelled"
        assert run.last_error is None
        assert run.usage == {"prompt_tokens": 6, "completion_tokens": 3, "total_tokens": 9}
        # Ended already (by the reaper, say): the executor's ending writes nothing.
        assert await status.end_executing(session, run, "failed") == []
        await session.rollback()


async def test_failed_keeps_the_error_on_the_run_and_its_open_step(env: Env) -> None:
    async with env.maker() as session, session.begin():
        run = await _claimed(env, session)
        error = {"code": "rate_limit_exceeded", "message": "slow down"}
        produced = await status.end(session, run, "failed", error)
        assert [name for name, _ in produced] == ["thread.run.step.failed", "thread.run.failed"]
        assert produced[0][1]["last_error"] == error
        assert produced[-1][1]["last_error"] == error
        assert produced[-1][1]["failed_at"] is not None
        await session.rollback()


async def test_incomplete_cancels_the_open_step(env: Env) -> None:
    async with env.maker() as session, session.begin():
        run = await _claimed(env, session)
        produced = await status.incomplete(session, run, "max_completion_tokens")
        assert [name for name, _ in produced] == [
            "thread.run.step.cancelled",
            "thread.run.incomplete",
        ]
        assert run.incomplete_details == {"reason": "max_completion_tokens"}
        assert run.usage == {"prompt_tokens": 6, "completion_tokens": 3, "total_tokens": 9}
        await session.rollback()


async def test_require_action_hands_over_unless_cancelling(env: Env) -> None:
    action = {"type": "submit_tool_outputs", "submit_tool_outputs": {"tool_calls": []}}
    async with env.maker() as session, session.begin():
        run = await _claimed(env, session)
        (event,) = await status.require_action(session, run, action, now() + 60)
        assert event[0] == "thread.run.requires_action"
        assert (run.worker_id, run.heartbeat_at, run.required_action) == (None, None, action)
        await session.rollback()
    async with env.maker() as session, session.begin():
        run = await _claimed(env, session)
        await status.cancel(session, run)
        produced = await status.require_action(session, run, action, now() + 60)
        assert produced[-1][0] == "thread.run.cancelled"
        assert run.required_action is None
        await session.rollback()


async def test_cancel_ends_a_queued_run_at_once(env: Env) -> None:
    async with env.maker() as session, session.begin():
        run = await _claimed(env, session)
        status.move(run, "requires_action", worker_id=None)
        produced, wake = await status.cancel(session, run)
        assert wake is False
        assert [name for name, _ in produced][-2:] == [
            "thread.run.cancelling",
            "thread.run.cancelled",
        ]
        assert run.cancelled_at is not None
        await session.rollback()
