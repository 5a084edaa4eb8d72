"""The SHA-256 of each node certificate's public key (SubjectPublicKeyInfo, DER), so that a
repeated Enroll with the same key gets its certificate again instead of a Conflict.

Revision ID: 0008
Revises: 0007 (artifacts and rollouts)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable: identities issued before this revision have no recorded key (a repeated
    # Enroll for them stays a Conflict).
    with op.batch_alter_table("node_identities") as batch:
        batch.add_column(sa.Column("key_sha256", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("node_identities") as batch:
        batch.drop_column("key_sha256")
