"""The run state machine, the only writer of a run's status, usage and ending.

Every status change goes through ``move`` (``transition`` also returns the matching stream
event); the endings (completed, incomplete, failed, cancelled, expired) and cancelling are
the functions below, which callers run on a locked run and whose events they append.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from assistd.core.clock import now
from assistd.core.db import execute_in
from assistd.core.errors import ConflictingStateError
from assistd.models import Run
from assistd.models.run import TERMINAL_STATUSES
from assistd.runs import lifecycle
from assistd.runs.wire import run_data

Event = tuple[str, dict[str, Any]]

EXECUTING = ("in_progress", "cancelling")
"""The statuses of a run a worker executes (and heartbeats)."""

ALLOWED: dict[str, frozenset[str]] = {
    "queued": frozenset({"in_progress", "cancelling", "failed", "expired"}),
    "in_progress": frozenset(
        {"requires_action", "completed", "incomplete", "failed", "cancelling", "expired"}
    ),
    "requires_action": frozenset({"queued", "cancelling", "failed", "expired"}),
    "cancelling": frozenset({"cancelled", "completed", "incomplete", "failed", "expired"}),
}


class IllegalTransition(RuntimeError):
    """A status change the lifecycle does not allow (a bug, never user input)."""


def transition(run: Run, new: str, **fields: Any) -> tuple[str, dict[str, Any]]:
    """Move ``run`` to ``new``, stamp its timestamps, and return the stream event."""
    return move(run, new, **fields), run_data(run)


def recorded(run: Run, new: str, **fields: Any) -> list[tuple[str, dict[str, Any]]]:
    """Move ``run`` to ``new``; the stream event to record, if the run records events
    (``Run.streamed``), else none."""
    if run.streamed:
        return [transition(run, new, **fields)]
    move(run, new, **fields)
    return []


def move(run: Run, new: str, **fields: Any) -> str:
    """Move ``run`` to ``new`` and stamp its timestamps (as ``transition``, for a run that
    records no stream events); the name of the event it would send."""
    if new not in ALLOWED.get(run.status, frozenset()):
        raise IllegalTransition(f"run {run.id}: {run.status} -> {new}")
    stamp = now()
    run.status = new
    for key, value in fields.items():
        setattr(run, key, value)
    if new == "in_progress" and run.started_at is None:
        run.started_at = stamp
    if new != "requires_action":
        run.required_action = None
    if new == "cancelled":
        run.cancelled_at = stamp
    elif new == "failed":
        run.failed_at = stamp
    elif new == "completed":
        run.completed_at = stamp
    if new in TERMINAL_STATUSES:
        run.expires_at = None
        run.worker_id = None
        run.heartbeat_at = None
    return f"thread.run.{new}"


RUN_USAGE = (
    "SELECT jsonb_build_object('prompt_tokens', p, 'completion_tokens', c,"
    " 'total_tokens', p + c) FROM (SELECT"
    " coalesce(sum((usage->>'prompt_tokens')::bigint), 0) + %(xp)s AS p,"
    " coalesce(sum((usage->>'completion_tokens')::bigint), 0) + %(xc)s AS c"
    " FROM run_steps WHERE run_id = %(run)s AND NOT (id = ANY(%(xids)s))) AS t"
)
"""A run's usage: the sum over its steps (the only place it is summed). A statement that
also updates steps does not see its own updates (one snapshot): it leaves those steps out
(``xids``) and adds their new usage (``xp``, ``xc``)."""


async def usage_total(session: AsyncSession, run_id: str) -> dict[str, int]:
    """The run's usage, summed over its steps as they are in this transaction."""
    await session.flush()
    ((total,),) = await execute_in(
        session, RUN_USAGE, {"run": run_id, "xp": 0, "xc": 0, "xids": []}
    )
    return {k: int(v) for k, v in total.items()}


def complete(run: Run) -> tuple[str, dict[str, Any]]:
    """Move ``run`` to ``completed``; its event's name and the columns to write (the writer
    also sets ``usage``, summed over the steps in the same statement)."""
    name = move(run, "completed")
    columns = (
        "status",
        "completed_at",
        "expires_at",
        "worker_id",
        "heartbeat_at",
        "required_action",
    )
    return name, {column: getattr(run, column) for column in columns}


async def incomplete(session: AsyncSession, run: Run, reason: str) -> list[Event]:
    """End ``run`` ``incomplete`` for ``reason``; a step still open (tool calls the model was
    writing when cut) is cancelled, as nothing will run it."""
    out = await lifecycle.cancel_open_steps(session, run)
    usage = await usage_total(session, run.id)
    out.append(transition(run, "incomplete", usage=usage, incomplete_details={"reason": reason}))
    return out


async def require_action(
    session: AsyncSession, run: Run, action: dict[str, Any], expires_at: int
) -> list[Event]:
    """Hand ``run`` to the client to run its functions (a run being cancelled ends
    ``cancelled`` instead)."""
    if run.status == "cancelling":
        return await end(session, run, "cancelled")
    return [
        transition(
            run,
            "requires_action",
            required_action=action,
            expires_at=expires_at,
            worker_id=None,
            heartbeat_at=None,
        )
    ]


async def end(
    session: AsyncSession, run: Run, outcome: str, last_error: dict[str, Any] | None = None
) -> list[Event]:
    """End ``run`` ``cancelled``, ``failed`` or ``expired`` with every side effect (open
    messages incomplete, open steps ended, usage summed); a run failing while it was being
    cancelled ends ``cancelled``."""
    if outcome == "failed" and run.status == "cancelling":
        outcome = "cancelled"
    out = await lifecycle.close_open_work(session, run, outcome, last_error)
    if outcome == "cancelled":
        if run.status == "cancelling":
            # The API only flips the status of a run a worker owns; the owner reports it.
            out.append(("thread.run.cancelling", run_data(run)))
        else:
            out.append(transition(run, "cancelling"))
    fields: dict[str, Any] = {"usage": await usage_total(session, run.id)}
    if outcome == "failed":
        fields["last_error"] = last_error
    out.append(transition(run, outcome, **fields))
    return out


async def end_executing(
    session: AsyncSession, run: Run, outcome: str, last_error: dict[str, Any] | None = None
) -> list[Event]:
    """``end`` for the run's executor: nothing when someone else (the reaper) ended it."""
    if run.status not in EXECUTING:
        return []
    return await end(session, run, outcome, last_error)


async def cancel(session: AsyncSession, run: Run) -> tuple[list[Event], bool]:
    """Cancel ``run`` at once when nobody executes it, or mark it ``cancelling`` for its
    worker to end (True: wake the workers); the events to append."""
    if run.status in ("queued", "requires_action"):
        return await end(session, run, "cancelled"), False
    if run.status == "in_progress":
        # No event: the worker owns the run's event log and reports cancelling → cancelled.
        move(run, "cancelling")
        return [], True
    if run.status != "cancelling":
        raise ConflictingStateError(
            f"Cannot cancel run with status '{run.status}'.", param="run_id"
        )
    return [], False
