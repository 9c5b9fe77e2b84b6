"""Ending runs: the side effects the endings in ``runs.status`` share (messages left
incomplete, steps closed) and the events they produce, in the order the SDK expects."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from assistd.core.clock import now
from assistd.messages.service import to_wire as message_to_wire
from assistd.models import Message, Run, RunStep
from assistd.runs.wire import step_data

Event = tuple[str, dict[str, Any]]

_MESSAGE_REASON = {
    "cancelled": "run_cancelled",
    "failed": "run_failed",
    "expired": "run_expired",
}
_STEP_STATUS = {"cancelled": "cancelled", "failed": "failed", "expired": "expired"}


async def lock_run(session: AsyncSession, run_id: str) -> Run:
    """The run row, locked for this transaction."""
    run = await session.scalar(select(Run).where(Run.id == run_id).with_for_update())
    if run is None:
        raise LookupError(run_id)
    return run


async def cancel_open_steps(session: AsyncSession, run: Run) -> list[Event]:
    """Cancel the run's in-progress steps (a run ending ``incomplete`` runs none of them)."""
    out: list[Event] = []
    stamp = now()
    steps = await session.scalars(
        select(RunStep)
        .where(RunStep.run_id == run.id, RunStep.status == "in_progress")
        .order_by(RunStep.seq)
    )
    for step in steps:
        step.status = "cancelled"
        step.cancelled_at = stamp
        out.append(("thread.run.step.cancelled", step_data(step, run.include)))
    return out


async def close_open_work(
    session: AsyncSession, run: Run, outcome: str, last_error: dict[str, Any] | None
) -> list[Event]:
    """Mark the run's in-progress messages incomplete and in-progress steps ended."""
    out: list[Event] = []
    stamp = now()
    messages = await session.scalars(
        select(Message).where(Message.run_id == run.id, Message.status == "in_progress")
    )
    for message in messages:
        message.status = "incomplete"
        message.incomplete_at = stamp
        message.incomplete_details = {"reason": _MESSAGE_REASON[outcome]}
        out.append(("thread.message.incomplete", message_to_wire(message).model_dump(mode="json")))
    steps = await session.scalars(
        select(RunStep)
        .where(RunStep.run_id == run.id, RunStep.status == "in_progress")
        .order_by(RunStep.seq)
    )
    for step in steps:
        status = _STEP_STATUS[outcome]
        step.status = status
        setattr(step, f"{status}_at", stamp)
        if status == "failed":
            step.last_error = last_error
        out.append((f"thread.run.step.{status}", step_data(step, run.include)))
    return out
