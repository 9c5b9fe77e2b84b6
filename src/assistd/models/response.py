"""Responses: a Responses API request, executed as a run on a thread of its own."""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer
from sqlalchemy.orm import Mapped, mapped_column

from assistd.models.base import Base, seq_column


class StoredResponse(Base):
    """A response: its request (``params``, echoed on the wire) and input items; the output is
    what its run wrote (messages and steps on ``thread_id``, which it owns)."""

    __tablename__ = "responses"
    __table_args__ = (
        Index("ix_responses_project_seq", "project_id", "seq"),
        Index("ix_responses_run_id", "run_id", unique=True),
    )

    id: Mapped[str] = mapped_column(primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    seq: Mapped[int] = seq_column()
    created_at: Mapped[int] = mapped_column(Integer)
    thread_id: Mapped[str] = mapped_column(ForeignKey("threads.id", ondelete="CASCADE"))
    run_id: Mapped[str]
    previous_response_id: Mapped[str | None]
    conversation_id: Mapped[str | None] = mapped_column(
        ForeignKey("conversations.id", ondelete="SET NULL")
    )
    container_id: Mapped[str | None] = mapped_column(
        ForeignKey("containers.id", ondelete="SET NULL")
    )
    """The container code_interpreter runs in (made at creation for ``container: auto``)."""
    context_seq: Mapped[int | None] = mapped_column(BigInteger)
    """The conversation's items up to this ``seq`` (this response's input included) are
    the response's context."""
    input: Mapped[list[Any]]
    params: Mapped[dict[str, Any]]
    store: Mapped[bool] = mapped_column(Boolean)
    background: Mapped[bool] = mapped_column(Boolean)
