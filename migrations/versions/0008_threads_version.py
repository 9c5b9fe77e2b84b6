"""``threads.version``: counts changes to what a thread's next run reads (adding or deleting
a message, creating a run, each bumps it under the thread's row lock).

A run created without a transaction reads the thread, its assistant and its messages in one
statement and starts the model at once, while a second statement locks the thread, bumps its
version and inserts the run. The version it reads is the thread's latest: the version first
read plus one means nothing came or went in between (no message, no run that might have
added its own), so the context the model was given is the thread as of the run's creation;
otherwise the run's context is read again.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "threads",
        sa.Column("version", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
    )


def downgrade() -> None:
    op.drop_column("threads", "version")
