"""``conversations`` with their ordered ``conversation_items``, and ``containers`` with their
``container_files`` (whose bytes live in file storage).

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def _project_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["project_id"],
        ["projects.id"],
        name=op.f(f"fk_{table}_project_id_projects"),
        ondelete="CASCADE",
    )


def upgrade() -> None:
    op.create_table(
        "conversations",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("project_id", sa.String(), nullable=False),
        sa.Column("seq", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("created_at", sa.Integer(), nullable=False),
        sa.Column("metadata", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        _project_fk("conversations"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_conversations")),
    )
    op.create_index(
        "ix_conversations_project_seq", "conversations", ["project_id", "seq"], unique=False
    )
    op.create_table(
        "conversation_items",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("project_id", sa.String(), nullable=False),
        sa.Column("conversation_id", sa.String(), nullable=False),
        sa.Column("seq", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("created_at", sa.Integer(), nullable=False),
        sa.Column("type", sa.String(), nullable=False),
        sa.Column("data", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        _project_fk("conversation_items"),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name=op.f("fk_conversation_items_conversation_id_conversations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_conversation_items")),
    )
    op.create_index(
        "ix_conversation_items_conversation_seq",
        "conversation_items",
        ["conversation_id", "seq"],
        unique=False,
    )
    op.create_table(
        "containers",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("project_id", sa.String(), nullable=False),
        sa.Column("seq", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("created_at", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("last_active_at", sa.Integer(), nullable=False),
        sa.Column("expires_after_minutes", sa.Integer(), nullable=False),
        sa.Column("memory_limit", sa.String(), nullable=False),
        _project_fk("containers"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_containers")),
    )
    op.create_index("ix_containers_project_seq", "containers", ["project_id", "seq"], unique=False)
    op.create_table(
        "container_files",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("project_id", sa.String(), nullable=False),
        sa.Column("container_id", sa.String(), nullable=False),
        sa.Column("seq", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("created_at", sa.Integer(), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("path", sa.String(), nullable=False),
        sa.Column("source", sa.String(), nullable=False),
        sa.Column("storage_key", sa.String(), nullable=False),
        _project_fk("container_files"),
        sa.ForeignKeyConstraint(
            ["container_id"],
            ["containers.id"],
            name=op.f("fk_container_files_container_id_containers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_container_files")),
    )
    op.create_index(
        "ix_container_files_container_seq",
        "container_files",
        ["container_id", "seq"],
        unique=False,
    )
    op.create_index(
        "uq_container_files_container_id_path",
        "container_files",
        ["container_id", "path"],
        unique=True,
    )


def downgrade() -> None:
    op.drop_index("uq_container_files_container_id_path", table_name="container_files")
    op.drop_index("ix_container_files_container_seq", table_name="container_files")
    op.drop_table("container_files")
    op.drop_index("ix_containers_project_seq", table_name="containers")
    op.drop_table("containers")
    op.drop_index("ix_conversation_items_conversation_seq", table_name="conversation_items")
    op.drop_table("conversation_items")
    op.drop_index("ix_conversations_project_seq", table_name="conversations")
    op.drop_table("conversations")
