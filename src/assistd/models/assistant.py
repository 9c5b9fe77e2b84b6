"""Assistants."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ForeignKey, Index, Integer
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from assistd.models.base import Base, seq_column


class Assistant(Base):
    """An assistant: model, instructions and tools."""

    __tablename__ = "assistants"
    __table_args__ = (Index("ix_assistants_project_seq", "project_id", "seq"),)

    id: Mapped[str] = mapped_column(primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    seq: Mapped[int] = seq_column()
    created_at: Mapped[int] = mapped_column(Integer)
    name: Mapped[str | None]
    description: Mapped[str | None]
    model: Mapped[str]
    instructions: Mapped[str | None]
    tools: Mapped[list[Any]]
    tool_resources: Mapped[dict[str, Any]]
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata")
    temperature: Mapped[float | None]
    top_p: Mapped[float | None]
    response_format: Mapped[Any] = mapped_column(JSONB)
    reasoning_effort: Mapped[str | None]
