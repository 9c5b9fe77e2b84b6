"""Threads and their messages."""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, text
from sqlalchemy.orm import Mapped, mapped_column

from assistd.models.base import Base, seq_column


class Thread(Base):
    """A conversation."""

    __tablename__ = "threads"

    id: Mapped[str] = mapped_column(primary_key=True)
    project_id: Mapped[str] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    seq: Mapped[int] = seq_column()
    created_at: Mapped[int] = mapped_column(Integer)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata")
    tool_resources: Mapped[dict[str, Any]]
    version: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    """Bumped by every message added or deleted and every run created (migration 0008 says
    why)."""


class Message(Base):
    """One message of a thread; ``content`` holds the wire-shaped content parts."""

    __tablename__ = "messages"
    __table_args__ = (Index("ix_messages_thread_seq", "thread_id", "seq"),)

    id: Mapped[str] = mapped_column(primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    thread_id: Mapped[str] = mapped_column(ForeignKey("threads.id", ondelete="CASCADE"))
    seq: Mapped[int] = seq_column()
    created_at: Mapped[int] = mapped_column(Integer)
    role: Mapped[str]
    content: Mapped[list[Any]]
    attachments: Mapped[list[Any]]
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata")
    status: Mapped[str]
    assistant_id: Mapped[str | None]
    run_id: Mapped[str | None] = mapped_column(index=True)
    completed_at: Mapped[int | None] = mapped_column(Integer)
    incomplete_at: Mapped[int | None] = mapped_column(Integer)
    incomplete_details: Mapped[dict[str, Any] | None]
