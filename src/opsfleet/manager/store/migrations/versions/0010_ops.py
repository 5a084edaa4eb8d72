"""Agents keep the restart count their daemon reports (AgentState.restart_count), so every
view of a stored agent shows the same count as the daemon; an index for the fleet-wide
event timeline.

Revision ID: 0010
Revises: 0009 (alerts)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("agents") as batch:
        batch.add_column(sa.Column("restart_count", sa.Integer, nullable=False, server_default="0"))
    op.create_index("ix_node_events_at", "node_events", ["at"])


def downgrade() -> None:
    op.drop_index("ix_node_events_at", table_name="node_events")
    with op.batch_alter_table("agents") as batch:
        batch.drop_column("restart_count")
