"""Containers (code_interpreter sandbox sessions of the Responses API) and their files."""

from __future__ import annotations

from sqlalchemy import BigInteger, ForeignKey, Index, Integer
from sqlalchemy.orm import Mapped, mapped_column

from assistd.models.base import Base, seq_column


class Container(Base):
    """A sandbox session keyed by the container id; it expires ``expires_after_minutes``
    after ``last_active_at``."""

    __tablename__ = "containers"
    __table_args__ = (Index("ix_containers_project_seq", "project_id", "seq"),)

    id: Mapped[str] = mapped_column(primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    seq: Mapped[int] = seq_column()
    created_at: Mapped[int] = mapped_column(Integer)
    name: Mapped[str]
    last_active_at: Mapped[int] = mapped_column(Integer)
    expires_after_minutes: Mapped[int] = mapped_column(Integer)
    memory_limit: Mapped[str]


class ContainerFile(Base):
    """A file under /mnt/data of a container; its bytes are in file storage."""

    __tablename__ = "container_files"
    __table_args__ = (
        Index("ix_container_files_container_seq", "container_id", "seq"),
        Index("uq_container_files_container_id_path", "container_id", "path", unique=True),
    )

    id: Mapped[str] = mapped_column(primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    container_id: Mapped[str] = mapped_column(ForeignKey("containers.id", ondelete="CASCADE"))
    seq: Mapped[int] = seq_column()
    created_at: Mapped[int] = mapped_column(Integer)
    bytes: Mapped[int] = mapped_column(BigInteger)
    path: Mapped[str]
    source: Mapped[str]
    storage_key: Mapped[str]
