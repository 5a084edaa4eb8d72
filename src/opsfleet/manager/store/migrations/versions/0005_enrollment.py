"""Enrollment tokens and the node identities (certificates) issued with them.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

IdType = sa.BigInteger().with_variant(sa.Integer, "sqlite")
JSONType = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "enrollment_tokens",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("secret_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("created_by", sa.String(64), nullable=False, server_default=""),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
        sa.Column("max_uses", sa.Integer, nullable=False),
        sa.Column("uses", sa.Integer, nullable=False, server_default="0"),
        sa.Column("labels", JSONType, nullable=False),
        sa.Column("revoked_at", sa.Float, nullable=True),
    )
    op.create_table(
        "node_identities",
        sa.Column("id", IdType, primary_key=True, autoincrement=True),
        sa.Column("node_id", sa.String(128), nullable=False),
        sa.Column("serial", sa.String(64), nullable=False, unique=True),
        sa.Column("not_after", sa.Float, nullable=False),
        sa.Column("enrolled_at", sa.Float, nullable=False),
        sa.Column("token_id", sa.String(32), nullable=False, server_default=""),
        sa.Column("hostname", sa.String(255), nullable=False, server_default=""),
        sa.Column("boot_id", sa.String(64), nullable=False, server_default=""),
        sa.Column("revoked_at", sa.Float, nullable=True),
    )
    op.create_index("ix_node_identities_node", "node_identities", ["node_id"])


def downgrade() -> None:
    op.drop_table("node_identities")
    op.drop_table("enrollment_tokens")
