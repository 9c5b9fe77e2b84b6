"""Runs (also the work queue), their steps, and the stream event log."""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Identity,
    Index,
    Integer,
    text,
    true,
)
from sqlalchemy.orm import Mapped, mapped_column

from assistd.models.base import Base, seq_column

ACTIVE_STATUSES = ("queued", "in_progress", "requires_action", "cancelling")
TERMINAL_STATUSES = ("completed", "failed", "cancelled", "expired", "incomplete")


class Run(Base):
    """One execution of an assistant on a thread; the ``runs`` table is the queue.

    Queue columns: ``worker_id`` and ``heartbeat_at`` (epoch seconds, float) are set while a
    worker owns the run; a partial unique index allows one active run per thread.
    """

    __tablename__ = "runs"
    __table_args__ = (
        Index("ix_runs_thread_seq", "thread_id", "seq"),
        Index(
            "uq_runs_one_active_per_thread",
            "thread_id",
            unique=True,
            postgresql_where=text(
                "status IN ('queued', 'in_progress', 'requires_action', 'cancelling')"
            ),
        ),
        Index("ix_runs_queued", "seq", postgresql_where=text("status = 'queued'")),
        Index(
            "ix_runs_owned",
            "worker_id",
            postgresql_where=text("status IN ('in_progress', 'cancelling')"),
        ),
    )

    id: Mapped[str] = mapped_column(primary_key=True)
    project_id: Mapped[str] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    thread_id: Mapped[str] = mapped_column(ForeignKey("threads.id", ondelete="CASCADE"))
    assistant_id: Mapped[str]
    seq: Mapped[int] = seq_column()
    created_at: Mapped[int] = mapped_column(Integer)
    status: Mapped[str]
    started_at: Mapped[int | None] = mapped_column(Integer)
    expires_at: Mapped[int | None] = mapped_column(Integer)
    cancelled_at: Mapped[int | None] = mapped_column(Integer)
    failed_at: Mapped[int | None] = mapped_column(Integer)
    completed_at: Mapped[int | None] = mapped_column(Integer)
    required_action: Mapped[dict[str, Any] | None]
    last_error: Mapped[dict[str, Any] | None]
    incomplete_details: Mapped[dict[str, Any] | None]
    model: Mapped[str]
    instructions: Mapped[str]
    tools: Mapped[list[Any]]
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata")
    usage: Mapped[dict[str, Any] | None]
    temperature: Mapped[float | None]
    top_p: Mapped[float | None]
    max_prompt_tokens: Mapped[int | None] = mapped_column(Integer)
    max_completion_tokens: Mapped[int | None] = mapped_column(Integer)
    truncation_strategy: Mapped[dict[str, Any]]
    tool_choice: Mapped[Any] = mapped_column(Base.type_annotation_map[dict[str, Any]])
    parallel_tool_calls: Mapped[bool] = mapped_column(Boolean)
    response_format: Mapped[Any] = mapped_column(Base.type_annotation_map[dict[str, Any]])
    reasoning_effort: Mapped[str | None]
    include: Mapped[list[Any]]
    worker_id: Mapped[str | None]
    heartbeat_at: Mapped[float | None] = mapped_column(Float)
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    streamed: Mapped[bool] = mapped_column(Boolean, server_default=true())
    """Whether the request that started the run's current part (creating it, or submitting
    tool outputs) streams it: only then are stream events written (nothing else reads
    them)."""
    api: Mapped[str] = mapped_column(server_default="assistants")
    """The API the run serves: ``assistants``, or ``responses`` (a response's execution)."""


class RunStep(Base):
    """A step of a run: one message creation, or the tool calls of one model turn."""

    __tablename__ = "run_steps"
    __table_args__ = (Index("ix_run_steps_run_seq", "run_id", "seq"),)

    id: Mapped[str] = mapped_column(primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    thread_id: Mapped[str]
    assistant_id: Mapped[str]
    seq: Mapped[int] = seq_column()
    created_at: Mapped[int] = mapped_column(Integer)
    type: Mapped[str]
    status: Mapped[str]
    step_details: Mapped[dict[str, Any]]
    last_error: Mapped[dict[str, Any] | None]
    expired_at: Mapped[int | None] = mapped_column(Integer)
    cancelled_at: Mapped[int | None] = mapped_column(Integer)
    failed_at: Mapped[int | None] = mapped_column(Integer)
    completed_at: Mapped[int | None] = mapped_column(Integer)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata")
    usage: Mapped[dict[str, Any] | None]


class RunEvent(Base):
    """One stream event of a run, written by the run's single current owner, in order.

    API processes tail this table (woken by NOTIFY) to stream a run executing anywhere.
    """

    __tablename__ = "run_events"
    __table_args__ = (Index("ix_run_events_run_id", "run_id", "id"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    event: Mapped[str]
    data: Mapped[dict[str, Any]]
    created_at: Mapped[float] = mapped_column(Float)


class RunWatcher(Base):
    """A stream tail of a run in a process that does not write the run: while the run has
    one, its event inserts send a ``NOTIFY`` (the trigger of migration 0006). An unlogged
    table: soft state, lost in a crash (tails then fall back to polling)."""

    __tablename__ = "run_watchers"
    __table_args__ = {"prefixes": ["UNLOGGED"]}

    run_id: Mapped[str] = mapped_column(primary_key=True)
    watcher: Mapped[str] = mapped_column(primary_key=True)
    since: Mapped[float] = mapped_column(Float)
