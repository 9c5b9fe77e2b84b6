"""Uploaded and generated files (the bytes live in file storage)."""

from __future__ import annotations

from sqlalchemy import BigInteger, ForeignKey, Index, Integer
from sqlalchemy.orm import Mapped, mapped_column

from assistd.models.base import Base, seq_column


class File(Base):
    """File metadata; ``storage_key`` locates the bytes in the storage backend."""

    __tablename__ = "files"
    __table_args__ = (Index("ix_files_project_seq", "project_id", "seq"),)

    id: Mapped[str] = mapped_column(primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    seq: Mapped[int] = seq_column()
    created_at: Mapped[int] = mapped_column(Integer)
    bytes: Mapped[int] = mapped_column(BigInteger)
    filename: Mapped[str]
    purpose: Mapped[str]
    status: Mapped[str]
    status_details: Mapped[str | None]
    expires_at: Mapped[int | None] = mapped_column(Integer)
    storage_key: Mapped[str]
