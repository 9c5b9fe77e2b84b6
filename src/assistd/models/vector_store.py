"""Vector stores, their files and batches, and the searchable chunks of each file."""

from __future__ import annotations

from typing import Any

from pgvector.sqlalchemy import HALFVEC
from sqlalchemy import (
    BigInteger,
    Computed,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Identity,
    Index,
    Integer,
    PrimaryKeyConstraint,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import TSVECTOR
from sqlalchemy.orm import Mapped, mapped_column

from assistd.models.base import Base, seq_column

INDEXED_DIMENSIONS = (256, 384, 1536)
"""Embedding sizes with an HNSW index: the local MiniLM model and OpenAI's small model."""


class VectorStore(Base):
    """A searchable collection of files. ``status``, ``file_counts`` and ``usage_bytes`` are
    derived from its files when read; ``embedding_model``/``dimension`` are fixed at creation
    so vectors of different models never mix."""

    __tablename__ = "vector_stores"
    __table_args__ = (Index("ix_vector_stores_project_seq", "project_id", "seq"),)

    id: Mapped[str] = mapped_column(primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    seq: Mapped[int] = seq_column()
    created_at: Mapped[int] = mapped_column(Integer)
    name: Mapped[str | None]
    description: Mapped[str | None]
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata")
    expires_after: Mapped[dict[str, Any] | None]
    expires_at: Mapped[int | None] = mapped_column(Integer)
    last_active_at: Mapped[int | None] = mapped_column(Integer)
    embedding_model: Mapped[str]
    dimension: Mapped[int] = mapped_column(Integer)


class VectorStoreFileBatch(Base):
    """A batch of files added together; its counts are derived from its files."""

    __tablename__ = "vector_store_file_batches"
    __table_args__ = (Index("ix_vs_batches_store_seq", "vector_store_id", "seq"),)

    id: Mapped[str] = mapped_column(primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    vector_store_id: Mapped[str] = mapped_column(ForeignKey("vector_stores.id", ondelete="CASCADE"))
    seq: Mapped[int] = seq_column()
    created_at: Mapped[int] = mapped_column(Integer)
    cancelled: Mapped[bool] = mapped_column(server_default=text("false"))


class VectorStoreFile(Base):
    """A file in a vector store; also the ingestion queue (status ``in_progress``)."""

    __tablename__ = "vector_store_files"
    __table_args__ = (
        PrimaryKeyConstraint("vector_store_id", "file_id"),
        Index("ix_vs_files_store_seq", "vector_store_id", "seq"),
        Index("ix_vs_files_file", "file_id"),
        Index("ix_vs_files_batch", "batch_id"),
        Index("ix_vs_files_pending", "seq", postgresql_where=text("status = 'in_progress'")),
    )

    vector_store_id: Mapped[str] = mapped_column(ForeignKey("vector_stores.id", ondelete="CASCADE"))
    file_id: Mapped[str] = mapped_column(ForeignKey("files.id", ondelete="CASCADE"))
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    seq: Mapped[int] = seq_column()
    created_at: Mapped[int] = mapped_column(Integer)
    status: Mapped[str]
    last_error: Mapped[dict[str, Any] | None]
    usage_bytes: Mapped[int] = mapped_column(BigInteger, server_default="0")
    chunking_strategy: Mapped[dict[str, Any]]
    attributes: Mapped[dict[str, Any]]
    batch_id: Mapped[str | None] = mapped_column(
        ForeignKey("vector_store_file_batches.id", ondelete="SET NULL")
    )
    worker_id: Mapped[str | None]
    heartbeat_at: Mapped[float | None] = mapped_column(Float)
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")


class Chunk(Base):
    """A piece of a file's text (token-based chunking), with its full-text vector."""

    __tablename__ = "chunks"
    __table_args__ = (
        # Chunks go with their vector-store file (and so with the File or the store).
        ForeignKeyConstraint(
            ["vector_store_id", "file_id"],
            ["vector_store_files.vector_store_id", "vector_store_files.file_id"],
            ondelete="CASCADE",
        ),
        Index("ix_chunks_store_file", "vector_store_id", "file_id"),
        Index("ix_chunks_tsv", "tsv", postgresql_using="gin"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    vector_store_id: Mapped[str]
    file_id: Mapped[str]
    chunk_index: Mapped[int] = mapped_column(Integer)
    page: Mapped[int | None] = mapped_column(Integer)
    tokens: Mapped[int] = mapped_column(Integer)
    content: Mapped[str] = mapped_column(Text)
    attributes: Mapped[dict[str, Any]]
    tsv: Mapped[Any] = mapped_column(
        TSVECTOR, Computed("to_tsvector('english', content)", persisted=True)
    )


class ChunkEmbedding(Base):
    """One embedded window of a chunk (the local model reads only ~256 wordpieces, so a
    chunk has several). ``embedding`` has no fixed size; per-dimension partial HNSW indexes
    (see the migration) serve each model."""

    __tablename__ = "chunk_embeddings"
    __table_args__ = (
        Index("ix_chunk_embeddings_store", "vector_store_id", "file_id"),
        *(
            Index(
                f"ix_chunk_embeddings_hnsw_{dim}",
                text(f"(embedding::halfvec({dim})) halfvec_cosine_ops"),
                postgresql_using="hnsw",
                postgresql_with={"m": 16, "ef_construction": 64},
                postgresql_where=text(f"dimension = {dim}"),
            )
            for dim in INDEXED_DIMENSIONS
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    chunk_id: Mapped[int] = mapped_column(ForeignKey("chunks.id", ondelete="CASCADE"), index=True)
    vector_store_id: Mapped[str] = mapped_column(ForeignKey("vector_stores.id", ondelete="CASCADE"))
    file_id: Mapped[str]
    dimension: Mapped[int] = mapped_column(Integer)
    embedding: Mapped[Any] = mapped_column(HALFVEC())
