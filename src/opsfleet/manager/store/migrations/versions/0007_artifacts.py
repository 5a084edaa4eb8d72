"""Uploaded update packages (the files live in the artifacts directory, named by SHA-256)
and fleet rollouts with the state of each of their nodes.

Revision ID: 0007
Revises: 0006 (central configuration)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

IdType = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    op.create_table(
        "artifacts",
        sa.Column("id", IdType, primary_key=True, autoincrement=True),
        sa.Column("component", sa.String(160), nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("filename", sa.String(255), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("signature", sa.Text, nullable=False),
        sa.Column("signed_by_manager", sa.Boolean, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.UniqueConstraint("component", "version", name="uq_artifacts_component_version"),
    )
    op.create_table(
        "rollouts",
        sa.Column("id", IdType, primary_key=True, autoincrement=True),
        sa.Column("component", sa.String(160), nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("artifact_id", sa.BigInteger, nullable=False),
        sa.Column("selector", sa.Text, nullable=False),
        sa.Column("max_parallel", sa.String(16), nullable=False),
        sa.Column("canary", sa.Integer, nullable=False),
        sa.Column("pause_on_failure", sa.Float, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_table(
        "rollout_nodes",
        sa.Column("rollout_id", sa.BigInteger, primary_key=True),
        sa.Column("node_id", sa.String(128), primary_key=True),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("canary", sa.Boolean, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("started_at", sa.Float, nullable=False),
        sa.Column("finished_at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("rollout_nodes")
    op.drop_table("rollouts")
    op.drop_table("artifacts")
