"""``runs.streamed``: whether the request that started the run's current part (creating it,
or submitting tool outputs) streams it. Stream events are written only then: nothing else
reads them, and a run created without ``stream`` spent a third of its database work and a
sixth of the server's on events nobody could ever receive.

Existing runs keep recording events (the default).

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "runs", sa.Column("streamed", sa.Boolean(), server_default=sa.true(), nullable=False)
    )


def downgrade() -> None:
    op.drop_column("runs", "streamed")
