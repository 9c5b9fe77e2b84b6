"""An HNSW index for 256-dimension embeddings (the local:wordllama model).

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_chunk_embeddings_hnsw_256",
        "chunk_embeddings",
        [sa.literal_column("(embedding::halfvec(256)) halfvec_cosine_ops")],
        unique=False,
        postgresql_using="hnsw",
        postgresql_with={"m": 16, "ef_construction": 64},
        postgresql_where=sa.text("dimension = 256"),
    )


def downgrade() -> None:
    op.drop_index(
        "ix_chunk_embeddings_hnsw_256",
        table_name="chunk_embeddings",
        postgresql_using="hnsw",
        postgresql_where=sa.text("dimension = 256"),
    )
