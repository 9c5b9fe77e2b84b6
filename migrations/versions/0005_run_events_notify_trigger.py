"""Wake stream tails from a trigger: every statement that appends run events notifies the
``assistd_run_events`` channel once per run it touched (delivered at commit), so writers
need no separate ``pg_notify`` round trip.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE FUNCTION assistd_notify_run_events() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('assistd_run_events', run_id)
            FROM (SELECT DISTINCT run_id FROM appended) AS runs;
            RETURN NULL;
        END
        $$
        """
    )
    op.execute(
        """
        CREATE TRIGGER run_events_notify
        AFTER INSERT ON run_events
        REFERENCING NEW TABLE AS appended
        FOR EACH STATEMENT EXECUTE FUNCTION assistd_notify_run_events()
        """
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER run_events_notify ON run_events")
    op.execute("DROP FUNCTION assistd_notify_run_events()")
