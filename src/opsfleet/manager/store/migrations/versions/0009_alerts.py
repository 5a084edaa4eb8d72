"""Alerts: one row per firing occurrence of a rule, updated when it resolves or an operator
acknowledges or silences it.

Revision ID: 0009
Revises: 0008 (enrollment key hash)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

IdType = sa.BigInteger().with_variant(sa.Integer, "sqlite")
JSONType = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "alerts",
        sa.Column("id", IdType, primary_key=True, autoincrement=True),
        sa.Column("fingerprint", sa.String(16), nullable=False),
        sa.Column("rule", sa.String(64), nullable=False),
        sa.Column("node_id", sa.String(128), nullable=False),
        sa.Column("subject", sa.String(160), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("summary", sa.Text, nullable=False),
        sa.Column("hostname", sa.String(255), nullable=False),
        sa.Column("node_labels", JSONType, nullable=False),
        sa.Column("starts_at", sa.Float, nullable=False),
        sa.Column("ends_at", sa.Float, nullable=False),
        sa.Column("acked_by", sa.String(64), nullable=False),
        sa.Column("acked_at", sa.Float, nullable=False),
        sa.Column("silenced_by", sa.String(64), nullable=False),
        sa.Column("silenced_until", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_index("ix_alerts_state_starts", "alerts", ["state", "starts_at"])
    op.create_index("ix_alerts_node", "alerts", ["node_id"])
    op.create_index("ix_alerts_fingerprint", "alerts", ["fingerprint"])


def downgrade() -> None:
    op.drop_table("alerts")
