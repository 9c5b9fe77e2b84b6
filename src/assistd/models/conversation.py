"""Conversations (the Responses API's threads) and their ordered items."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ForeignKey, Index, Integer
from sqlalchemy.orm import Mapped, mapped_column

from assistd.models.base import Base, seq_column


class Conversation(Base):
    """An ordered list of Responses API items."""

    __tablename__ = "conversations"
    __table_args__ = (Index("ix_conversations_project_seq", "project_id", "seq"),)

    id: Mapped[str] = mapped_column(primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    seq: Mapped[int] = seq_column()
    created_at: Mapped[int] = mapped_column(Integer)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata")


class ConversationItem(Base):
    """One item of a conversation; ``data`` is its wire shape (``id`` included)."""

    __tablename__ = "conversation_items"
    __table_args__ = (Index("ix_conversation_items_conversation_seq", "conversation_id", "seq"),)

    id: Mapped[str] = mapped_column(primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    conversation_id: Mapped[str] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    seq: Mapped[int] = seq_column()
    created_at: Mapped[int] = mapped_column(Integer)
    type: Mapped[str]
    data: Mapped[dict[str, Any]]
