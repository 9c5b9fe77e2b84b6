"""Vector stores, their files and batches, chunks and chunk embeddings (pgvector HNSW).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 21:12:29.812310
"""

from __future__ import annotations

from collections.abc import Sequence

import pgvector.sqlalchemy.halfvec
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "vector_stores",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("project_id", sa.String(), nullable=False),
        sa.Column("seq", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("created_at", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(), nullable=True),
        sa.Column("description", sa.String(), nullable=True),
        sa.Column("metadata", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("expires_after", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("expires_at", sa.Integer(), nullable=True),
        sa.Column("last_active_at", sa.Integer(), nullable=True),
        sa.Column("embedding_model", sa.String(), nullable=False),
        sa.Column("dimension", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_vector_stores_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_vector_stores")),
    )
    op.create_index(
        "ix_vector_stores_project_seq", "vector_stores", ["project_id", "seq"], unique=False
    )
    op.create_table(
        "vector_store_file_batches",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("project_id", sa.String(), nullable=False),
        sa.Column("vector_store_id", sa.String(), nullable=False),
        sa.Column("seq", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("created_at", sa.Integer(), nullable=False),
        sa.Column("cancelled", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_vector_store_file_batches_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["vector_store_id"],
            ["vector_stores.id"],
            name=op.f("fk_vector_store_file_batches_vector_store_id_vector_stores"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_vector_store_file_batches")),
    )
    op.create_index(
        "ix_vs_batches_store_seq",
        "vector_store_file_batches",
        ["vector_store_id", "seq"],
        unique=False,
    )
    op.create_table(
        "vector_store_files",
        sa.Column("vector_store_id", sa.String(), nullable=False),
        sa.Column("file_id", sa.String(), nullable=False),
        sa.Column("project_id", sa.String(), nullable=False),
        sa.Column("seq", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("created_at", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("last_error", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("usage_bytes", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("chunking_strategy", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("attributes", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("batch_id", sa.String(), nullable=True),
        sa.Column("worker_id", sa.String(), nullable=True),
        sa.Column("heartbeat_at", sa.Float(), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.ForeignKeyConstraint(
            ["batch_id"],
            ["vector_store_file_batches.id"],
            name=op.f("fk_vector_store_files_batch_id_vector_store_file_batches"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["file_id"],
            ["files.id"],
            name=op.f("fk_vector_store_files_file_id_files"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_vector_store_files_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["vector_store_id"],
            ["vector_stores.id"],
            name=op.f("fk_vector_store_files_vector_store_id_vector_stores"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("vector_store_id", "file_id", name=op.f("pk_vector_store_files")),
    )
    op.create_index("ix_vs_files_batch", "vector_store_files", ["batch_id"], unique=False)
    op.create_index("ix_vs_files_file", "vector_store_files", ["file_id"], unique=False)
    op.create_index(
        "ix_vs_files_pending",
        "vector_store_files",
        ["seq"],
        unique=False,
        postgresql_where=sa.text("status = 'in_progress'"),
    )
    op.create_index(
        "ix_vs_files_store_seq", "vector_store_files", ["vector_store_id", "seq"], unique=False
    )
    op.create_table(
        "chunks",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("vector_store_id", sa.String(), nullable=False),
        sa.Column("file_id", sa.String(), nullable=False),
        sa.Column("chunk_index", sa.Integer(), nullable=False),
        sa.Column("page", sa.Integer(), nullable=True),
        sa.Column("tokens", sa.Integer(), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("attributes", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column(
            "tsv",
            postgresql.TSVECTOR(),
            sa.Computed("to_tsvector('english', content)", persisted=True),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["vector_store_id", "file_id"],
            ["vector_store_files.vector_store_id", "vector_store_files.file_id"],
            name=op.f("fk_chunks_vector_store_id_vector_store_files"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_chunks")),
    )
    op.create_index("ix_chunks_store_file", "chunks", ["vector_store_id", "file_id"], unique=False)
    op.create_index("ix_chunks_tsv", "chunks", ["tsv"], unique=False, postgresql_using="gin")
    op.create_table(
        "chunk_embeddings",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("chunk_id", sa.BigInteger(), nullable=False),
        sa.Column("vector_store_id", sa.String(), nullable=False),
        sa.Column("file_id", sa.String(), nullable=False),
        sa.Column("dimension", sa.Integer(), nullable=False),
        sa.Column("embedding", pgvector.sqlalchemy.halfvec.HALFVEC(), nullable=False),
        sa.ForeignKeyConstraint(
            ["chunk_id"],
            ["chunks.id"],
            name=op.f("fk_chunk_embeddings_chunk_id_chunks"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["vector_store_id"],
            ["vector_stores.id"],
            name=op.f("fk_chunk_embeddings_vector_store_id_vector_stores"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_chunk_embeddings")),
    )
    op.create_index(
        op.f("ix_chunk_embeddings_chunk_id"), "chunk_embeddings", ["chunk_id"], unique=False
    )
    op.create_index(
        "ix_chunk_embeddings_hnsw_1536",
        "chunk_embeddings",
        [sa.literal_column("(embedding::halfvec(1536)) halfvec_cosine_ops")],
        unique=False,
        postgresql_using="hnsw",
        postgresql_with={"m": 16, "ef_construction": 64},
        postgresql_where=sa.text("dimension = 1536"),
    )
    op.create_index(
        "ix_chunk_embeddings_hnsw_384",
        "chunk_embeddings",
        [sa.literal_column("(embedding::halfvec(384)) halfvec_cosine_ops")],
        unique=False,
        postgresql_using="hnsw",
        postgresql_with={"m": 16, "ef_construction": 64},
        postgresql_where=sa.text("dimension = 384"),
    )
    op.create_index(
        "ix_chunk_embeddings_store",
        "chunk_embeddings",
        ["vector_store_id", "file_id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_chunk_embeddings_store", table_name="chunk_embeddings")
    op.drop_index(
        "ix_chunk_embeddings_hnsw_384",
        table_name="chunk_embeddings",
        postgresql_using="hnsw",
        postgresql_with={"m": 16, "ef_construction": 64},
        postgresql_where=sa.text("dimension = 384"),
    )
    op.drop_index(
        "ix_chunk_embeddings_hnsw_1536",
        table_name="chunk_embeddings",
        postgresql_using="hnsw",
        postgresql_with={"m": 16, "ef_construction": 64},
        postgresql_where=sa.text("dimension = 1536"),
    )
    op.drop_index(op.f("ix_chunk_embeddings_chunk_id"), table_name="chunk_embeddings")
    op.drop_table("chunk_embeddings")
    op.drop_index("ix_chunks_tsv", table_name="chunks", postgresql_using="gin")
    op.drop_index("ix_chunks_store_file", table_name="chunks")
    op.drop_table("chunks")
    op.drop_index("ix_vs_files_store_seq", table_name="vector_store_files")
    op.drop_index(
        "ix_vs_files_pending",
        table_name="vector_store_files",
        postgresql_where=sa.text("status = 'in_progress'"),
    )
    op.drop_index("ix_vs_files_file", table_name="vector_store_files")
    op.drop_index("ix_vs_files_batch", table_name="vector_store_files")
    op.drop_table("vector_store_files")
    op.drop_index("ix_vs_batches_store_seq", table_name="vector_store_file_batches")
    op.drop_table("vector_store_file_batches")
    op.drop_index("ix_vector_stores_project_seq", table_name="vector_stores")
    op.drop_table("vector_stores")
