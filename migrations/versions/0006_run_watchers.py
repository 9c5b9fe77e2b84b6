"""Notify only for watched runs: a stream tail in a process that does not write the run
registers in ``run_watchers`` (unlogged: it is soft state), and the run-events trigger sends
its ``NOTIFY`` only for runs that have a watcher. Tails in the writer's own process take the
events from memory, and polling clients need no wake-up at all, so most runs send none.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "run_watchers",
        sa.Column("run_id", sa.String(), nullable=False),
        sa.Column("watcher", sa.String(), nullable=False),
        sa.Column("since", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("run_id", "watcher", name=op.f("pk_run_watchers")),
        prefixes=["UNLOGGED"],
    )
    op.execute(
        """
        CREATE OR REPLACE FUNCTION assistd_notify_run_events() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('assistd_run_events', runs.run_id)
            FROM (SELECT DISTINCT run_id FROM appended) AS runs
            WHERE EXISTS (SELECT 1 FROM run_watchers w WHERE w.run_id = runs.run_id);
            RETURN NULL;
        END
        $$
        """
    )


def downgrade() -> None:
    op.execute(
        """
        CREATE OR REPLACE FUNCTION assistd_notify_run_events() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('assistd_run_events', run_id)
            FROM (SELECT DISTINCT run_id FROM appended) AS runs;
            RETURN NULL;
        END
        $$
        """
    )
    op.drop_table("run_watchers")
