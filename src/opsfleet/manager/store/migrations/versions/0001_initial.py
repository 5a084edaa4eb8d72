"""Initial schema: nodes, agents, metric samples, node events.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

JSONType = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "nodes",
        sa.Column("node_id", sa.String(128), primary_key=True),
        sa.Column("hostname", sa.String(255), nullable=False),
        sa.Column("ip", sa.String(64), nullable=False, server_default=""),
        sa.Column("os", sa.String(64), nullable=False, server_default=""),
        sa.Column("arch", sa.String(64), nullable=False, server_default=""),
        sa.Column("labels", JSONType, nullable=False),
        sa.Column("daemon_version", sa.String(64), nullable=False, server_default=""),
        sa.Column("agent_version", sa.String(64), nullable=False, server_default=""),
        sa.Column("daemon_address", sa.String(255), nullable=False, server_default=""),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("registered_at", sa.Float, nullable=False),
        sa.Column("last_seen_at", sa.Float, nullable=False),
    )
    op.create_index("ix_nodes_status_last_seen", "nodes", ["status", "last_seen_at"])
    op.create_index("ix_nodes_hostname_ip", "nodes", ["hostname", "ip"])
    op.create_table(
        "agents",
        sa.Column("node_id", sa.String(128), primary_key=True),
        sa.Column("agent_id", sa.String(128), primary_key=True),
        sa.Column("type", sa.String(64), nullable=False, server_default=""),
        sa.Column("version", sa.String(64), nullable=False, server_default=""),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("pid", sa.Integer, nullable=False, server_default="0"),
        sa.Column("last_heartbeat", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("last_sync_at", sa.Float, nullable=False),
    )
    op.create_table(
        "metric_samples",
        sa.Column("node_id", sa.String(128), primary_key=True),
        sa.Column("type", sa.String(32), primary_key=True),
        sa.Column("ts", sa.BigInteger, primary_key=True),
        sa.Column("values", JSONType, nullable=False),
    )
    op.create_index("ix_metric_samples_ts", "metric_samples", ["ts"])
    op.create_table(
        "node_events",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True
        ),
        sa.Column("node_id", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("detail", sa.String(255), nullable=False, server_default=""),
    )
    op.create_index("ix_node_events_node_at", "node_events", ["node_id", "at"])


def downgrade() -> None:
    op.drop_table("node_events")
    op.drop_table("metric_samples")
    op.drop_table("agents")
    op.drop_table("nodes")
