"""Uploads: a file sent in parts (``/uploads``), assembled into a ``File`` on completion."""

from __future__ import annotations

from sqlalchemy import BigInteger, ForeignKey, Index, Integer
from sqlalchemy.orm import Mapped, mapped_column

from assistd.models.base import Base


class Upload(Base):
    """An upload in progress or finished; ``file_id`` is set once it is completed."""

    __tablename__ = "uploads"
    __table_args__ = (Index("ix_uploads_status_expires_at", "status", "expires_at"),)

    id: Mapped[str] = mapped_column(primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    created_at: Mapped[int] = mapped_column(Integer)
    expires_at: Mapped[int] = mapped_column(Integer)
    bytes: Mapped[int] = mapped_column(BigInteger)
    filename: Mapped[str]
    purpose: Mapped[str]
    mime_type: Mapped[str]
    status: Mapped[str]
    """``pending``, ``completed`` or ``cancelled``; a pending one past ``expires_at`` is
    reported ``expired``."""
    file_expires_after: Mapped[int | None] = mapped_column(Integer)
    """The created file's ``expires_after.seconds``, if the upload asked for one."""
    file_id: Mapped[str | None] = mapped_column(ForeignKey("files.id", ondelete="SET NULL"))


class UploadPart(Base):
    """One part's bytes in file storage under ``storage_key``."""

    __tablename__ = "upload_parts"
    __table_args__ = (Index("ix_upload_parts_upload_id", "upload_id"),)

    id: Mapped[str] = mapped_column(primary_key=True)
    upload_id: Mapped[str] = mapped_column(ForeignKey("uploads.id", ondelete="CASCADE"))
    created_at: Mapped[int] = mapped_column(Integer)
    bytes: Mapped[int] = mapped_column(BigInteger)
    storage_key: Mapped[str]
