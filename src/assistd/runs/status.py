"""The run state machine: every status change goes through ``transition``, which also
produces the matching stream event (or ``move``, for a run that records none)."""

from __future__ import annotations

from typing import Any

from assistd.core.clock import now
from assistd.models import Run
from assistd.models.run import TERMINAL_STATUSES
from assistd.runs.wire import run_data

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
